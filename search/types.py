"""Small value objects of the search: limits, parameters, scores, lines and results."""

from __future__ import annotations

import math
import os
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import chess

#: Q -> centipawns: ``cp = CP_SCALE * tan(CP_SLOPE * q)`` (the curve lc0 used for its "cp" score),
#: so q = 0.5 is about +107 cp and q = 0.9 about +580 cp. Clamped to +-CP_LIMIT.
CP_SCALE = 90.0
CP_SLOPE = 1.5637541897
CP_LIMIT = 12_000

#: Share of the undecided probability mass (1 - |q|) that the WDL model calls a draw.
WDL_DRAW_SHARE = 0.5


@dataclass(frozen=True)
class Score:
    """A score from the side to move's view: centipawns, or mate in ``mate`` moves (negative: mated)."""

    cp: int | None = None
    mate: int | None = None

    @classmethod
    def from_q(cls, q: float) -> Score:
        """Centipawns from an expected score q in [-1, 1] (see :data:`CP_SCALE`)."""
        q = max(-0.999999, min(0.999999, q))
        cp = CP_SCALE * math.tan(CP_SLOPE * q)
        return cls(cp=int(round(max(-CP_LIMIT, min(CP_LIMIT, cp)))))

    @classmethod
    def from_mate_plies(cls, plies: int) -> Score:
        """A proven result: ``plies`` > 0 we mate in that many plies, < 0 we are mated."""
        moves = (abs(plies) + 1) // 2
        return cls(mate=moves if plies > 0 else -moves)

    def uci(self) -> str:
        """``cp N`` or ``mate N`` as in a UCI ``info`` line."""
        return f"mate {self.mate}" if self.mate is not None else f"cp {self.cp}"


def wdl_from_q(q: float) -> tuple[int, int, int]:
    """Win/draw/loss per mille from q: the draw share is :data:`WDL_DRAW_SHARE` of ``1 - |q|``."""
    q = max(-1.0, min(1.0, q))
    draw = WDL_DRAW_SHARE * (1.0 - abs(q))
    win = (1.0 + q - draw) / 2.0
    w, d = round(win * 1000), round(draw * 1000)
    return w, d, 1000 - w - d


@dataclass
class Limits:
    """What ``go`` asked for; all times in milliseconds, None when not given."""

    wtime: int | None = None
    btime: int | None = None
    winc: int | None = None
    binc: int | None = None
    movestogo: int | None = None
    movetime: int | None = None
    nodes: int | None = None
    depth: int | None = None
    mate: int | None = None
    infinite: bool = False
    ponder: bool = False
    searchmoves: list[chess.Move] = field(default_factory=list)

    def is_timed(self) -> bool:
        """True when the search ends on a clock (movetime or a game clock), not on nodes/depth/stop."""
        return self.movetime is not None or self.wtime is not None or self.btime is not None


#: The default ``RamLimitMb``: this share of the machine's physical memory, at most :data:`RAM_LIMIT_CAP_MB`.
RAM_LIMIT_SHARE = 0.25
RAM_LIMIT_CAP_MB = 4096


def physical_memory_mb() -> int | None:
    """The machine's physical memory in MiB, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError, AttributeError):
        return None


def default_ram_limit_mb() -> int:
    """A quarter of physical memory, capped at :data:`RAM_LIMIT_CAP_MB` (the cap where unknown)."""
    total = physical_memory_mb()
    if total is None:
        return RAM_LIMIT_CAP_MB
    return max(64, min(RAM_LIMIT_CAP_MB, int(total * RAM_LIMIT_SHARE)))


@dataclass
class SearchParams:
    """Tunable search settings, with their defaults: the one place they are declared.

    The UCI options (``uci.options``) name the field each sets and take its default from here.
    """

    cpuct: float = 1.745
    cpuct_base: float = 38739.0
    cpuct_factor: float = 3.894
    fpu_value: float = 0.33
    fpu_value_at_root: float = 0.33
    policy_temperature: float = 1.0
    minibatch_size: int = 32
    max_collisions: int = 16
    nn_cache_size: int = 200_000
    ram_limit_mb: int = field(default_factory=default_ram_limit_mb)
    smart_pruning_factor: float = 1.33
    move_overhead_ms: int = 100
    slow_mover: float = 1.5
    multipv: int = 1
    temperature: float = 0.0
    temp_cutoff_move: int = 8
    seed: int = 0


def param_default(name: str) -> Any:
    """The default of the :class:`SearchParams` field ``name`` (KeyError for an unknown name)."""
    declared = {f.name: f for f in fields(SearchParams)}[name]
    return declared.default_factory() if declared.default is MISSING else declared.default


@dataclass
class MoveStats:
    """Statistics of one root move (``VerboseMoveStats``)."""

    move: chess.Move
    visits: int
    prior: float
    q: float | None
    mate_plies: int = 0  # proven: > 0 this move mates in that many plies, < 0 it gets mated; 0 unknown


@dataclass
class PvLine:
    """One line of analysis: its rank, score, WDL and principal variation."""

    multipv: int
    score: Score
    q: float
    wdl: tuple[int, int, int]
    pv: list[chess.Move]
    visits: int


@dataclass
class SearchInfo:
    """A progress report (also the final one) of a running search."""

    depth: int
    seldepth: int
    time_ms: int
    nodes: int
    nps: int
    hashfull: int
    lines: list[PvLine]
    stats: list[MoveStats]
    tbhits: int | None = None  # tablebase results used in this search; None without tablebases


@dataclass
class SearchResult:
    """The outcome of a search: the move to play, the move to ponder on and the final info."""

    best_move: chess.Move | None
    ponder_move: chess.Move | None
    info: SearchInfo
    tree_full: bool = False
    stopped_by: str = ""
