"""glibc ``malloc`` settings that keep freed tensor memory in the process while training on CPU.

Why: torch's CPU allocator passes every activation, gradient and optimiser buffer to
``malloc`` and frees it again within the step. Left at its defaults, glibc serves large
blocks with fresh ``mmap`` calls and hands freed heap tops back to the kernel, so each
step re-faults hundreds of megabytes of zeroed pages. Measured on the 2-core CPU machine
(BENCHMARKS.md, "The allocator" under "Training throughput after issue 9"): half of
``bc-cnn``'s training CPU time was kernel time, ~2 × 10⁵ minor page faults per step.
Raising the mmap threshold to glibc's ceiling (32 MiB), the trim threshold to 1 GiB and
padding each heap growth by 512 MiB keep that memory mapped (~4 000 faults per step):
1.9-2.2 × the samples/s for ``bc-cnn``; the demo's VLA, whose tensors glibc already
recycles, gains nothing. The arithmetic is identical (only where memory comes from
changes, never its contents).

The cost is resident memory: up to the trim threshold of freed memory stays with the
process. Settings a user gives glibc themselves (``MALLOC_*_`` variables or
``GLIBC_TUNABLES``) win, ``VLAWORKS_MALLOC_TUNING=0`` turns this off, and on a C library
other than glibc (macOS, musl) nothing is changed.
"""

from __future__ import annotations

import ctypes
import os
import platform

#: ``VLAWORKS_MALLOC_TUNING=0`` leaves glibc's defaults alone
OPT_OUT_ENV = "VLAWORKS_MALLOC_TUNING"
#: glibc's ``mallopt`` parameters (malloc.h) and the values set
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = {
    M_MMAP_THRESHOLD: 32 << 20,  # glibc's maximum; fixing it also stops the dynamic threshold
    M_TRIM_THRESHOLD: 1 << 30,
    M_TOP_PAD: 512 << 20,
}
_USER_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")

_applied = False


def tune_malloc() -> bool:
    """Apply :data:`SETTINGS` through ``mallopt`` once per process; ``True`` when they are in
    effect (now or from an earlier call), ``False`` when left alone (see module doc)."""
    global _applied
    if _applied:
        return True
    if os.environ.get(OPT_OUT_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if any(os.environ.get(key) for key in _USER_ENV):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = all(mallopt(param, value) == 1 for param, value in SETTINGS.items())
    return _applied
