"""Host memory of CPU runs: keep glibc from returning big tensor buffers to the OS, and measure peaks.

Convolution activations of a ConvNet batch are tens of MB; glibc serves such blocks with mmap and unmaps
them on free, so every step page-faults its activations back in (measured: ~40 % of a CPU training step on
2 cores). Raising the mmap and trim thresholds lets freed blocks be reused. No-op off glibc.

Peak measurement (`texdistill bench`): PyTorch's CPU tensors come from malloc, so the process's resident set
is what a run needs. Returning freed blocks to the OS (malloc_trim) and resetting the kernel's high-water
mark (/proc/self/clear_refs) before a computation makes VmHWM − VmRSS its peak extra memory. Linux only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import re
from pathlib import Path

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_LIMIT = 2**31 - 1  # mallopt takes an int
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _libc() -> ctypes.CDLL | None:
    if platform.system() != "Linux":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed large blocks for reuse; returns whether it applied."""
    libc = _libc()
    try:
        return bool(libc and libc.mallopt(_M_MMAP_THRESHOLD, _LIMIT) and libc.mallopt(_M_TRIM_THRESHOLD, _LIMIT))
    except AttributeError:
        return False


def _status_kib(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE).group(1))


def start_peak_rss() -> int | None:
    """Release freed heap memory, reset the peak-RSS mark; returns the current RSS in bytes (None: unsupported)."""
    libc = _libc()
    try:
        if libc is None:
            return None
        libc.malloc_trim(0)
        _CLEAR_REFS.write_text("5")
        return _status_kib("VmRSS") * 1024
    except (OSError, AttributeError):
        return None


def peak_rss() -> int:
    """The process's peak resident set since start_peak_rss(), in bytes."""
    return _status_kib("VmHWM") * 1024
