"""How long to think: a time budget from ``go``'s clock fields."""

from __future__ import annotations

import chess

from .types import Limits

#: Moves left in the game assumed when ``movestogo`` is not given.
DEFAULT_MOVES_TO_GO = 30
#: Share of the increment spent on this move.
INCREMENT_SHARE = 0.75
#: Never plan more than this share of the remaining clock for one move.
MAX_CLOCK_SHARE = 0.4


def time_budget_ms(limits: Limits, turn: chess.Color, move_overhead_ms: int,
                   slow_mover: float = 1.0) -> float | None:
    """Milliseconds to search for this move, or None when no clock limits it (nodes, infinite, ponder).

    ``movetime`` is used as given less the overhead. With a game clock: ``slow_mover`` x remaining /
    moves to go (``movestogo`` or :data:`DEFAULT_MOVES_TO_GO`) plus :data:`INCREMENT_SHARE` of the
    increment, capped at :data:`MAX_CLOCK_SHARE` of the clock, less ``move_overhead_ms`` (the GUI's
    and the operating system's delay), and never below 1 ms.
    """
    if limits.infinite:
        return None
    if limits.movetime is not None:
        return max(1.0, limits.movetime - move_overhead_ms)
    ours, theirs = (limits.wtime, limits.btime) if turn == chess.WHITE else (limits.btime, limits.wtime)
    left = ours if ours is not None else theirs  # a GUI that sends one clock only: assume equal clocks
    if left is None:
        return None
    inc = (limits.winc if turn == chess.WHITE else limits.binc) or 0
    moves_to_go = max(1, limits.movestogo or DEFAULT_MOVES_TO_GO)
    usable = max(0.0, left - move_overhead_ms)
    budget = min(slow_mover * usable / moves_to_go + INCREMENT_SHARE * inc, MAX_CLOCK_SHARE * usable)
    if moves_to_go == 1:
        budget = 0.8 * usable
    return max(1.0, budget)
