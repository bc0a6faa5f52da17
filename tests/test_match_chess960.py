"""``azengine match --variant chess960`` with real engines: Stockfish against Stockfish, and a scripted UCI engine.

azengine itself does not play Chess960 here; the point is the runner: start positions drawn with the seed,
``UCI_Chess960`` on every engine, positions as Shredder-FEN, Chess960 castling, and PGN that re-reads.
"""

from __future__ import annotations

import json
import random
import re
import sys
import textwrap
from pathlib import Path

import chess
import chess.pgn
import pytest

from engine.training.openings import find_stockfish
from uci.match import chess960_openings, load_openings, opening_schedule

from test_match import read_pgn, run_cli  # isort: skip

try:
    STOCKFISH: str | None = find_stockfish()
except FileNotFoundError:
    STOCKFISH = None
needs_stockfish = pytest.mark.skipif(STOCKFISH is None, reason="stockfish is not installed")

START_POSITIONS = {chess.Board.from_chess960_pos(n).board_fen() for n in range(960)}

# Chess960 positions: kings on b1/b8 between rooks on a- and g-files (Shredder-FEN), and one in X-FEN
CASTLING_EPD = ("rk4r1/pppppppp/8/8/8/8/PPPPPPPP/RK4R1 w GAga - 0 1\n"
                "nrbqkbrn/pppppppp/8/8/8/8/PPPPPPPP/NRBQKBRN w KQkq - 0 1\n")

# a real UCI engine that announces UCI_Chess960 (or not), logs what it reads, castles when it can and else
# plays its first legal move in UCI order
SCRIPTED_ENGINE = textwrap.dedent('''\
    import sys

    import chess

    log, announce = open(sys.argv[1], "a"), sys.argv[2] == "announce"
    board = chess.Board(chess960=True)
    for line in sys.stdin:
        log.write(line)
        log.flush()
        words = line.split()
        if not words:
            continue
        if words[0] == "uci":
            chess960 = "option name UCI_Chess960 type check default false\\n" if announce else ""
            sys.stdout.write(f"id name castler\\n{chess960}uciok\\n")
        elif words[0] == "isready":
            sys.stdout.write("readyok\\n")
        elif words[0] == "position":
            start, rest = (chess.Board(chess960=True), words[2:]) if words[1] == "startpos" else (
                chess.Board(" ".join(words[2:8]), chess960=True), words[8:])
            board = start
            for uci in rest[1:]:
                board.push_uci(uci)
        elif words[0] == "go":
            moves = sorted(board.legal_moves, key=lambda m: (not board.is_castling(m), board.uci(m)))
            sys.stdout.write(f"info depth 1 score cp 0 nodes 1\\nbestmove {board.uci(moves[0])}\\n")
        elif words[0] == "quit":
            break
        sys.stdout.flush()
''')




def replay_chess960(game: chess.pgn.Game) -> tuple[chess.Board, int]:
    """The final board of a PGN game replayed by Chess960 rules, and how many castling moves it has."""
    assert not game.errors, game.errors
    assert game.headers["Variant"] == "Chess960" and game.headers["SetUp"] == "1" and game.headers["FEN"]
    board = game.board()
    assert board.chess960
    castles = 0
    for move in game.mainline_moves():
        assert board.is_legal(move), f"{move} illegal in {board.fen()}"
        castles += board.is_castling(move)
        board.push(move)
    if game.headers["Termination"] == "normal":
        outcome = board.outcome(claim_draw=True)
        assert outcome is not None and outcome.result() == game.headers["Result"]
    return board, castles


