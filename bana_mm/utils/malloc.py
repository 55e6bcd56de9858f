"""Let a CPU training process reuse the memory it frees (glibc malloc).

glibc hands blocks above its mmap threshold (at most 32 MiB) to ``mmap``
and gives them back on ``free``; it also trims free memory at the top of
the heap. A training step on a CPU allocates and frees the same large
activation and gradient tensors every step (VGG-16, batch 4, 321x321: about
100 MiB each), so the kernel maps and zero-fills them again and again: ~2.4
GB of page faults per step, measured in issue 21 (docs/benchmarks.md).
With ``M_MMAP_MAX = 0`` and a high ``M_TRIM_THRESHOLD`` the freed blocks
stay in the heap and are reused; the computed values are unchanged, and the
process keeps its peak memory until it ends (what a GPU caching allocator
does too).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import resource

#: glibc ``mallopt`` parameter numbers (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: the largest value ``mallopt`` takes (a C int): trim only above ~2 GiB
MAX_TRIM_THRESHOLD = 2**31 - 1


def _mallopt():
    """glibc's ``mallopt``, or None where the C library has none."""
    name = ctypes.util.find_library('c')
    if name is None:
        return None
    try:
        func = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return None
    func.argtypes = (ctypes.c_int, ctypes.c_int)
    func.restype = ctypes.c_int
    return func


def keep_freed_memory(trim_threshold: int = MAX_TRIM_THRESHOLD) -> bool:
    """No ``mmap`` for large blocks and no heap trim below
    ``trim_threshold`` bytes, for the rest of this process (and the
    processes it forks later). True if the C library accepted both."""
    if not 0 < trim_threshold <= MAX_TRIM_THRESHOLD:
        raise ValueError(f'trim_threshold must be in (0, '
                         f'{MAX_TRIM_THRESHOLD}], got {trim_threshold}')
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return bool(
        mallopt(M_MMAP_MAX, 0) and mallopt(M_TRIM_THRESHOLD, trim_threshold))


def page_faults() -> int:
    """Page faults of this process so far (minor + major)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_minflt + usage.ru_majflt
