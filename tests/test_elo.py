"""Match statistics of ``uci.match.statistics`` against values worked out here from the published formulas."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uci.match import statistics as elo


def test_elo_of_a_75_percent_score() -> None:
    assert elo.elo_from_score(0.75) == pytest.approx(190.85, abs=0.01)
    assert elo.elo_from_score(0.25) == pytest.approx(-190.85, abs=0.01)
    assert elo.score(65, 15, 20) == 0.75  # 65 + 20/2 points of 100
    assert elo.elo_from_score(elo.score(65, 15, 20)) == pytest.approx(190.85, abs=0.01)


def test_even_score_is_zero_elo() -> None:
    assert elo.elo_from_score(0.5) == 0.0
    assert elo.elo_from_score(elo.score(10, 10, 30)) == 0.0


def test_extreme_and_empty_scores() -> None:
    assert elo.elo_from_score(1.0) == math.inf
    assert elo.elo_from_score(0.0) == -math.inf
    assert math.isnan(elo.elo_from_score(1.2))
    assert math.isnan(elo.score(0, 0, 0))
    assert math.isnan(elo.los(0, 0))
    assert elo.format_elo_line(0, 0, 0) == "Elo difference: nan +/- nan, LOS: nan %, DrawRatio: nan %"


@given(st.floats(min_value=-1500, max_value=1500))
def test_score_and_elo_are_inverse(x: float) -> None:
    assert elo.elo_from_score(elo.score_from_elo(x)) == pytest.approx(x, abs=1e-6)


def test_error_margin_los_and_draw_ratio_of_30_20_50() -> None:
    w, lo, d = 30, 20, 50
    n = w + lo + d
    # cutechess: mu, per-game variance from the fractions, standard error, Elo of mu -/+ 1.959964 sigma
    mu = (w + d / 2) / n
    assert mu == pytest.approx(0.55)
    dev_w = (w / n) * (1 - mu) ** 2  # 0.3 * 0.2025 = 0.06075
    dev_l = (lo / n) * (0 - mu) ** 2  # 0.2 * 0.3025 = 0.0605
    dev_d = (d / n) * (0.5 - mu) ** 2  # 0.5 * 0.0025 = 0.00125
    stdev = math.sqrt(dev_w + dev_l + dev_d) / math.sqrt(n)
    assert stdev == pytest.approx(0.035)  # sqrt(0.1225) / 10
    hi, lo_mu = mu + 1.959964 * stdev, mu - 1.959964 * stdev
    expected_margin = (-400 * math.log10(1 / hi - 1) + 400 * math.log10(1 / lo_mu - 1)) / 2
    assert elo.elo_error_margin(w, lo, d) == pytest.approx(expected_margin, rel=1e-12)
    assert elo.elo_error_margin(w, lo, d) == pytest.approx(48.5, abs=0.05)
    expected_los = 0.5 + 0.5 * math.erf((30 - 20) / math.sqrt(2 * (30 + 20)))
    assert elo.los(w, lo) == pytest.approx(expected_los, rel=1e-12)
    assert elo.los(w, lo) == pytest.approx(0.9214, abs=1e-4)
    assert elo.draw_ratio(w, lo, d) == 0.5
    assert elo.elo_from_score(mu) == pytest.approx(34.86, abs=0.01)


def test_cutechess_lines() -> None:
    assert elo.format_score_line("fp32", "int8", 30, 20, 50) == "Score of fp32 vs int8: 30 - 20 - 50  [0.550] 100"
    assert elo.format_elo_line(30, 20, 50) == "Elo difference: 34.9 +/- 48.5, LOS: 92.1 %, DrawRatio: 50.0 %"


def test_pentanomial_counts_pair_results() -> None:
    pairs = [(1, 1), (1, 0.5), (0.5, 0.5), (1, 0), (0, 0.5), (0, 0), (0.5, 1), (0.5, 0)]
    assert elo.pentanomial(a + b for a, b in pairs) == [1, 2, 2, 2, 1]
    assert elo.pentanomial([]) == [0, 0, 0, 0, 0]
    assert elo.format_pentanomial_line([1, 2, 2, 2, 1]) == "Ptnml(0-2): [1, 2, 2, 2, 1]"
    with pytest.raises(ValueError):
        elo.pentanomial([2.5])
    with pytest.raises(ValueError):
        elo.pentanomial([0.75])


def test_sprt_llr_trinomial_worked_example() -> None:
    # W-L-D 30-20-50, H0: 0 Elo, H1: 10 Elo
    n = 100
    mean = (30 * 1 + 50 * 0.5 + 20 * 0) / n  # 0.55
    var = (30 * (1 - mean) ** 2 + 50 * (0.5 - mean) ** 2 + 20 * (0 - mean) ** 2) / n  # 0.1225
    assert var == pytest.approx(0.1225)
    s0 = 1 / (1 + 10 ** (-0 / 400))  # 0.5
    s1 = 1 / (1 + 10 ** (-10 / 400))  # 0.514387...
    assert s1 == pytest.approx(0.5143871841659987)
    llr = n * (s1 - s0) * (2 * mean - s0 - s1) / (2 * var)
    assert llr == pytest.approx(0.50275, abs=1e-5)
    assert elo.sprt_llr_trinomial(30, 20, 50, 0, 10) == pytest.approx(llr, rel=1e-12)


def test_sprt_llr_pentanomial_worked_example() -> None:
    counts = [1, 2, 2, 2, 1]  # pairs scoring 0, 0.5, 1, 1.5, 2 points
    values = [0, 0.25, 0.5, 0.75, 1]  # the pair scores as a fraction of 2 points
    n = sum(counts)
    mean = sum(c * v for c, v in zip(counts, values, strict=True)) / n  # 0.5
    var = sum(c * (v - mean) ** 2 for c, v in zip(counts, values, strict=True)) / n  # 0.078125
    s0, s1 = 1 / (1 + 10 ** (5 / 400)), 1 / (1 + 10 ** (-15 / 400))  # H0: -5, H1: +15 Elo
    llr = n * (s1 - s0) * (2 * mean - s0 - s1) / (2 * var)
    assert elo.sprt_llr_pentanomial(counts, -5, 15) == pytest.approx(llr, rel=1e-12)
    assert llr < 0  # an even score favours the hypothesis nearer 0


def test_sprt_bounds_and_decisions() -> None:
    lower, upper = elo.sprt_bounds(0.05, 0.05)
    assert lower == pytest.approx(math.log(0.05 / 0.95)) and lower == pytest.approx(-2.944, abs=1e-3)
    assert upper == pytest.approx(math.log(0.95 / 0.05)) and upper == pytest.approx(2.944, abs=1e-3)
    test = elo.parse_sprt("elo0=0 elo1=10 alpha=0.05 beta=0.05")
    assert test == elo.Sprt(0, 10, 0.05, 0.05, "trinomial")
    assert test.decision(0.5) is None
    assert test.decision(2.95) == "H1"
    assert test.decision(-2.95) == "H0"
    # a clear plus score ends the test with H1, a clear minus with H0, an even one keeps it going
    assert test.decision(test.llr(600, 400, 1000)) == "H1"
    assert test.decision(test.llr(400, 600, 1000)) == "H0"
    assert test.decision(test.llr(30, 20, 50)) is None
    # no spread in the results: no evidence yet
    assert test.llr(5, 0, 0) == 0.0 and test.decision(test.llr(5, 0, 0)) is None
    penta = elo.parse_sprt("elo0=0, elo1=10, alpha=0.1, beta=0.1, model=pentanomial")
    assert penta.model == "pentanomial"
    assert penta.llr(0, 0, 0, [0, 0, 5, 20, 5]) == pytest.approx(elo.sprt_llr_pentanomial([0, 0, 5, 20, 5], 0, 10))
    assert elo.format_sprt_line(0.5028, test, None) == "SPRT: llr 0.503 (17.1%), lbound -2.94, ubound 2.94"
    assert elo.format_sprt_line(3.0, test, "H1").endswith(" - H1 was accepted")


@pytest.mark.parametrize("text", ["elo0=10 elo1=0", "alpha=0", "beta=1", "elo0=x", "gamma=1", "model=binomial",
                                  "alpha=0.6 beta=0.6"])
def test_bad_sprt_settings(text: str) -> None:
    with pytest.raises(ValueError):
        elo.parse_sprt(text)
