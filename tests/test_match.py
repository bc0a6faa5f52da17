"""``azengine match`` with real engines: azengine, Stockfish and a small scripted UCI engine that misbehaves.

Games are short (few nodes, small clocks, a low ply cap): the point is the runner (colours, openings, clocks,
faults, PGN, statistics), not who wins; the bundled network is a weak placeholder.
"""

from __future__ import annotations

import io
import json
import random
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import chess
import chess.pgn
import pytest
from uci_client import engine_command

from engine.training.openings import find_stockfish
from uci import match
from uci.cli import main
from uci.match import statistics

try:
    STOCKFISH: str | None = find_stockfish()
except FileNotFoundError:
    STOCKFISH = None
needs_stockfish = pytest.mark.skipif(STOCKFISH is None, reason="stockfish is not installed")

# a real UCI engine in a few lines: plays its first legal move (in UCI order), or misbehaves as told
SCRIPTED_ENGINE = textwrap.dedent('''\
    import sys
    import time

    import chess

    mode = sys.argv[1]
    board = chess.Board()
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "uci":
            sys.stdout.write("id name scripted\\noption name Style type string default plain\\nuciok\\n")
        elif words[0] == "isready":
            sys.stdout.write("readyok\\n")
        elif words[0] == "position":
            start, rest = (chess.Board(), words[2:]) if words[1] == "startpos" else (
                chess.Board(" ".join(words[2:8])), words[8:])
            board = start
            for uci in rest[1:]:
                board.push_uci(uci)
        elif words[0] == "go":
            if mode == "crash":
                sys.exit(3)
            if mode == "hang":
                continue
            if mode == "slow":
                time.sleep(float(sys.argv[2]))
            if mode == "illegal" or (mode == "illegal-as-white" and board.turn == chess.WHITE):
                sys.stdout.write("bestmove e2e5\\n")
            else:
                move = min(board.legal_moves, key=lambda m: m.uci())
                score = sys.argv[2] if mode == "legal" and len(sys.argv) > 2 else "0"
                sys.stdout.write(f"info depth 1 score cp {score} nodes 1\\nbestmove {move.uci()}\\n")
        elif words[0] == "quit":
            break
        sys.stdout.flush()
''')

SCORE_LINE = re.compile(r"^Score of (\S+) vs (\S+): (\d+) - (\d+) - (\d+)  \[(\d\.\d{3})\] (\d+)$", re.M)
ELO_LINE = re.compile(r"^Elo difference: (-?[\d.]+|-?inf|nan) \+/- ([\d.]+|nan), LOS: ([\d.]+|nan) %, "
                      r"DrawRatio: ([\d.]+) %$", re.M)


