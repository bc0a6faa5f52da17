"""The tally of a match: wins, losses and draws of the first engine, faults, game pairs, SPRT and the report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from . import statistics
from .game import GameRecord
from .statistics import Sprt


@dataclass
class MatchResult:
    """Games played so far and the statistics of the first engine against the second."""

    first: str
    second: str
    sprt: Sprt | None = None
    records: list[GameRecord] = field(default_factory=list)
    wins: int = 0
    losses: int = 0
    draws: int = 0
    faults: dict[str, dict[str, int]] = field(default_factory=dict)
    pairs: dict[int, list[float]] = field(default_factory=dict)
    llr: float = 0.0
    decision: str | None = None
    stopped: str | None = None  # why the match ended before all games were played

    def __post_init__(self) -> None:
        for name in (self.first, self.second):
            self.faults.setdefault(name, {"time": 0, "illegal": 0, "crash": 0})

    def add(self, record: GameRecord) -> None:
        """Count a finished game (and update the SPRT)."""
        self.records.append(record)
        points = record.points(self.first)
        if points == 1.0:
            self.wins += 1
        elif points == 0.0:
            self.losses += 1
        else:
            self.draws += 1
        self.pairs.setdefault(record.pair, []).append(points)
        if record.fault:
            self.faults[record.fault[0]][record.fault[1]] += 1
        if self.sprt is not None:
            self.llr = self.sprt.llr(self.wins, self.losses, self.draws, self.pentanomial())
            if self.decision is None:
                self.decision = self.sprt.decision(self.llr)

    @property
    def games(self) -> int:
        """Games counted."""
        return self.wins + self.losses + self.draws

    def pentanomial(self) -> list[int]:
        """Pentanomial counts of the complete game pairs."""
        return statistics.pentanomial(sum(p) for p in self.pairs.values() if len(p) == 2)

    def score_line(self) -> str:
        """``Score of A vs B: W - L - D  [p] N``."""
        return statistics.format_score_line(self.first, self.second, self.wins, self.losses, self.draws)

    def summary_lines(self) -> list[str]:
        """The final report, in cutechess-cli's format where it has one."""
        lines = [self.score_line(), statistics.format_elo_line(self.wins, self.losses, self.draws)]
        if self.sprt is not None:
            lines.append(statistics.format_sprt_line(self.llr, self.sprt, self.decision))
        lines.append(statistics.format_pentanomial_line(self.pentanomial()))
        f, s = self.faults[self.first], self.faults[self.second]
        lines.append(f"Time losses: {self.first} {f['time']}, {self.second} {s['time']}; "
                     f"illegal moves: {self.first} {f['illegal']}, {self.second} {s['illegal']}; "
                     f"crashes: {self.first} {f['crash']}, {self.second} {s['crash']}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready data (non-finite numbers become null)."""
        def num(x: float) -> float | None:
            return x if math.isfinite(x) else None

        w, lo, d = self.wins, self.losses, self.draws
        data: dict[str, Any] = {
            "first": self.first, "second": self.second, "games": self.games, "wins": w, "losses": lo, "draws": d,
            "score": num(statistics.score(w, lo, d)),
            "elo": num(statistics.elo_from_score(statistics.score(w, lo, d))),
            "elo_error_95": num(statistics.elo_error_margin(w, lo, d)), "los": num(statistics.los(w, lo)),
            "draw_ratio": num(statistics.draw_ratio(w, lo, d)), "pentanomial": self.pentanomial(),
            "faults": self.faults, "stopped": self.stopped, "lines": self.summary_lines(),
        }
        if self.sprt is not None:
            lower, upper = self.sprt.bounds
            data["sprt"] = {"elo0": self.sprt.elo0, "elo1": self.sprt.elo1, "alpha": self.sprt.alpha,
                            "beta": self.sprt.beta, "model": self.sprt.model, "llr": self.llr,
                            "lower_bound": lower, "upper_bound": upper, "decision": self.decision}
        data["game_list"] = [r.to_dict() for r in sorted(self.records, key=lambda r: (r.pair, r.index))]
        return data

