"""Chess960 in the search's C rules (``search/movegen.c`` through ``_mcts.Position``) against python-chess.

Perft of positions of the standard Chess960 perft list (the Chess Programming Wiki's "Chess960 Perft
Results", also python-chess's ``examples/perft/chess960.perft``), then random Chess960 games where after
every move the legal moves, key, check, clock, input bitboards and castling policy indices must equal
python-chess's, then positions that test single castling rules, and a search that castles. Then
``UCI_Chess960``: X-FEN and Shredder-FEN, castling moves in and out, the castling input planes, games
against Stockfish through python-chess and, when fastchess or cutechess-cli is built, a short match.
"""

from __future__ import annotations

import os
import random
import shlex
import shutil
import subprocess
from pathlib import Path

import chess
import chess.engine
import pytest
from test_movegen import assert_same_rules
from uci_client import RawEngine, engine_command

from engine import UniformEvaluator, encode_position
from engine.encoding import move_to_index
from search import Limits, Searcher, SearchParams, _mcts, position_key
from uci.protocol import parse_position

STOCKFISH = shutil.which("stockfish") or ("/usr/games/stockfish" if shutil.which("/usr/games/stockfish") else None)
LOAD_S = 120.0
MOVE_S = 60.0

# (id in the list, position, published perft 4): ids 0-9 and every hundredth.
CHESS960_PERFT = [
    (0, "bqnb1rkr/pp3ppp/3ppn2/2p5/5P2/P2P4/NPP1P1PP/BQ1BNRKR w HFhf -", 326672),
    (1, "2nnrbkr/p1qppppp/8/1ppb4/6PP/3PP3/PPP2P2/BQNNRBKR w HEhe -", 667366),
    (2, "b1q1rrkb/pppppppp/3nn3/8/P7/1PPP4/4PPPP/BQNNRKRB w GE -", 273318),
    (3, "qbbnnrkr/2pp2pp/p7/1p2pp2/8/P3PP2/1PPP1KPP/QBBNNR1R w hf -", 382958),
    (4, "1nbbnrkr/p1p1ppp1/3p4/1p3P1p/3Pq2P/8/PPP1P1P1/QNBBNRKR w HFhf -", 1171749),
    (5, "qnbnr1kr/ppp1b1pp/4p3/3p1p2/8/2NPP3/PPP1BPPP/QNB1R1KR w HEhe -", 824055),
    (6, "q1bnrkr1/ppppp2p/2n2p2/4b1p1/2NP4/8/PPP1PPPP/QNB1RRKB w ge -", 732757),
    (7, "qbn1brkr/ppp1p1p1/2n4p/3p1p2/P7/6PP/QPPPPP2/1BNNBRKR w HFhf -", 465806),
    (8, "qnnbbrkr/1p2ppp1/2pp3p/p7/1P5P/2NP4/P1P1PPP1/Q1NBBRKR w HFhf -", 384260),
    (9, "qn1rbbkr/ppp2p1p/1n1pp1p1/8/3P4/P6P/1PP1PPPK/QNNRBB1R w hd -", 679699),
    (100, "qnbbr1kr/pp1ppp1p/4n3/6p1/2p3P1/2PP1P2/PP2P2P/QNBBRNKR w HEhe -", 450189),
    (200, "qnrbb1nr/pp1p1ppp/2p2k2/4p3/4P3/5PPP/PPPP4/QNRBBKNR w HC -", 241640),
    (300, "qnrbkrbn/1p1p1pp1/p1p5/4p2p/8/3P1P2/PPP1P1PP/QNRBKRBN w FCfc -", 440930),
    (400, "brqb1nkr/pppppp1p/8/4N1pn/5P2/6P1/PPPPP2P/BRQB1NKR w HBhb -", 331666),
    (500, "r1bbnk1r/qpp1pppp/p6n/3p4/1P6/5N1P/P1PPPPP1/RQBBK1NR w ha -", 587364),
    (600, "rqnbbkrn/p1p1pppp/3p4/1p5B/8/1P1NP3/P1PP1PPP/RQ2BKRN w GAga -", 422491),
    (700, "rqkb1nbr/p1p1ppp1/1p3n1p/2Qp4/8/2P5/PP1PPPPP/R1KBNNBR w HAha -", 940989),
    (800, "brkbqnrn/2pp1ppp/8/1p2p3/Pp2N3/8/2PPPPPP/BRKBQNR1 w GBgb -", 757837),
    (900, "rkbbqr1n/1p1pppp1/2p2n2/p4NBp/8/3P4/PPP1PPPP/RK1BQRN1 w FAfa -", 728154),
    (959, "bbq1nr1r/pppppk1p/2n2p2/6p1/P4P2/4P1P1/1PPP3P/BBQNNRKR w HF -", 387556),
]


