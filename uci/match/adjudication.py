"""Ending games early: draw and resign adjudication from the engines' scores, and the maximum game length."""

from __future__ import annotations

from dataclasses import dataclass, field

import chess
import chess.engine


@dataclass(frozen=True)
class Adjudication:
    """Draw and resign adjudication (off when the move counts are 0) and the maximum game length."""

    draw_movenumber: int = 0
    draw_movecount: int = 0
    draw_score: int = 10
    resign_movecount: int = 0
    resign_score: int = 1000
    max_plies: int = 400


#: The settings of a rule switched on by some of its options: the values of the options not given.
ADJUDICATION_WHEN_ON = Adjudication(draw_movenumber=40, draw_movecount=8, draw_score=10, resign_movecount=4,
                                    resign_score=1000)


@dataclass
class Adjudicator:
    """The adjudication of one game: counts the moves in a row that meet the draw and resign bounds."""

    rules: Adjudication
    draw_count: int = 0
    resign_count: dict[chess.Color, int] = field(default_factory=lambda: {chess.WHITE: 0, chess.BLACK: 0})

    def after_move(self, board: chess.Board, mover: chess.Color, score: chess.engine.PovScore | None) -> str | None:
        """``"draw"``, ``"resign"`` (``mover`` resigns) or None, after ``mover``'s move (pushed on ``board``).

        ``score`` is what the engine reported for its move (mates count as +-100,000 cp); a move without a
        score breaks both counts.
        """
        rules = self.rules
        cp = score.relative.score(mate_score=100_000) if score is not None else None
        if rules.draw_movecount > 0:
            self.draw_count = self.draw_count + 1 if cp is not None and abs(cp) <= rules.draw_score else 0
            if board.ply() // 2 >= rules.draw_movenumber and self.draw_count >= 2 * rules.draw_movecount:
                return "draw"
        if rules.resign_movecount > 0:
            resigning = cp is not None and cp <= -rules.resign_score
            self.resign_count[mover] = self.resign_count[mover] + 1 if resigning else 0
            if self.resign_count[mover] >= rules.resign_movecount:
                return "resign"
        return None
