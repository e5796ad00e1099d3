"""glibc ``malloc`` settings for CPU training: keep freed memory for reuse.

glibc hands out large blocks (over its mmap threshold, 128 KiB at start, adjusted as blocks are
freed) as fresh ``mmap`` pages and returns memory to the OS on ``free``, so a training step that
allocates and frees the same few-MiB activations every step pays a page fault per 4 KiB page it
touches again: about 1,500 faults, 2-5 ms of a 20 ms MNIST step here (``benchmarks/step_flops.py``).
With the thresholds below, blocks up to 32 MiB come from the heap and freed memory stays in the
process, so the next step reuses it (about 2 faults per step). This is what jemalloc or tcmalloc
give (``LD_PRELOAD``), without a dependency. Memory use is unchanged at its peak; the process keeps
its peak instead of shrinking between steps.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's largest mmap threshold on 64-bit systems
TRIM_THRESHOLD = 2**30


def keep_freed_memory() -> bool:
    """Set glibc's mmap threshold to its maximum and its trim threshold to 1 GiB for this
    process (idempotent). Returns whether the settings were applied: False off Linux or where the
    C library is not glibc (then nothing changes)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
