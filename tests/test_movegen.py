"""The search's C rules (``search/movegen.c`` through ``_mcts.Position``) against python-chess.

Perft counts of the standard test positions, then random games from real positions where after every
move the legal moves, key, check, insufficient material, 50-move clock and input bitboards must equal
python-chess's.
"""

from __future__ import annotations

import random
from importlib import resources

import chess
import pytest

from engine.encoding import bitboard_row
from search import _mcts, position_key

# (FEN, perft counts by depth from 1): the standard positions of the Chess Programming Wiki's perft page.
PERFT_POSITIONS = [
    (chess.STARTING_FEN, [20, 400, 8902, 197281]),
    ("r3k2r/p1ppqpb1/bn2pnp1/3PN3/1p2P3/2N2Q1p/PPPBBPPP/R3K2R w KQkq - 0 1", [48, 2039, 97862]),
    ("8/2p5/3p4/KP5r/1R3p1k/8/4P1P1/8 w - - 0 1", [14, 191, 2812, 43238, 674624]),
    ("r3k2r/Pppp1ppp/1b3nbN/nP6/BBP1P3/q4N2/Pp1P2PP/R2Q1RK1 w kq - 0 1", [6, 264, 9467, 422333]),
    ("rnbq1k1r/pp1Pbppp/2p5/8/2B5/8/PPP1NnPP/RNBQK2R w KQ - 1 8", [44, 1486, 62379]),
    ("r4rk1/1pp1qppp/p1np1n2/2b1p1B1/2B1P1b1/P1NP1N2/1PP1QPPP/R4RK1 w - - 0 10", [46, 2079, 89890]),
]


def codes(board: chess.Board) -> set[int]:
    return {_mcts.encode_move(m) for m in board.legal_moves}


def assert_same_rules(position: _mcts.Position, board: chess.Board) -> None:
    assert set(position.legal_moves()) == codes(board), board.fen()
    assert len(position.legal_moves()) == board.legal_moves.count()  # no duplicates
    assert position.key() == position_key(board), board.fen()
    assert position.in_check() == board.is_check(), board.fen()
    assert position.insufficient_material() == board.is_insufficient_material(), board.fen()
    assert position.halfmove_clock == board.halfmove_clock
    assert position.bitboards() == bitboard_row(board), board.fen()


@pytest.mark.parametrize(("fen", "counts"), PERFT_POSITIONS)
def test_perft(fen: str, counts: list[int]) -> None:
    position = _mcts.Position(chess.Board(fen))
    assert [position.perft(depth) for depth in range(1, len(counts) + 1)] == counts


def real_positions() -> list[str]:
    text = resources.files("engine").joinpath("data/heldout.fen").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_random_games_from_real_positions_follow_python_chess() -> None:
    """Random continuations (promotions, castling, e.p., mates, bare kings) checked move by move."""
    rng = random.Random(2027)
    fens = real_positions()
    checked = 0
    for fen in rng.sample(fens, 60) + [chess.STARTING_FEN] * 20:
        board = chess.Board(fen)
        position = _mcts.Position(board)
        for _ in range(200):
            assert_same_rules(position, board)
            checked += 1
            legal = list(board.legal_moves)
            if not legal:
                break
            move = rng.choice(legal)
            board.push(move)
            position.push(_mcts.encode_move(move))
    assert checked > 5000


@pytest.mark.parametrize("fen", [
    # e.p. square set by the double step but no capture possible: not part of the key
    "rnbqkbnr/ppp1pppp/8/3p4/8/8/PPPPPPPP/RNBQKBNR w KQkq d6 0 2",
    # e.p. capture possible
    "rnbqkbnr/ppp1pppp/8/8/3pP3/8/PPPP1PPP/RNBQKBNR b KQkq e3 0 3",
    # e.p. capture pinned along the rank: illegal, so not in the key
    "8/8/8/K2pP2q/8/8/8/7k w - d6 0 1",
    # castling through check refused, castling rights of a captured rook gone
    "r3k2r/8/8/8/8/5b2/8/R3K2R w KQkq - 0 1",
    "r3k2r/8/8/8/8/8/6b1/R3K2R b KQkq - 0 1",
    # promotions and underpromotions with capture
    "1r2k3/P7/8/8/8/8/8/4K3 w - - 0 1",
    # insufficient material: same-coloured bishops, lone knight, knight against queen
    "8/8/3k4/2b5/8/4B3/3K4/8 w - - 0 1",
    "8/8/3k4/8/8/4N3/3K4/8 w - - 0 1",
    "8/8/3k4/8/3q4/4N3/3K4/8 w - - 0 1",
    "8/8/3k4/3b4/8/4B3/3K4/8 w - - 0 1",
    # checkmate and stalemate
    "rnb1kbnr/pppp1ppp/8/4p3/6Pq/5P2/PPPPP2P/RNBQKBNR w KQkq - 1 3",
    "7k/5Q2/6K1/8/8/8/8/8 b - - 0 1",
])
def test_special_positions_follow_python_chess(fen: str) -> None:
    board = chess.Board(fen)
    position = _mcts.Position(board)
    assert_same_rules(position, board)
    for move in board.legal_moves:
        child = _mcts.Position(board)
        child.push(_mcts.encode_move(move))
        board.push(move)
        assert_same_rules(child, board)
        board.pop()