def board960(epd: str) -> chess.Board:
    return chess.Board(epd if epd.count(" ") >= 5 else epd + " 0 1", chess960=True)


def python_chess_perft(board: chess.Board, depth: int) -> int:
    if depth == 1:
        return board.legal_moves.count()
    total = 0
    for move in board.legal_moves:
        board.push(move)
        total += python_chess_perft(board, depth - 1)
        board.pop()
    return total


@pytest.mark.parametrize(("ident", "epd", "perft4"), CHESS960_PERFT, ids=[str(p[0]) for p in CHESS960_PERFT])
def test_perft_of_the_chess960_list(ident: int, epd: str, perft4: int) -> None:
    board = board960(epd)
    position = _mcts.Position(board)
    assert [position.perft(d) for d in (1, 2, 3)] == [python_chess_perft(board, d) for d in (1, 2, 3)]
    assert position.perft(4) == perft4


def assert_same_960_rules(position: _mcts.Position, board: chess.Board) -> None:
    assert_same_rules(position, board)
    for move in board.legal_moves:
        if board.is_castling(move):
            assert position.policy_index(_mcts.encode_move(move)) == move_to_index(board, move), board.fen()


def test_random_chess960_games_follow_python_chess() -> None:
    """Random games from random start positions, castling whenever a coin says so, checked move by move."""
    rng = random.Random(960)
    checked = castled = 0
    for _ in range(80):
        board = chess.Board.from_chess960_pos(rng.randrange(960))
        position = _mcts.Position(board)
        for _ in range(160):
            assert_same_960_rules(position, board)
            checked += 1
            legal = list(board.legal_moves)
            if not legal:
                break
            castles = [m for m in legal if board.is_castling(m)]
            move = rng.choice(castles) if castles and rng.random() < 0.5 else rng.choice(legal)
            castled += move in castles
            board.push(move)
            position.push(_mcts.encode_move(move))
    assert checked > 8000
    assert castled > 40


@pytest.mark.parametrize("fen", [
    # the castling rook on b1 shields the king's destination c1 from the rook on a1: O-O-O is illegal
    "1k6/8/8/8/8/8/8/rR1K4 w B - 0 1",
    # the same with a knight on a1 (attacks b3 and c2 only): O-O-O is legal although a1 is not ours
    "1k6/8/8/8/8/8/8/nR1K4 w B - 0 1",
    # the castling rook itself attacked: castling is still legal
    "1r2k3/8/8/8/8/8/8/1R2K3 w B - 0 1",
    # king on g1 castles short without moving (only the rook moves); king on c1 castles long the same way
    "4k3/8/8/8/8/8/8/6KR w H - 0 1",
    "4k3/8/8/8/8/8/8/R1K5 w A - 0 1",
    # king on b1 castles long to the east (c1), rook a1 -> d1; a piece on d1 blocks it
    "4k3/8/8/8/8/8/8/RK6 w A - 0 1",
    "4k3/8/8/8/8/8/8/RK1N4 w A - 0 1",
    # king on f1 castles long through e1, d1 to c1: an attack on e1 forbids it
    "4k3/4r3/8/8/8/8/8/R4K2 w A - 0 1",
    # the king's destination occupied by the other castling rook's path; both rooks, both sides
    "r3k2r/8/8/8/8/8/8/1R2K1R1 w GBkq - 0 1",
    # king in check: no castling; black castles with rooks on b8 and g8
    "1r2k1r1/8/8/8/8/8/8/R3K2q b Gb - 0 1",
    "1r2k1r1/8/8/8/8/8/8/R3K3 b Gb - 0 1",
])
def test_castling_rules(fen: str) -> None:
    board = chess.Board(fen, chess960=True)
    position = _mcts.Position(board)
    assert_same_960_rules(position, board)
    for move in board.legal_moves:
        child = _mcts.Position(board)
        child.push(_mcts.encode_move(move))
        board.push(move)
        assert_same_960_rules(child, board)
        board.pop()


