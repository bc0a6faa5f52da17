"""Match statistics: score, Elo difference, error margin, LOS, pentanomial counts and SPRT.

Pure functions of the game counts, with the formulas match runners (cutechess-cli, fastchess) use:

- Elo difference from a score ``p`` in (0, 1): ``-400 * log10(1 / p - 1)`` (logistic Elo).
- 95% error margin: the standard error of the mean per-game score
  ``sqrt((w (1 - mu)^2 + l mu^2 + d (0.5 - mu)^2) / n)`` (``w``, ``l``, ``d`` fractions, ``mu`` the score),
  mapped to Elo at ``mu -/+ 1.959964`` standard errors; the margin is half the width of that interval.
- LOS (likelihood of superiority): ``0.5 + 0.5 * erf((W - L) / sqrt(2 (W + L)))``.
- SPRT: the generalized SPRT in its normal approximation on logistic Elo, on the trinomial (per game)
  or pentanomial (per game pair) distribution:
  ``LLR = n (s1 - s0) (2 mean - s0 - s1) / (2 var)`` with ``s_i = 1 / (1 + 10^(-elo_i / 400))``,
  stopping at ``log(beta / (1 - alpha))`` (H0 accepted) or ``log((1 - beta) / alpha)`` (H1 accepted).

Undefined values follow float arithmetic, as the match runners print them: a score of 100% is ``inf`` Elo,
a margin with no games ``nan``, LOS without decisive games ``nan``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: The 97.5% quantile of the standard normal distribution (two-sided 95% interval).
Z_95 = 1.959964

#: Pair scores of the pentanomial distribution, in points of the first engine over the two games.
PAIR_SCORES = (0.0, 0.5, 1.0, 1.5, 2.0)

SPRT_MODELS = ("trinomial", "pentanomial")


def elo_from_score(score: float) -> float:
    """Logistic Elo difference of an expected score in [0, 1]: ``-400 * log10(1 / score - 1)``.

    0 and 1 give ``-inf`` and ``inf``; a value outside [0, 1] (or nan) gives ``nan``.
    """
    if math.isnan(score) or score < 0.0 or score > 1.0:
        return math.nan
    if score == 0.0:
        return -math.inf
    if score == 1.0:
        return math.inf
    return -400.0 * math.log10(1.0 / score - 1.0) + 0.0  # + 0.0: an even score is 0.0, not -0.0


def score_from_elo(elo: float) -> float:
    """Expected score of a logistic Elo difference: ``1 / (1 + 10^(-elo / 400))``."""
    return 1.0 / (1.0 + 10.0 ** (-elo / 400.0))


def score(wins: int, losses: int, draws: int) -> float:
    """Points per game, ``(W + D/2) / N``; ``nan`` with no games."""
    n = wins + losses + draws
    return (wins + 0.5 * draws) / n if n else math.nan


def draw_ratio(wins: int, losses: int, draws: int) -> float:
    """Share of draws in [0, 1]; ``nan`` with no games."""
    n = wins + losses + draws
    return draws / n if n else math.nan


def score_stdev(wins: int, losses: int, draws: int) -> float:
    """Standard error of the mean per-game score (what the error margin is built from); ``nan`` with no games."""
    n = wins + losses + draws
    if not n:
        return math.nan
    mu = score(wins, losses, draws)
    fw, fl, fd = wins / n, losses / n, draws / n
    return math.sqrt((fw * (1.0 - mu) ** 2 + fl * (0.0 - mu) ** 2 + fd * (0.5 - mu) ** 2) / n)


def elo_error_margin(wins: int, losses: int, draws: int, z: float = Z_95) -> float:
    """Half the width, in Elo, of the ``z``-standard-error interval around the score (95% by default)."""
    mu = score(wins, losses, draws)
    stdev = score_stdev(wins, losses, draws)
    return (elo_from_score(mu + z * stdev) - elo_from_score(mu - z * stdev)) / 2.0


def los(wins: int, losses: int) -> float:
    """Likelihood of superiority in [0, 1] from the decisive games; ``nan`` when there are none."""
    if wins + losses == 0:
        return math.nan
    return 0.5 + 0.5 * math.erf((wins - losses) / math.sqrt(2.0 * (wins + losses)))


def pentanomial(pair_points: Iterable[float]) -> list[int]:
    """Counts of game pairs by the first engine's points over the pair: ``[0, 0.5, 1, 1.5, 2]``."""
    counts = [0] * len(PAIR_SCORES)
    for points in pair_points:
        index = round(points * 2)
        if not 0 <= index < len(PAIR_SCORES) or abs(points * 2 - index) > 1e-9:
            raise ValueError(f"not the points of a game pair: {points!r}")
        counts[index] += 1
    return counts


def _gsprt_llr(values: Sequence[float], counts: Sequence[int], elo0: float, elo1: float) -> float:
    """Normal-approximation GSPRT log-likelihood ratio of the observed score distribution."""
    n = sum(counts)
    if n == 0:
        return 0.0
    mean = sum(v * c for v, c in zip(values, counts, strict=True)) / n
    var = sum(c * (v - mean) ** 2 for v, c in zip(values, counts, strict=True)) / n
    if var <= 0.0:
        return 0.0  # no spread (no games, or all results alike): no evidence either way yet
    s0, s1 = score_from_elo(elo0), score_from_elo(elo1)
    return n * (s1 - s0) * (2.0 * mean - s0 - s1) / (2.0 * var)


