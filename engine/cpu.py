"""What kind of CPU the engine runs on, read from the CPU's flags without torch (``/proc/cpuinfo``).

The play defaults were measured with the search running on both kinds of this project's machines (AVX2 only;
AVX-512 VNNI): the same choice won on both (docs/PERFORMANCE.md), so only the core count changes the
``Threads`` default; the kind is reported by the benchmarks.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")

#: Network threads of the ``Threads`` default where the machine has that many cores (docs/PERFORMANCE.md).
DEFAULT_THREADS = 2


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
    """``avx512-vnni`` (int8 dot products in one instruction), ``avx2``, ``baseline`` (neither) or ``unknown``."""
    flags = cpu_flags() if flags is None else flags
    if not flags:
        return "unknown"
    if "avx512_vnni" in flags:
        return "avx512-vnni"
    if "avx2" in flags:
        return "avx2"
    return "baseline"


def default_threads(cores: int | None = None) -> int:
    """The ``Threads`` default: :data:`DEFAULT_THREADS`, capped at the number of cores (this machine's)."""
    cores = cores if cores is not None else (os.cpu_count() or 1)
    return max(1, min(DEFAULT_THREADS, cores))
