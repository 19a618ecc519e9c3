"""CPU settings that make a training process faster without changing what it computes."""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory() -> bool:
    """Have glibc keep freed memory in the heap instead of handing it back to the kernel.

    A GAN step on the CPU allocates and frees hundreds of megabyte-sized tensors; by default
    glibc maps each large one fresh (mmap) or trims the heap after it, and the kernel then
    zero-fills every page again: 16,000-19,000 page faults a step at the cpu-demo preset,
    35 ms of system time and colder caches. With large blocks served from a heap that is
    never trimmed, the faults drop to a few hundred; the process keeps its peak memory.
    Returns whether the settings took (False off glibc, e.g. macOS: nothing changes)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = (mallopt(_M_MMAP_THRESHOLD, 32 << 20) == 1  # the largest threshold glibc accepts
          and mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1
          and mallopt(_M_TOP_PAD, 64 << 20) == 1)
    if not ok:
        log.debug("mallopt refused the settings; malloc left as it is")
    return ok
