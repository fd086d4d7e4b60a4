"""Validation of the performance model against published measurements (`dse validate`, `dse calibrate`).

- `measurements.py`: the schema of dse/catalog/measurements.yaml and the train/test split rule.
- `predict.py`: the model's prediction for each measurement, computed from dse.model (never stored).
- `calibrate.py`: a bounded, deterministic Nelder-Mead fit of each software class's constants on the
  training split (least squares on log error), written back to dse/model/data/calibration.yaml.
- `report.py`: per-measurement error and per-regime summary statistics.

Nothing here is imported by dse.model: the model does not know it is being validated.
"""
