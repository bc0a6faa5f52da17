"""What kind of CPU the engine runs on, read from the CPU's flags without torch (``/proc/cpuinfo``).

The play defaults (``Threads``) are chosen per kind from measurements with the search running
(docs/PERFORMANCE.md); where the flags cannot be read the kind is ``unknown`` and the defaults of the
AVX2 machines apply.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")

#: Network threads (the ``Threads`` default) per CPU kind, at most the machine's core count.
THREADS_BY_KIND = {"avx512-vnni": 2, "avx2": 2, "baseline": 1, "unknown": 2}


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


def default_threads(flags: frozenset[str] | None = None, cores: int | None = None) -> int:
    """The ``Threads`` default for this CPU: :data:`THREADS_BY_KIND`, capped at the number of cores."""
    cores = cores if cores is not None else (os.cpu_count() or 1)
    return max(1, min(THREADS_BY_KIND[cpu_kind(flags)], cores))
