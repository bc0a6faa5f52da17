"""What each engine gets per move in a match: a Fischer clock, a node count, a move time, or a combination."""

from __future__ import annotations

import math
from dataclasses import dataclass

import chess
import chess.engine

from .errors import MatchError

HANG_GRACE_S = 10.0  # how long past its time an engine may stay silent before it is killed


@dataclass(frozen=True)
class TimeControl:
    """Fischer clock: ``base`` seconds plus ``inc`` seconds after every move."""

    base: float
    inc: float = 0.0

    def __str__(self) -> str:
        return f"{self.base:g}+{self.inc:g}" if self.inc else f"{self.base:g}"


def parse_tc(text: str) -> TimeControl | None:
    """``base+inc`` in seconds (``10+0.1``, ``60``, ``1:30+1``), or ``inf`` for no clock; MatchError if bad."""
    text = text.strip()
    if text.lower() in ("inf", "infinite"):
        return None
    base_text, _, inc_text = text.partition("+")
    try:
        if ":" in base_text:
            minutes, _, seconds = base_text.partition(":")
            base = 60 * float(minutes) + float(seconds)
        else:
            base = float(base_text)
        inc = float(inc_text) if inc_text else 0.0
    except ValueError:
        raise MatchError(f"bad --tc {text!r}: expected base+inc in seconds, e.g. 10+0.1") from None
    if not (math.isfinite(base) and math.isfinite(inc)) or base <= 0 or inc < 0:
        raise MatchError(f"bad --tc {text!r}: the base must be positive and the increment not negative")
    return TimeControl(base, inc)


@dataclass(frozen=True)
class GameLimits:
    """What each engine of a match gets per move: a clock, a node count, a fixed move time, or a combination.

    Not the search's own ``search.Limits`` (what one ``go`` asks of azengine): these are the match
    runner's settings, from which it builds every ``go`` it sends and judges time losses.
    """

    tc: TimeControl | None = None
    nodes: int | None = None
    movetime_ms: int | None = None
    timemargin_ms: int | None = None  # None: 0 with a clock, 1000 with a move time
    move_timeout_s: float = 120.0  # only limit when there is neither a clock nor a move time

    def margin_s(self) -> float:
        """How far past its time a move may come before it loses on time."""
        if self.timemargin_ms is not None:
            return self.timemargin_ms / 1000.0
        return 0.0 if self.tc else 1.0

    def engine_limit(self, clocks: dict[chess.Color, float]) -> chess.engine.Limit:
        """The python-chess limit of one move, with the clocks (seconds left by colour) when there is a clock."""
        return chess.engine.Limit(
            nodes=self.nodes, time=self.movetime_ms / 1000 if self.movetime_ms else None,
            white_clock=clocks.get(chess.WHITE), black_clock=clocks.get(chess.BLACK),
            white_inc=self.tc.inc if self.tc else None, black_inc=self.tc.inc if self.tc else None)

    def hard_timeout_s(self, clock_s: float | None) -> float:
        """Seconds after which a silent engine is killed and loses on time (``clock_s``: its clock, if any)."""
        if self.tc and clock_s is not None:
            return clock_s + self.margin_s() + HANG_GRACE_S
        if self.movetime_ms:
            return self.movetime_ms / 1000 + self.margin_s() + HANG_GRACE_S
        return self.move_timeout_s

    def pgn_time_control(self) -> str:
        """The PGN TimeControl tag: ``base+inc`` of the clock, else ``-``."""
        return str(self.tc) if self.tc else "-"

    def describe(self) -> str:
        """For reports: ``tc 10+0.1``, ``400 nodes``, ``movetime 100 ms``, joined."""
        parts = []
        if self.tc:
            parts.append(f"tc {self.tc}")
        if self.movetime_ms:
            parts.append(f"movetime {self.movetime_ms} ms")
        if self.nodes:
            parts.append(f"{self.nodes} nodes")
        return ", ".join(parts)
