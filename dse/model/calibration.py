"""Efficiency constants of the performance model, per software class, loaded from data/calibration.yaml."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

CALIBRATION_FILE = Path(__file__).parent / "data" / "calibration.yaml"


class Calibration(BaseModel):
    """One software class: how close to the hardware roofline the software gets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    compute_eff_max: float = Field(gt=0, le=1)
    mem_eff_max: float = Field(gt=0, le=1)
    mem_bytes_half_mb: float = Field(ge=0)
    sram_eff_max: float = Field(gt=0, le=1)
    op_overhead_us: float = Field(ge=0)
    dataflow_overhead_us: float = Field(ge=0)
    collective_floor_us: float = Field(ge=0)
    link_eff: float = Field(gt=0, le=1)
    conv_eff: float = Field(gt=0, le=1)
    lowp_eff: float = Field(1.0, gt=0, le=1)  # GEMM efficiency of 8/4-bit compute relative to 16-bit


class CalibrationFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    classes: dict[str, Calibration]
    default_class: str


@lru_cache(maxsize=8)
def _load(path: str) -> CalibrationFile:
    return CalibrationFile.model_validate(yaml.safe_load(Path(path).read_text()))


def calibration_classes(path: Path | None = None) -> dict[str, Calibration]:
    """All software classes in the calibration file."""
    return dict(_load(str(path or CALIBRATION_FILE)).classes)


def load_calibration(name: str | None = None, path: Path | None = None) -> Calibration:
    """The constants of software class `name` (default: the file's default class)."""
    from dse.errors import DseUserError

    data = _load(str(path or CALIBRATION_FILE))
    key = name or data.default_class
    if key not in data.classes:
        raise DseUserError(f"unknown software class '{key}'; valid: {', '.join(sorted(data.classes))}")
    return data.classes[key]


def clear_cache() -> None:
    """Forget loaded files (after `dse calibrate` rewrites the data file)."""
    _load.cache_clear()
