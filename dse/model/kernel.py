"""Which path the model's compiled kernels take (`DSE_KERNEL`: numba, numpy or auto) and numba's cache of
them (dse/model/step_kernel.py): `perf.step_times` and `area`'s spare search ask `compiled_kernel()` for the
kernel module, or None for the numpy path. Kept apart from `perf` so that every model file may ask."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

KERNEL_ENV = "DSE_KERNEL"  # "numba" (compiled; an error when numba is missing), "numpy", "auto" (the default)
# auto: a process times this many (instance × operator) elements in numpy (~1.5 s on one core, ~20k designs of
# the balanced mix) before it looks for the compiled kernel, so that a small run (the quickstart) never pays
# numba's import and cache load (~1–2 s; the kernel saves ~0.12 µs per element);
# past it, the kernel is used once numba's cache of it is there, and compiled in a background process
# otherwise (~10 s of CPU, once per install; the run goes on in numpy meanwhile)
KERNEL_AUTO_ELEMENTS = 10_000_000
_KERNEL = {"module": None, "elements": 0, "spawned": False, "numba": None}


def kernel_mode() -> str:
    """The path `step_times` takes now: "numba" (compiled) or "numpy"."""
    return "numba" if _KERNEL["module"] is not None or _mode() == "numba" else "numpy"


def reset_kernel() -> None:
    """Forget the path chosen so far (after changing `DSE_KERNEL` in this process: benchmarks, tests)."""
    _KERNEL.update(module=None, elements=0, checked=-1e9, stamp=None)


def _mode() -> str:
    import os
    want = os.environ.get(KERNEL_ENV, "auto").strip().lower() or "auto"
    if want not in ("auto", "numba", "numpy"):
        raise ValueError(f"{KERNEL_ENV}={want!r}: expected auto, numba or numpy")
    return want


def kernel_cache_stamp() -> str:
    """What numba's cache of the kernel depends on: the kernel sources' content, the module globals they read
    (numba compiles them in as constants) and numba's version (read without importing numba); '' when a source
    or numba is missing."""
    import hashlib
    from importlib import metadata
    from pathlib import Path
    from dse.model.knobs import TOPOLOGY_CODE  # a global step_kernel reads: numba freezes it into the cached code
    try:
        src = b"".join(Path(__file__).with_name(f).read_bytes() for f in KERNEL_FILES)
        src += repr(sorted(TOPOLOGY_CODE.items())).encode()
        from dse.model.mesh import LADDER  # another global step_kernel reads (the on-wafer mesh's ladder of regions)
        src += LADDER.tobytes()
        return f"{hashlib.sha256(src).hexdigest()} numba {metadata.version('numba')}"
    except (OSError, metadata.PackageNotFoundError):
        return ""


KERNEL_FILES = ("step_kernel.py", "area_kernel.py", "cnn_kernel.py", "design_kernel.py")  # the compiled modules (area_kernel: dse.model.area's, cnn_kernel: the CNN mapping's, design_kernel: cost's and power's)
_MODULES: dict = {}  # the compiled modules imported so far, by name (`kernel_module`)


def kernel_module(name: str):
    """The compiled module `dse.model.<name>` (a stem of KERNEL_FILES: "step_kernel", "design_kernel", ...), imported
    on first use (it imports numba) and kept, so that a caller on the compiled path pays a dict lookup per call, not
    an import statement. It does not choose the path: ask `compiled_kernel()` first."""
    mod = _MODULES.get(name)
    if mod is None:
        if name + ".py" not in KERNEL_FILES:
            raise ValueError(f"{name!r}: not a compiled module (one of {[f[:-3] for f in KERNEL_FILES]})")
        import importlib
        mod = _MODULES[name] = importlib.import_module(f"dse.model.{name}")
    return mod


KERNEL_READY_FILE = "__pycache__/step_kernel.ready"  # beside this file: the stamp of the last cached compile


def kernel_cache_ready() -> bool:
    """Whether numba's on-disk cache of the compiled kernel (next to dse/model/step_kernel.py) holds the
    current source under the installed numba: `step_kernel.warm` leaves the stamp it compiled (numba keys its
    cache on the source's content, so a checkout that only touches the file keeps it valid)."""
    from pathlib import Path
    try:
        ready = (Path(__file__).parent / KERNEL_READY_FILE).read_text()
    except OSError:
        return False
    if _KERNEL.get("stamp") is None:
        _KERNEL["stamp"] = kernel_cache_stamp()  # once per process (~6 ms)
    return bool(_KERNEL["stamp"]) and ready == _KERNEL["stamp"]


def _spawn_compile() -> None:
    """Compile the kernel into numba's cache in a detached low-priority process (once per process; a lock
    file keeps concurrent processes from compiling it together)."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path
    _KERNEL["spawned"] = True
    lock = Path(__file__).with_name("__pycache__") / "step_kernel.compiling"
    try:
        lock.parent.mkdir(exist_ok=True)
        if not os.access(lock.parent, os.W_OK):  # numba would cache elsewhere, where auto mode does not look
            return
        if lock.exists() and time.time() - lock.stat().st_mtime < 300:
            return
        lock.touch()
        code = ("import os; os.nice(10)\nfrom dse.model import kernel, step_kernel\n"
                f"try: kernel.warm_kernel(step_kernel)\nfinally: os.remove({str(lock)!r})")
        subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True,
                         env={**os.environ, KERNEL_ENV: "numba"})
    except OSError:
        pass


def compiled_kernel(elements: int = 0):
    """`dse.model.step_kernel` (numba) when `DSE_KERNEL` selects it, else None (the numpy path). `elements`:
    the (instance × operator) elements of the call about to be timed, counted for auto mode."""
    if _KERNEL["module"] is not None:
        return _KERNEL["module"]
    mode = _mode()
    if mode == "numpy":
        return None
    if mode == "auto":
        _KERNEL["elements"] += elements
        if _KERNEL["elements"] < KERNEL_AUTO_ELEMENTS:
            return None
        if _KERNEL["numba"] is None:
            import importlib.util
            _KERNEL["numba"] = importlib.util.find_spec("numba") is not None
        if not _KERNEL["numba"]:
            return None
        import time
        now = time.monotonic()
        if now - _KERNEL.get("checked", -1e9) < 1.0:  # look for the background compile at most once a second
            return None
        _KERNEL["checked"] = now
        if not kernel_cache_ready():
            if not _KERNEL["spawned"]:
                _spawn_compile()
            return None
    from dse.model import step_kernel
    warm_kernel(step_kernel)
    _KERNEL["module"] = step_kernel
    return step_kernel


def purge_stale_cache(here: Path | None = None) -> int:
    """Delete numba's cache of every compiled module next to this package when the kernel sources changed since
    the last cached compile (the stamp in KERNEL_READY_FILE differs or is missing): numba checks only the file of
    the function it loads, so cnn_kernel's / area_kernel's cached code would keep an older step_kernel function it
    calls (`time_batch`, `_shares`, `_mx`). Returns the files deleted; call it before the first kernel call.
    `here`: the package folder (tests)."""
    import contextlib
    from pathlib import Path
    here = Path(__file__).resolve().parent if here is None else Path(here)
    try:
        if (here / KERNEL_READY_FILE).read_text() == kernel_cache_stamp():
            return 0
    except OSError:
        pass
    gone = 0
    for f in KERNEL_FILES:
        for p in (here / "__pycache__").glob(f"{Path(f).stem}.*.nb[ic]"):
            with contextlib.suppress(OSError):
                p.unlink()
                gone += 1
    return gone


def warm_kernel(step_kernel) -> None:
    """Compile (or load) `step_kernel` now, then stamp its cache ready for auto mode where numba cached it
    next to the package (`kernel_cache_ready`)."""
    from pathlib import Path
    from dse.model import area_kernel, cnn_kernel, design_kernel
    purge_stale_cache()
    step_kernel.warm()
    area_kernel.warm()
    cnn_kernel.warm()
    design_kernel.warm()
    here = Path(__file__).resolve().parent
    stats = getattr(step_kernel.step_kernel, "stats", None)
    if stats is not None and Path(stats.cache_path).resolve() != here / "__pycache__":
        return  # cached elsewhere (read-only install): auto mode does not look there
    ready, stamp = here / KERNEL_READY_FILE, kernel_cache_stamp()
    try:
        if not ready.exists() or ready.read_text() != stamp:
            ready.write_text(stamp)
    except OSError:
        pass