def sprt_llr_trinomial(wins: int, losses: int, draws: int, elo0: float, elo1: float) -> float:
    """LLR of H1 (``elo1``) against H0 (``elo0``) from the game results (per-game scores 1, 0.5, 0)."""
    return _gsprt_llr((1.0, 0.5, 0.0), (wins, draws, losses), elo0, elo1)


def sprt_llr_pentanomial(counts: Sequence[int], elo0: float, elo1: float) -> float:
    """LLR of H1 against H0 from pentanomial counts (per-pair scores 0, 1/4, 1/2, 3/4, 1)."""
    if len(counts) != len(PAIR_SCORES):
        raise ValueError(f"pentanomial counts need {len(PAIR_SCORES)} entries, not {len(counts)}")
    return _gsprt_llr([p / 2.0 for p in PAIR_SCORES], counts, elo0, elo1)


def sprt_bounds(alpha: float, beta: float) -> tuple[float, float]:
    """The (lower, upper) LLR bounds: ``log(beta / (1 - alpha))`` and ``log((1 - beta) / alpha)``."""
    return math.log(beta / (1.0 - alpha)), math.log((1.0 - beta) / alpha)


@dataclass(frozen=True)
class Sprt:
    """An SPRT of H0: Elo = ``elo0`` against H1: Elo = ``elo1`` with error rates ``alpha`` and ``beta``."""

    elo0: float = 0.0
    elo1: float = 10.0
    alpha: float = 0.05
    beta: float = 0.05
    model: str = "trinomial"

    def __post_init__(self) -> None:
        if not (0.0 < self.alpha < 1.0 and 0.0 < self.beta < 1.0):
            raise ValueError(f"alpha and beta must lie in (0, 1), not {self.alpha} and {self.beta}")
        if self.alpha + self.beta >= 1.0:
            raise ValueError("alpha + beta must be below 1")
        if self.elo0 >= self.elo1:
            raise ValueError(f"elo0 must be below elo1, not {self.elo0} and {self.elo1}")
        if self.model not in SPRT_MODELS:
            raise ValueError(f"model must be one of {', '.join(SPRT_MODELS)}, not {self.model!r}")

    @property
    def bounds(self) -> tuple[float, float]:
        """The (lower, upper) LLR bounds."""
        return sprt_bounds(self.alpha, self.beta)

    def llr(self, wins: int, losses: int, draws: int, penta: Sequence[int] | None = None) -> float:
        """The LLR of the results so far, by this test's model (pentanomial needs ``penta``)."""
        if self.model == "pentanomial":
            if penta is None:
                raise ValueError("the pentanomial SPRT needs the pair counts")
            return sprt_llr_pentanomial(penta, self.elo0, self.elo1)
        return sprt_llr_trinomial(wins, losses, draws, self.elo0, self.elo1)

    def decision(self, llr: float) -> str | None:
        """``"H0"`` or ``"H1"`` once ``llr`` reached a bound, else ``None`` (keep playing)."""
        lower, upper = self.bounds
        if llr >= upper:
            return "H1"
        if llr <= lower:
            return "H0"
        return None


def parse_sprt(text: str) -> Sprt:
    """An :class:`Sprt` from ``"elo0=0 elo1=10 alpha=0.05 beta=0.05 [model=pentanomial]"``; ValueError if bad."""
    fields: dict[str, float | str] = {}
    for token in text.replace(",", " ").split():
        key, sep, value = token.partition("=")
        key = key.strip().lower()
        if not sep or key not in ("elo0", "elo1", "alpha", "beta", "model"):
            raise ValueError(f"bad SPRT field {token!r} (expected elo0=, elo1=, alpha=, beta=, model=)")
        if key == "model":
            fields[key] = value.strip().lower()
            continue
        try:
            fields[key] = float(value)
        except ValueError:
            raise ValueError(f"bad SPRT number {token!r}") from None
    return Sprt(**fields)  # type: ignore[arg-type]


def format_score_line(first: str, second: str, wins: int, losses: int, draws: int) -> str:
    """``Score of A vs B: W - L - D  [0.xxx] N`` (cutechess-cli's line, without the newline)."""
    n = wins + losses + draws
    return f"Score of {first} vs {second}: {wins} - {losses} - {draws}  [{score(wins, losses, draws):.3f}] {n}"


def format_elo_line(wins: int, losses: int, draws: int) -> str:
    """``Elo difference: X +/- Y, LOS: Z %, DrawRatio: D %`` (cutechess-cli's line)."""
    elo = elo_from_score(score(wins, losses, draws))
    margin = elo_error_margin(wins, losses, draws)
    return (f"Elo difference: {elo:.1f} +/- {margin:.1f}, LOS: {100 * los(wins, losses):.1f} %, "
            f"DrawRatio: {100 * draw_ratio(wins, losses, draws):.1f} %")


def format_sprt_line(llr: float, sprt: Sprt, decision: str | None) -> str:
    """``SPRT: llr L (P%), lbound A, ubound B`` and, once decided, `` - H1 was accepted``."""
    lower, upper = sprt.bounds
    share = 100.0 * llr / (upper if llr >= 0 else -lower)
    line = f"SPRT: llr {llr:.3g} ({share:.1f}%), lbound {lower:.2f}, ubound {upper:.2f}"
    if decision:
        line += f" - {decision} was accepted"
    return line


def format_pentanomial_line(counts: Sequence[int]) -> str:
    """``Ptnml(0-2): [a, b, c, d, e]`` (fastchess's line)."""
    return "Ptnml(0-2): [" + ", ".join(str(c) for c in counts) + "]"