def run_cli(*argv: str) -> tuple[int, str, str]:
    """``azengine match ARGV`` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["match", *argv])
    return code, out.getvalue(), err.getvalue()


def read_pgn(path: Path) -> list[chess.pgn.Game]:
    games = []
    with open(path, encoding="utf-8") as handle:
        while (game := chess.pgn.read_game(handle)) is not None:
            games.append(game)
    return games


def book_moves(game: chess.pgn.Game) -> list[str]:
    return [node.move.uci() for node in game.mainline() if node.comment.startswith("book")]


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("engines") / "scripted_engine.py"
    path.write_text(SCRIPTED_ENGINE)
    return path


def scripted_spec(script: Path, name: str, mode: str, *extra: str) -> str:
    args = " ".join(f"arg={a}" for a in (script, mode, *extra))
    return f"name={name} cmd={sys.executable} {args}"


@pytest.fixture(scope="module")
def az_vs_sf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str, str, Path, dict]]:
    """2 game pairs of azengine (20 nodes) against Stockfish at skill 0 (20 nodes), with PGN and JSON."""
    if STOCKFISH is None:
        pytest.skip("stockfish is not installed")
    folder = tmp_path_factory.mktemp("az_vs_sf")
    pgn, report = folder / "games.pgn", folder / "result.json"
    code, out, err = run_cli(
        "--engine", "name=az cmd=azengine", "--engine", f"name=sf cmd={STOCKFISH} option.Skill Level=0",
        "--each", "option.Threads=1", "--nodes", "20", "--games", "4", "--max-plies", "160", "--seed", "3",
        "--pgn", str(pgn), "--json", str(report))
    yield code, out, err, pgn, json.loads(report.read_text()) if report.exists() else {}


@needs_stockfish
def test_azengine_against_stockfish_completes_cleanly(az_vs_sf: tuple[int, str, str, Path, dict]) -> None:
    code, out, err, _, report = az_vs_sf
    assert code == 0, err
    result = report["result"]
    assert result["games"] == 4
    clean = {"time": 0, "illegal": 0, "crash": 0}
    assert result["faults"] == {"az": clean, "sf": clean}
    assert "Time losses: az 0, sf 0; illegal moves: az 0, sf 0; crashes: az 0, sf 0" in out
    score = SCORE_LINE.search(out)
    assert score and score.group(1, 2) == ("az", "sf") and int(score.group(7)) == 4
    w, lo, d = (int(score.group(i)) for i in (3, 4, 5))
    assert (w, lo, d) == (result["wins"], result["losses"], result["draws"]) and w + lo + d == 4
    assert ELO_LINE.search(out), out
    assert sum(result["pentanomial"]) == 2
    assert len(SCORE_LINE.findall(err)) == 4  # a progress line after every game


@needs_stockfish
def test_colours_alternate_within_each_opening_pair(az_vs_sf: tuple[int, str, str, Path, dict]) -> None:
    games = read_pgn(az_vs_sf[3])
    by_round = {g.headers["Round"]: g for g in games}
    assert sorted(by_round) == ["1.1", "1.2", "2.1", "2.2"]
    for pair in ("1", "2"):
        first, second = by_round[f"{pair}.1"], by_round[f"{pair}.2"]
        assert (first.headers["White"], first.headers["Black"]) == ("az", "sf")
        assert (second.headers["White"], second.headers["Black"]) == ("sf", "az")
        assert first.board().fen() == second.board().fen()
        assert book_moves(first) == book_moves(second) and book_moves(first)
    assert book_moves(by_round["1.1"]) != book_moves(by_round["2.1"])


@needs_stockfish
def test_pgn_parses_back_with_legal_moves(az_vs_sf: tuple[int, str, str, Path, dict]) -> None:
    games = read_pgn(az_vs_sf[3])
    assert len(games) == 4
    for game in games:
        assert not game.errors
        for tag in ("Event", "Site", "Date", "Round", "White", "Black", "Result", "TimeControl", "Termination"):
            assert game.headers.get(tag), tag
        board = game.board()
        for move in game.mainline_moves():
            assert board.is_legal(move), f"{move} illegal in {board.fen()}"
            board.push(move)
        outcome = board.outcome(claim_draw=True)
        if game.headers["Termination"] == "normal":
            assert outcome is not None and outcome.result() == game.headers["Result"]
        else:
            assert game.headers["Termination"] == "adjudication" and game.headers["Result"] == "1/2-1/2"
        assert len(book_moves(game)) <= 16


@needs_stockfish
def test_short_time_control_match_has_no_time_losses(tmp_path: Path) -> None:
    report = tmp_path / "tc.json"
    code, out, err = run_cli(
        "--engine", "name=az cmd=azengine", "--engine", f"name=sf cmd={STOCKFISH}",
        "--each", "option.Threads=1", "--tc", "2+0.05", "--games", "2", "--max-plies", "100", "--seed", "5",
        "--openings", str(match.BUNDLED_OPENINGS), "--json", str(report))
    assert code == 0, err
    result = json.loads(report.read_text())["result"]
    assert result["games"] == 2
    assert result["faults"]["az"]["time"] == 0 and result["faults"]["sf"]["time"] == 0
    assert "Time losses: az 0, sf 0;" in out
    assert json.loads(report.read_text())["settings"]["limits"]["tc"] == "2+0.05"


def test_illegal_moves_lose_and_are_counted(scripted: Path, tmp_path: Path) -> None:
    pgn = tmp_path / "g.pgn"
    code, out, err = run_cli("--engine", scripted_spec(scripted, "good", "legal"),
                             "--engine", scripted_spec(scripted, "bad", "illegal"),
                             "--nodes", "1", "--games", "2", "--pgn", str(pgn), "--seed", "1")
    assert code == 0, err
    assert "Score of good vs bad: 2 - 0 - 0  [1.000] 2" in out
    assert "illegal moves: good 0, bad 2" in out
    games = read_pgn(pgn)
    assert {g.headers["Termination"] for g in games} == {"rules infraction"}
    assert {g.headers["Result"] for g in games if g.headers["White"] == "bad"} == {"0-1"}


def test_crashed_engine_loses_and_is_restarted(scripted: Path) -> None:
    good = match.parse_engine_spec([scripted_spec(scripted, "good", "legal")])
    crashing = match.parse_engine_spec([scripted_spec(scripted, "crashing", "crash")])
    config = match.MatchConfig(engines=(good, crashing), openings=match.load_openings(match.BUNDLED_OPENINGS),
                               limits=match.GameLimits(nodes=1), games=4, seed=2)
    result = match.run_match(config, progress=io.StringIO())
    assert (result.wins, result.losses, result.draws) == (4, 0, 0)
    assert result.faults["crashing"] == {"time": 0, "illegal": 0, "crash": 4}
    assert {r.termination for r in result.records} == {"abandoned"}


def test_hung_engine_loses_on_time_and_slow_engine_loses_on_time(scripted: Path) -> None:
    good = match.parse_engine_spec([scripted_spec(scripted, "good", "legal")])
    hung = match.parse_engine_spec([scripted_spec(scripted, "hung", "hang")])
    openings = match.load_openings(match.BUNDLED_OPENINGS)
    config = match.MatchConfig(engines=(good, hung), openings=openings,
                               limits=match.GameLimits(nodes=1, move_timeout_s=0.5), games=2, seed=2)
    result = match.run_match(config, progress=io.StringIO())
    assert result.faults["hung"]["time"] == 2 and result.wins == 2
    assert all("loses on time" in r.detail for r in result.records)

    slow = match.parse_engine_spec([scripted_spec(scripted, "slow", "slow", "0.4")])
    config = match.MatchConfig(engines=(slow, good), openings=openings,
                               limits=match.GameLimits(tc=match.TimeControl(0.3)), games=2, seed=2)
    result = match.run_match(config, progress=io.StringIO())
    assert result.faults["slow"]["time"] == 2 and result.losses == 2
    assert {r.termination for r in result.records} == {"time forfeit"}


def test_sprt_stops_the_match_early(scripted: Path) -> None:
    # "half" forfeits every game it starts with white and draws the others (first-legal-move chess, ply cap)
    code, out, err = run_cli("--engine", scripted_spec(scripted, "half", "illegal-as-white"),
                             "--engine", scripted_spec(scripted, "good", "legal"), "--nodes", "1", "--games", "20",
                             "--max-plies", "20", "--opening-order", "sequential",
                             "--openings", str(match.BUNDLED_OPENINGS),
                             "--sprt", "elo0=0 elo1=100 alpha=0.2 beta=0.2")
    assert code == 0, err
    assert "Score of half vs good: 0 - 1 - 1  [0.250] 2" in out
    llr = statistics.sprt_llr_trinomial(0, 1, 1, 0, 100)
    assert f"SPRT: llr {llr:.3g}" in out and "H0 was accepted" in out
    assert "Match stopped early: SPRT: H0 accepted" in out


def test_adjudication_and_concurrency(scripted: Path, tmp_path: Path) -> None:
    pgn = tmp_path / "adj.pgn"
    # both report 0 cp: a draw once each side made 3 such moves (from move 0 on)
    code, out, err = run_cli("--engine", scripted_spec(scripted, "a", "legal"),
                             "--engine", scripted_spec(scripted, "b", "legal"), "--nodes", "1", "--games", "6",
                             "--concurrency", "2", "--draw-movenumber", "0", "--draw-movecount", "3",
                             "--pgn", str(pgn), "--seed", "4")
    assert code == 0, err
    assert "Score of a vs b: 0 - 0 - 6  [0.500] 6" in out and "Ptnml(0-2): [0, 0, 3, 0, 0]" in out
    games = read_pgn(pgn)
    assert sorted(g.headers["Round"] for g in games) == ["1.1", "1.2", "2.1", "2.2", "3.1", "3.2"]
    for game in games:
        assert game.headers["Termination"] == "adjudication" and game.headers["Result"] == "1/2-1/2"
        assert len(list(game.mainline_moves())) - len(book_moves(game)) == 6
    # "loser" reports -20 pawns: it resigns after its second such move
    code, out, err = run_cli("--engine", scripted_spec(scripted, "loser", "legal", "-2000"),
                             "--engine", scripted_spec(scripted, "b", "legal"), "--nodes", "1", "--games", "2",
                             "--resign-movecount", "2", "--seed", "4")
    assert code == 0, err
    assert "Score of loser vs b: 0 - 2 - 0  [0.000] 2" in out
    assert "Time losses: loser 0, b 0; illegal moves: loser 0, b 0; crashes: loser 0, b 0" in out


def test_quantization_shortcut_runs_both_studies(tmp_path: Path) -> None:
    import engine

    fp32 = engine.default_model_path()
    int8 = fp32.with_name(f"{fp32.stem}_static_quantized.pt")
    if not int8.is_file():
        pytest.skip(f"{int8} is missing (azengine quantize --type static)")
    report = tmp_path / "q.json"
    code, out, err = run_cli("--quantization", str(fp32), str(int8), "--nodes", "8", "--tc", "1+0.05", "--games",
                             "2", "--max-plies", "24", "--json", str(report))
    assert code == 0, err
    assert out.count("Score of fp32 vs int8:") == 2
    assert "== equal nodes (8 nodes per move) ==" in out and "== equal time (tc 1+0.05) ==" in out
    studies = json.loads(report.read_text())["studies"]
    assert [s["settings"]["limits"]["nodes"] for s in studies] == [8, None]
    assert [s["settings"]["limits"]["tc"] for s in studies] == [None, "1+0.05"]
    fp32_options, int8_options = (e["options"] for e in studies[0]["settings"]["engines"])
    assert fp32_options["Backend"] == "fp32" and "Backend" not in int8_options
    assert all(s["result"]["games"] == 2 for s in studies)
    assert all(s["result"]["faults"]["fp32"]["time"] == 0 for s in studies)


def test_engine_spec_parsing(scripted: Path) -> None:
    spec = match.parse_engine_spec([f"name=sf cmd={sys.executable} option.Skill Level=0 arg=-u"],
                                   ["option.Threads=1", "option.Skill Level=5"])
    assert spec.name == "sf" and spec.command == [sys.executable, "-u"]
    assert spec.options == {"Threads": "1", "Skill Level": "0"}
    quoted = match.parse_engine_spec(["name=x", f"cmd={sys.executable}", "option.Skill Level=3"])
    assert quoted.options == {"Skill Level": "3"}
    with pytest.raises(match.MatchError, match="is not executable"):
        match.parse_engine_spec([f"cmd={scripted}"])  # the script has no x bit
    assert match.parse_tc("10+0.1") == match.TimeControl(10, 0.1)
    assert match.parse_tc("1:30") == match.TimeControl(90, 0)
    assert match.parse_tc("inf") is None


def test_openings_from_pgn_and_epd(tmp_path: Path) -> None:
    pgn = tmp_path / "o.pgn"
    pgn.write_text('[ECO "C60"]\n[Opening "Ruy Lopez"]\n\n1. e4 e5 2. Nf3 Nc6 3. Bb5 a6 4. Ba4 Nf6 *\n\n'
                   '[FEN "4k3/8/8/8/8/8/4P3/4K3 w - - 0 1"]\n[SetUp "1"]\n\n1. e3 *\n')
    openings = match.load_openings(pgn, plies=4)
    assert [len(o.moves) for o in openings] == [4, 1]
    assert openings[0].label() == "C60 Ruy Lopez" and openings[1].fen == "4k3/8/8/8/8/8/4P3/4K3 w - - 0 1"
    epd = tmp_path / "o.epd"
    epd.write_text('# comment\nrnbqkbnr/pppppppp/8/8/4P3/8/PPPP1PPP/RNBQKBNR b KQkq - id "e4";\n'
                   "rnbqkbnr/pppppppp/8/8/3P4/8/PPP1PPPP/RNBQKBNR b KQkq - 0 1\n")
    assert [o.label() for o in match.load_openings(epd)] == ["e4", "rnbqkbnr/pppppppp/8/8/3P4/8/PPP1PPPP/RNBQKBNR b "
                                                             "KQkq - 0 1"]
    bundled = match.load_openings(match.BUNDLED_OPENINGS)
    assert 30 <= len(bundled) <= 60
    sequential = match.opening_schedule(bundled, len(bundled) + 2, "sequential", random.Random(0))
    assert sequential[: len(bundled)] == bundled and sequential[-2:] == bundled[:2]


@pytest.mark.parametrize(("argv", "message"), [
    (["--engine", "name=a cmd=azengine", "--nodes", "10"], "--engine must be given exactly twice"),
    (["--engine", "cmd=no-such-engine-xyz", "--engine", "cmd=azengine", "--nodes", "10"],
     "engine command not found: 'no-such-engine-xyz'"),
    (["--engine", "cmd=azengine", "--engine", "cmd=azengine", "--nodes", "10", "--openings", "/no/such.pgn"],
     "openings file not found: /no/such.pgn"),
    (["--engine", "cmd=azengine", "--engine", "cmd=azengine", "--tc", "ten+1"], "bad --tc 'ten+1'"),
    (["--engine", "cmd=azengine", "--engine", "cmd=azengine"], "give a limit"),
    (["--engine", "cmd=azengine option.MultiPV=2", "--engine", "cmd=azengine", "--nodes", "5"],
     "option MultiPV is managed"),
    (["--engine", "cmd=azengine", "--engine", "cmd=azengine", "--nodes", "5", "--sprt", "elo0=5 elo1=0"],
     "bad --sprt"),
])
def test_bad_input_exits_2_with_one_message(argv: list[str], message: str) -> None:
    code, out, err = run_cli(*argv)
    assert code == 2
    assert message in err and err.startswith("azengine match: error: ") and err.count("\n") == 1, err
    assert out == ""


def test_unknown_engine_option_exits_2(scripted: Path) -> None:
    code, _, err = run_cli("--engine", scripted_spec(scripted, "a", "legal") + " option.Nope=1",
                           "--engine", scripted_spec(scripted, "b", "legal"), "--nodes", "1", "--games", "2")
    assert code == 2 and err.startswith("azengine match: error: engine a: engine has no option 'Nope'")
    assert err.count("\n") == 1


def test_command_line_help_and_exit_code() -> None:
    exe = engine_command()
    shown = subprocess.run([*exe, "match", "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "--engine" in shown.stdout and "--quantization" in shown.stdout
    bad = subprocess.run([*exe, "match", "--engine", "cmd=azengine", "--nodes", "5"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "--engine must be given exactly twice" in bad.stderr
