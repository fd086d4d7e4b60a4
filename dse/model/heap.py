"""The process heap kept between model calls (glibc): freed memory stays for the next call instead of being returned.

glibc gives the free top of its heap back to the system once it exceeds the trim threshold (128 KiB until a large
mmapped block is freed: mallopt(3), "M_TRIM_THRESHOLD"), so arrays allocated and freed on every call (the compiled
kernels' work arrays, numba allocating them with malloc) were page-faulted in anew on each: ~170 minor faults per
`evaluate` of 128 designs, all of them in `step_kernel.map_llm_kernel`. `keep_heap` sets the two thresholds to the
values glibc's own dynamic adjustment reaches at its maximum, from the first call on rather than after the first
freed block of 32 MiB. Nothing changes in the results; the process keeps up to TRIM_THRESHOLD_BYTES of freed heap.
"""

from __future__ import annotations

import os

# glibc malloc.c: DEFAULT_MMAP_THRESHOLD_MAX = 4 * 1024 * 1024 * sizeof(long) on 64-bit systems (mallopt(3),
# "M_MMAP_THRESHOLD": the dynamic threshold's upper limit); blocks above it are still mmapped (returned on free)
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
# twice the mmap threshold: the trim threshold glibc's dynamic adjustment sets beside it (malloc.c, free of an
# mmapped chunk: `mp_.trim_threshold = 2 * mp_.mmap_threshold`)
TRIM_THRESHOLD_BYTES = 2 * MMAP_THRESHOLD_BYTES
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>
# glibc's own settings from the environment (mallopt(3), "ENVIRONMENT"; tunables): left as the user set them
_USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")

_DONE: list[bool] = []  # whether the thresholds were set, once per process


def keep_heap() -> bool:
    """Set glibc's trim and mmap thresholds (module docstring) once per process; True where they were set. A no-op
    (False) on another C library or where the environment sets glibc's malloc parameters itself."""
    if _DONE:
        return _DONE[0]
    _DONE.append(False)
    if any(k in os.environ for k in _USER_SETTINGS) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return False
        import ctypes
        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError, ValueError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _DONE[0] = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    return _DONE[0]
