"""The installed ``azengine`` under the match runners people use: fastchess and cutechess-cli.

``.ci/run`` builds both (``../shared/tools/build-tools.sh fastchess cutechess``, cached outside the
clone) and puts them on PATH; where they are absent these tests skip and say how to get them. Every
check reads the runner's own output: its compliance verdict, its ``Finished game`` lines (the
result comment names a time loss, an illegal move, a disconnect or a stall) and its warnings.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STOCKFISH = shutil.which("stockfish") or shutil.which("/usr/games/stockfish")
OPENINGS = ROOT / "uci" / "data" / "openings.epd"
BUILD_HINT = "bash ../shared/tools/build-tools.sh fastchess cutechess (then add its bin folder to PATH)"
MATCH_TIMEOUT_S = 600


def _soak():
    """benchmarks/soak.py, whose parser of the runners' game lines these tests share."""
    spec = importlib.util.spec_from_file_location("soak", ROOT / "benchmarks" / "soak.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("soak", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not on PATH: {BUILD_HINT}")
    return path


def _azengine() -> str:
    path = shutil.which("azengine")
    if path is None:
        pytest.skip("the azengine console script is not installed (pip install -e .)")
    return path


def _run(cmd: list[str], cwd: Path) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=MATCH_TIMEOUT_S, cwd=cwd)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    return output


def _assert_clean_games(output: str, games: int, ours: str | None = None) -> None:
    """All ``games`` finished, none with a failure of ours (``ours``: that engine; None: every engine)."""
    report = _soak().parse_runner_output(output, "match", ours)
    assert report.games == games, output[-3000:]
    assert report.failures == [], report.failures
    assert (report.time_losses, report.illegal_moves, report.stalls) == (0, 0, 0)
    warnings = [line for line in output.splitlines() if line.lower().startswith("warning")
                and (ours is None or ours in line)]
    assert warnings == [], warnings


def test_fastchess_compliance() -> None:
    fastchess = _tool("fastchess")
    done = subprocess.run([fastchess, "--compliance", _azengine()], capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "passed all compliance checks" in output, output[-3000:]
    assert "Failed" not in output, output[-3000:]


def test_fastchess_match_fp32_against_static_int8_at_100_nodes(tmp_path: Path) -> None:
    fastchess, azengine = _tool("fastchess"), _azengine()
    output = _run([fastchess,
                   "-engine", f"cmd={azengine}", "name=az-fp32", "option.Backend=fp32",
                   "-engine", f"cmd={azengine}", "name=az-int8", "option.Backend=static-int8",
                   "-each", "proto=uci", "tc=inf", "nodes=100", "option.Threads=1",
                   "-openings", f"file={OPENINGS}", "format=epd", "order=sequential",
                   "-rounds", "2", "-repeat", "-concurrency", "1", "-maxmoves", "80",
                   "-draw", "movenumber=30", "movecount=6", "score=15", "-resign", "movecount=4", "score=700",
                   "-pgnout", f"file={tmp_path / 'games.pgn'}"], tmp_path)
    _assert_clean_games(output, 4)


def test_cutechess_match_against_stockfish_at_1_plus_0_01(tmp_path: Path) -> None:
    cutechess, azengine = _tool("cutechess-cli"), _azengine()
    if STOCKFISH is None:
        pytest.skip("Stockfish is not installed (apt-get install stockfish)")
    output = _run([cutechess,
                   "-engine", "name=azengine", f"cmd={azengine}", "proto=uci",
                   "-engine", "name=stockfish", f"cmd={STOCKFISH}", "proto=uci", "option.Threads=1",
                   "option.Hash=16", "option.UCI_LimitStrength=true", "option.UCI_Elo=1350",
                   "-each", "tc=1+0.01", "timemargin=0",
                   "-openings", f"file={OPENINGS}", "format=epd", "order=sequential",
                   "-games", "2", "-rounds", "2", "-repeat", "-maxmoves", "100",
                   "-draw", "movenumber=30", "movecount=6", "score=15", "-resign", "movecount=4", "score=700",
                   "-pgnout", str(tmp_path / "games.pgn")], tmp_path)
    _assert_clean_games(output, 4, "azengine")  # a loaded machine may flag Stockfish: not ours to test


def test_soak_quick_runs() -> None:
    """``benchmarks/soak.py --quick`` runs and reports (a few seconds); its verdicts are the soak's, not CI's."""
    _azengine()
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--quick"], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]  # 1: a failure was counted
    assert "RSS growth per node" in done.stdout and "bestmove" in done.stdout, done.stdout
    if shutil.which("cutechess-cli"):
        assert re.search(r"^1\+0\.01: 2 games, \d+ time losses, 0 illegal moves, 0 stalls", done.stdout, re.M), \
            done.stdout