def test_b_file_rook_shield() -> None:
    """The point of the positions holds: O-O-O only without the a1 rook, and with the castling rook attacked."""
    shielded = chess.Board("1k6/8/8/8/8/8/8/rR1K4 w B - 0 1", chess960=True)
    assert chess.Move.from_uci("d1b1") not in shielded.legal_moves
    harmless = chess.Board("1k6/8/8/8/8/8/8/nR1K4 w B - 0 1", chess960=True)
    assert chess.Move.from_uci("d1b1") in harmless.legal_moves
    assert _mcts.encode_move(chess.Move.from_uci("d1b1")) in _mcts.Position(harmless).legal_moves()
    assert _mcts.encode_move(chess.Move.from_uci("d1b1")) not in _mcts.Position(shielded).legal_moves()
    # the castling rook itself attacked (by the rook on b8) does not matter
    attacked_rook = chess.Board("1r2k3/8/8/8/8/8/8/1R2K3 w B - 0 1", chess960=True)
    assert chess.Move.from_uci("e1b1") in attacked_rook.legal_moves
    assert _mcts.encode_move(chess.Move.from_uci("e1b1")) in _mcts.Position(attacked_rook).legal_moves()


def test_keys_tell_chess960_rights_apart() -> None:
    """The standard start position as Chess960 (no. 518) castles differently (e1h1): another key."""
    standard, as960 = chess.Board(), chess.Board(chess960=True)
    assert position_key(standard) != position_key(as960)
    # without castling rights the positions and their moves are the same
    bare = "4k3/8/8/8/8/8/8/4K3 w - - 0 1"
    assert position_key(chess.Board(bare)) == position_key(chess.Board(bare, chess960=True))
    # rights of different rooks: different keys
    a = chess.Board("1r2k1r1/8/8/8/8/8/8/1R2K1R1 w GB - 0 1", chess960=True)
    b = chess.Board("1r2k1r1/8/8/8/8/8/8/1R2K1R1 w G - 0 1", chess960=True)
    assert position_key(a) != position_key(b)


def test_search_on_a_chess960_board_castles_as_king_takes_rook() -> None:
    """The tree searches Chess960 positions; the castling move it reports is python-chess's (king takes rook)."""
    board = chess.Board("1r2k1r1/pppppppp/8/8/8/8/PPPPPPPP/1R2K1R1 w GBgb - 0 1", chess960=True)
    searcher = Searcher(UniformEvaluator(), SearchParams(smart_pruning_factor=0.0))
    try:
        result = searcher.search(board, Limits(nodes=400), reset_signals=True)
        assert result.best_move in board.legal_moves
        codes = {e[0] for e in searcher.tree.root_edges()}
        assert codes == {_mcts.encode_move(m) for m in board.legal_moves}
        assert _mcts.encode_move(chess.Move.from_uci("e1g1")) in codes  # O-O: king e1 takes rook g1
        assert _mcts.encode_move(chess.Move.from_uci("e1b1")) in codes  # O-O-O: king e1 takes rook b1
    finally:
        searcher.close()


def test_castling_planes_follow_the_rooks_side_of_the_king() -> None:
    """Planes 12-15 (our O-O, their O-O, our O-O-O, their O-O-O) from the Chess960 rights."""
    board = chess.Board("1r2k1r1/8/8/8/8/8/8/1R2K1R1 b Gb - 0 1", chess960=True)  # white g1 (h-side), black b8
    planes = encode_position(board)  # black to move: "our" rights are black's
    assert [bool(planes[i].all()) for i in range(12, 16)] == [False, True, True, False]
    assert [bool(planes[i].any()) for i in range(12, 16)] == [False, True, True, False]
    # king on g1, rook on h1: the h-side right is O-O although the king does not move
    board = chess.Board("4k3/8/8/8/8/8/8/6KR w H - 0 1", chess960=True)
    assert [bool(encode_position(board)[i].all()) for i in range(12, 16)] == [True, False, False, False]


def test_parse_position_reads_x_fen_and_shredder_fen() -> None:
    shredder = parse_position(["fen", "qrkbbnrn/pppppppp/8/8/8/8/PPPPPPPP/QRKBBNRN", "w", "GBgb", "-", "0", "1"],
                              chess960=True).board
    x_fen = parse_position(["fen", "qrkbbnrn/pppppppp/8/8/8/8/PPPPPPPP/QRKBBNRN", "w", "KQkq", "-", "0", "1"],
                           chess960=True).board
    assert shredder.chess960 and x_fen.chess960
    assert shredder.clean_castling_rights() == x_fen.clean_castling_rights() == (
        chess.BB_B1 | chess.BB_G1 | chess.BB_B8 | chess.BB_G8)
    # castling moves: the king takes its rook; the king's two-square move is understood where unambiguous
    corners = ["fen", "r3k2r/8/8/8/8/8/8/R3K2R", "w", "KQkq", "-", "0", "1", "moves"]
    for move in ("e1h1", "e1g1"):
        parsed = parse_position(corners + [move], chess960=True)
        assert parsed.error is None and parsed.board.board_fen() == "r3k2r/8/8/8/8/8/8/R4RK1"
    # standard chess as before: a standard board
    standard = parse_position(corners + ["e1g1"]).board
    assert standard.board_fen() == "r3k2r/8/8/8/8/8/8/R4RK1" and not standard.chess960