@pytest.fixture(scope="module")
def castler(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("engines") / "castler.py"
    path.write_text(SCRIPTED_ENGINE)
    return path


@needs_stockfish
def test_stockfish_chess960_games_from_seeded_start_positions(tmp_path: Path) -> None:
    pgn, report = tmp_path / "960.pgn", tmp_path / "960.json"
    code, out, err = run_cli(
        "--engine", f"name=sf1 cmd={STOCKFISH}", "--engine", f"name=sf2 cmd={STOCKFISH}",
        "--each", "option.Threads=1", "option.Hash=16", "--variant", "chess960", "--nodes", "200",
        "--games", "4", "--max-plies", "80", "--seed", "11", "--pgn", str(pgn), "--json", str(report))
    assert code == 0, err
    assert "Time losses: sf1 0, sf2 0; illegal moves: sf1 0, sf2 0; crashes: sf1 0, sf2 0" in out
    data = json.loads(report.read_text())
    assert data["settings"]["variant"] == "chess960" and data["result"]["games"] == 4
    games = read_pgn(pgn)
    assert len(games) == 4
    by_round = {g.headers["Round"]: g for g in games}
    for game in games:
        replay_chess960(game)
        assert game.board().board_fen() in START_POSITIONS
    # both games of a pair from the same position; the positions are the seed's draw
    drawn = opening_schedule(chess960_openings(), 2, "random", random.Random(11))
    for pair, opening in enumerate(drawn, 1):
        first, second = by_round[f"{pair}.1"], by_round[f"{pair}.2"]
        assert first.headers["FEN"] == second.headers["FEN"] == opening.fen
        assert (first.headers["White"], second.headers["White"]) == ("sf1", "sf2")
    assert drawn[0].fen != drawn[1].fen


@needs_stockfish
def test_stockfish_chess960_games_from_an_epd_file(tmp_path: Path) -> None:
    epd, pgn = tmp_path / "960.epd", tmp_path / "960.pgn"
    epd.write_text(CASTLING_EPD)
    code, out, err = run_cli(
        "--engine", f"name=sf1 cmd={STOCKFISH}", "--engine", f"name=sf2 cmd={STOCKFISH}",
        "--each", "option.Threads=1", "option.Hash=16", "--variant", "chess960", "--openings", str(epd),
        "--opening-order", "sequential", "--nodes", "200", "--games", "4", "--max-plies", "60", "--pgn", str(pgn))
    assert code == 0, err
    assert "illegal moves: sf1 0, sf2 0" in out
    expected = [chess.Board(line, chess960=True) for line in CASTLING_EPD.splitlines()]
    games = read_pgn(pgn)
    assert len(games) == 4
    for game in games:
        replay_chess960(game)
        pair = int(game.headers["Round"].split(".")[0])
        assert game.board().fen(shredder=True) == expected[pair - 1].fen(shredder=True)


def test_runner_sets_uci_chess960_sends_shredder_fen_and_accepts_chess960_castling(
        castler: Path, tmp_path: Path) -> None:
    epd, pgn, log = tmp_path / "castle.epd", tmp_path / "castle.pgn", tmp_path / "engine.log"
    epd.write_text(CASTLING_EPD.splitlines()[0] + "\n")
    engine = f"cmd={sys.executable} arg={castler} arg={log} arg=announce"
    code, out, err = run_cli("--engine", f"name=a {engine}", "--engine", f"name=b {engine}", "--variant", "chess960",
                             "--openings", str(epd), "--nodes", "1", "--games", "2", "--max-plies", "6",
                             "--pgn", str(pgn))
    assert code == 0, err
    assert "illegal moves: a 0, b 0" in out
    lines = log.read_text().splitlines()
    positions = [line for line in lines if line.startswith("position")]
    assert positions and all(p.startswith("position fen rk4r1/pppppppp/8/8/8/8/PPPPPPPP/RK4R1 w GAga - 0 1")
                             for p in positions)
    assert "setoption name UCI_Chess960 value true" in lines
    assert lines.index("setoption name UCI_Chess960 value true") < lines.index(positions[0])
    # both sides castled queenside, king takes rook in UCI: b1a1, b8a8
    assert any(re.search(r" moves b1a1 b8a8\b", p) for p in positions)
    for game in read_pgn(pgn):
        board, castles = replay_chess960(game)
        assert castles == 2
        moves = list(game.mainline())
        assert [node.san() for node in moves[:2]] == ["O-O-O", "O-O-O"]
        assert board.piece_at(chess.C1) == chess.Piece(chess.KING, chess.WHITE)
        assert board.piece_at(chess.D1) == chess.Piece(chess.ROOK, chess.WHITE)


def test_engine_without_uci_chess960_exits_2(castler: Path, tmp_path: Path) -> None:
    log = tmp_path / "engine.log"
    plain = f"cmd={sys.executable} arg={castler} arg={log} arg=plain"
    code, out, err = run_cli("--engine", f"name=plain {plain}", "--engine", f"name=other {plain}",
                             "--variant", "chess960", "--nodes", "1", "--games", "2")
    assert code == 2 and out == ""
    assert err == ("azengine match: error: engine plain: engine has no option UCI_Chess960, which --variant "
                   "chess960 needs\n")


def test_chess960_openings_files(tmp_path: Path) -> None:
    epd = tmp_path / "960.epd"
    epd.write_text(CASTLING_EPD)
    openings = load_openings(epd, variant="chess960")
    assert [o.start_board().fen(shredder=True).split()[2] for o in openings] == ["GAga", "GBgb"]
    assert all(o.start_board().chess960 for o in openings)
    # the same file read as standard chess: castling rights of rooks beside a king off e1 are not legal
    code, out, err = run_cli("--engine", "cmd=azengine", "--engine", "cmd=azengine", "--nodes", "1",
                             "--openings", str(epd))
    assert code == 2 and out == "" and f"{epd}:1: not a legal position" in err
    # a PGN of a Chess960 game, cut to 2 plies; castling moves become king-takes-rook
    pgn = tmp_path / "960.pgn"
    pgn.write_text('[Variant "Chess960"]\n[SetUp "1"]\n[FEN "rk4r1/pppppppp/8/8/8/8/PPPPPPPP/RK4R1 w GAga - 0 1"]\n\n'
                   "1. O-O-O O-O 2. a3 *\n")
    (opening,) = load_openings(pgn, plies=2, variant="chess960")
    board = opening.start_board()
    for move in opening.moves:
        board.push(move)
    assert board.board_fen() == "r4rk1/pppppppp/8/8/8/8/PPPPPPPP/2KR2R1"
    assert len(chess960_openings()) == 960
    assert {o.start_board().board_fen() for o in chess960_openings()} == START_POSITIONS
