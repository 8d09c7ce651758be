"""Timing and memory marks inside the reference's distillation loop.

peer_bench.py copies this file as `peer_hook.py` into the temporary, patched copy of mtt-distillation, whose
distill.py then calls `peer_hook.mark(name, it)` at four places of each iteration (see PATCHES in peer_bench.py):

    'iteration'  top of the loop body              'backward'  right after grand_loss.backward()
    'match'      right before the syn_steps loop   'step'      right after optimizer_lr.step()

Iterations 0 .. PEER_WARMUP-1 warm up; the next PEER_TIMED are timed; the one after them measures the peak
resident memory of its 'match' → 'backward' span above the memory live before it (glibc's freed blocks
returned first, the kernel's high-water mark reset: VmHWM − VmRSS). At exit, every mark goes to PEER_RESULT
as JSON. It runs in the reference's venv with the reference's torch: it imports nothing from texdistill.
"""

import atexit
import ctypes
import ctypes.util
import json
import os
import re
import resource
import sys
import time

import torch

_THREADS = int(os.environ.get("PEER_THREADS", "0"))
_WARMUP = int(os.environ.get("PEER_WARMUP", "1"))
_TIMED = int(os.environ.get("PEER_TIMED", "1"))
_RESULT = os.environ.get("PEER_RESULT")
_MEMORY_IT = _WARMUP + _TIMED

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _INT_MAX = -1, -3, 2**31 - 1


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def _status_kib(field):
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.MULTILINE).group(1))


_LIBC = _libc()
_KEEP_FREED = os.environ.get("PEER_KEEP_FREED") == "1"
if _KEEP_FREED and _LIBC is not None:  # optional: the allocator setting texdistill applies to its own runs
    _KEEP_FREED = bool(_LIBC.mallopt(_M_MMAP_THRESHOLD, _INT_MAX) and _LIBC.mallopt(_M_TRIM_THRESHOLD, _INT_MAX))
if _THREADS:
    torch.set_num_threads(_THREADS)

_marks = {}  # iteration → {mark: [wall s, CPU s]}
_memory = {}


def mark(name, it):
    if name == "match" and it == _MEMORY_IT:
        try:
            _LIBC.malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            _memory["rss_before_kib"] = _status_kib("VmRSS")
        except (OSError, AttributeError) as e:
            _memory["error"] = f"{type(e).__name__}: {e}"
    now = [time.perf_counter(), time.process_time()]
    if name == "backward" and it == _MEMORY_IT and "rss_before_kib" in _memory:
        _memory["hwm_kib"] = _status_kib("VmHWM")
    _marks.setdefault(it, {})[name] = now


def _write():
    if not _RESULT:
        return
    import numpy
    versions = {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": numpy.__version__}
    for module in ("torchvision", "kornia", "scipy", "wandb"):
        mod = sys.modules.get(module)
        versions[module] = getattr(mod, "__version__", None) if mod else None
    result = {
        "warmup": _WARMUP, "timed": _TIMED, "memory_iteration": _MEMORY_IT,
        "threads": torch.get_num_threads(), "keep_freed_memory": _KEEP_FREED, "versions": versions,
        "marks": {str(it): marks for it, marks in sorted(_marks.items())},
        "memory": _memory,
        "process_max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    tmp = f"{_RESULT}.tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, _RESULT)


atexit.register(_write)