@pytest.mark.parametrize(("chess960", "castle"), [(True, "e1h1"), (True, "e1a1"), (False, "e1g1"), (False, "e1c1")])
def test_uci_castling_move_format(chess960: bool, castle: str) -> None:
    """UCI_Chess960 on: castling is sent as the king taking its rook; off: the king's two-square move."""
    with RawEngine() as eng:
        eng.handshake(LOAD_S)
        eng.send(f"setoption name UCI_Chess960 value {'true' if chess960 else 'false'}",
                 "position fen r3k2r/pppppppp/8/8/8/8/PPPPPPPP/R3K2R w KQkq - 0 1",
                 f"go nodes 20 searchmoves {castle}")
        _, line, _ = eng.wait_for("bestmove", MOVE_S)
        assert line.split()[1] == castle
        # the engine reads its own castling move back
        eng.send(f"position fen r3k2r/pppppppp/8/8/8/8/PPPPPPPP/R3K2R w KQkq - 0 1 moves {castle}", "d")
        _, line, before = eng.wait_for("info string fen", MOVE_S)
        assert line.split()[3].startswith("r3k2r/pppppppp/8/8/8/8/PPPPPPPP/"), line
        assert not [b for b in before if "error" in b]
        assert eng.bad_stdout_lines() == []


@pytest.mark.skipif(STOCKFISH is None, reason="Stockfish is not installed")
def test_chess960_game_against_stockfish_through_python_chess() -> None:
    """python-chess sets UCI_Chess960 and sends Shredder-FENs and king-takes-rook moves; every reply is legal."""
    rng = random.Random(96)
    with chess.engine.SimpleEngine.popen_uci(engine_command(), timeout=LOAD_S) as ours, \
            chess.engine.SimpleEngine.popen_uci(STOCKFISH, timeout=LOAD_S) as stockfish:
        for number in (rng.randrange(960), 518):
            board = chess.Board.from_chess960_pos(number)
            while not board.is_game_over(claim_draw=True) and board.ply() < 40:
                if board.turn == chess.WHITE:
                    move = ours.play(board, chess.engine.Limit(nodes=40)).move
                else:
                    move = stockfish.play(board, chess.engine.Limit(depth=2)).move
                assert move in board.legal_moves, f"{move} illegal in {board.fen()}"
                board.push(move)


# ----- a Chess960 match under a real match runner -----------------------------------------------------

TOOLS = Path(os.environ.get("AZ_TOOLS", "~/.cache/azengine-tools/bin")).expanduser()
RUNNERS = ["fastchess", "cutechess-cli"]


@pytest.mark.skipif(STOCKFISH is None, reason="Stockfish is not installed")
@pytest.mark.parametrize("runner", RUNNERS)
def test_chess960_match_under_a_runner(runner: str, tmp_path: Path) -> None:
    """Two games from Chess960 start positions against Stockfish (the runner sets UCI_Chess960 on both):
    no illegal move, no loss on time, no crash."""
    binary = TOOLS / runner
    if not binary.exists():
        pytest.skip(f"{runner} is not built ({binary}); see ../shared/tools/build-tools.sh")
    openings = tmp_path / "chess960.epd"
    openings.write_text("".join(chess.Board.from_chess960_pos(n).epd(shredder=True) + "\n" for n in (100, 777)))
    ours = " ".join(shlex.quote(part) for part in engine_command())
    common = ["-variant", "fischerandom", "-openings", f"file={openings}", "format=epd", "order=sequential",
              "-rounds", "1", "-games", "2", "-maxmoves", "80"]
    if runner == "fastchess":
        command = [str(binary), "-engine", f"cmd={ours}", "name=azengine", "-engine", f"cmd={STOCKFISH}",
                   "name=stockfish", "-each", "tc=8+0.08", *common]
    else:
        command = [str(binary), "-engine", f"cmd={ours}", "name=azengine", "-engine", f"cmd={STOCKFISH}",
                   "name=stockfish", "-each", "proto=uci", "tc=8+0.08", *common]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    output = done.stdout + done.stderr
    finished = [line for line in output.splitlines() if line.startswith("Finished game")]
    assert done.returncode == 0 and len(finished) == 2, output[-3000:]
    for line in finished:
        reason = line.rsplit("{", 1)[-1].lower()
        assert not any(word in reason for word in ("illegal", "time", "disconnect", "stall", "crash")), line
    assert "illegal" not in output.lower(), output[-3000:]
