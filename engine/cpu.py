"""What kind of CPU the engine runs on, read from the CPU's flags without torch (``/proc/cpuinfo``).

The play defaults depend on it: which form ``Backend=auto`` gives the bundled network
(:data:`engine.loader.BUNDLED_BACKEND_BY_CPU`) and how many network threads (:data:`THREADS_BY_CPU`),
both chosen from measurements with the search running (docs/PERFORMANCE.md). On Intel CPUs with AMX
(which have AVX-512 VNNI too) torch's oneDNN int8 kernels searched faster than ONNX Runtime's; on the
AMD CPU with AVX-512 VNNI and on the AVX2 CPU, ONNX Runtime's were the faster.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")

#: The ``Threads`` default per CPU kind (:func:`cpu_kind`), at most the machine's core count.
THREADS_BY_CPU = {"amx": 1, "avx512-vnni": 2, "avx2": 2, "baseline": 2, "unknown": 2}


@cache
def cpu_flags() -> frozenset[str]:
    """The flags of the first CPU in ``/proc/cpuinfo`` (empty where that file does not exist or has none)."""
    try:
        text = CPUINFO.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_kind(flags: frozenset[str] | None = None) -> str:
    """``amx`` (int8 matrix tiles, Intel), ``avx512-vnni`` (int8 dot products in one instruction), ``avx2``,
    ``baseline`` (neither) or ``unknown`` (no flags readable)."""
    flags = cpu_flags() if flags is None else flags
    if not flags:
        return "unknown"
    if "amx_int8" in flags:
        return "amx"
    if "avx512_vnni" in flags:
        return "avx512-vnni"
    if "avx2" in flags:
        return "avx2"
    return "baseline"


def default_threads(flags: frozenset[str] | None = None, cores: int | None = None) -> int:
    """The ``Threads`` default for this CPU: :data:`THREADS_BY_CPU`, capped at the number of cores."""
    cores = cores if cores is not None else (os.cpu_count() or 1)
    return max(1, min(THREADS_BY_CPU[cpu_kind(flags)], cores))
