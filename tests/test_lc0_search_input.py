"""lc0's input as the search's C gatherer builds it (search/lc0input.pxi) against engine.nets.lc0.encoding:
112 planes with history, lc0 policy indices per legal move, NN-cache keys, on real games."""

from __future__ import annotations

import functools
import random
from pathlib import Path

import chess
import chess.pgn
import numpy as np
import pytest

from engine.nets.lc0.encoding import encode_lc0, history_slots, lc0_rows_to_planes
from engine.nets.lc0.policy import move_to_lc0_index
from engine.positions import read_fens
from search import _mcts
from search import mcts as _driver  # noqa: F401  (loads the C move tables)
from tests.lc0_tools import REPO

HELDOUT = REPO / "engine" / "data" / "heldout.fen"
ECO_PGN = Path("/usr/share/pgn-extract/eco.pgn")
PROMOTIONS = "r3k2r/pPpp1ppp/8/8/8/8/PPPP1PpP/R3K2R {} KQkq - 0 1"


def _random_game(start: chess.Board, plies: int, rng: random.Random) -> chess.Board:
    board = start.copy()
    for _ in range(plies):
        moves = list(board.legal_moves)
        if not moves or board.is_repetition(2):
            break
        board.push(rng.choice(moves))
    return board


@functools.lru_cache(maxsize=1)
def _games() -> tuple[chess.Board, ...]:
    """Boards with their move stacks: ECO's opening lines (real games from the start), real middlegame FENs
    followed by seeded random moves (history after ``position fen``), and hand-made lines: a repeated
    start position, en passant, castling rights lost, promotions for both colours, a FEN with an e.p. square."""
    games = []
    if ECO_PGN.is_file():
        with ECO_PGN.open() as handle:
            index = 0
            while (game := chess.pgn.read_game(handle)) is not None:
                if index % 10 == 0:
                    board = game.board()
                    for move in game.mainline_moves():
                        board.push(move)
                    games.append(board)
                index += 1
    rng = random.Random(11)
    for start in read_fens(HELDOUT, limit=120):
        games.append(_random_game(start, rng.randrange(1, 14), rng))
    board = chess.Board()
    for san in ["Nf3", "Nf6", "Ng1", "Ng8"] * 2 + ["e4", "c5", "e5", "d5", "exd6", "Qxd6", "Ke2", "Qd8"]:
        board.push_san(san)
    games.append(board)
    for turn in "wb":
        games.append(_random_game(chess.Board(PROMOTIONS.format(turn)), 6, rng))
    games.append(_random_game(chess.Board("rnbqkbnr/pppp1ppp/8/4p3/4P3/8/PPPP1PPP/RNBQKBNR w KQkq e6 0 2"), 5, rng))
    return tuple(games)


def _runner(root: chess.Board) -> _mcts.BatchRunner:
    runner = _mcts.BatchRunner(_mcts.Tree(), root, _mcts.NNCache(0))
    runner.set_lc0_history(history_slots(root))
    return runner


def _prefix(game: chess.Board, plies: int) -> chess.Board:
    board = game.root()
    for move in game.move_stack[:plies]:
        board.push(move)
    return board


def _path_repeats(leaf: chess.Board, depth: int) -> bool:
    """Whether a position on the last ``depth`` plies repeats an earlier one: the search makes it a terminal
    draw and never asks the network for it (or for what lies below it)."""
    return any(shown is not None and shown[1] for shown in history_slots(leaf)[:depth])


def _c_input(root: chess.Board, leaf: chess.Board) -> tuple[np.ndarray, int]:
    codes = [_mcts.encode_move(m) for m in leaf.move_stack[len(root.move_stack):]]
    rows, rule50, key = _runner(root).lc0_rows_after(codes)
    return lc0_rows_to_planes(rows[None], np.array([rule50]))[0], key


def test_c_planes_equal_the_python_encoding_on_real_games():
    checked = skipped = 0
    for game in _games():
        plies = len(game.move_stack)
        for leaf_ply in sorted({plies, plies - 1, plies // 2, 3} & set(range(plies + 1))):
            leaf = _prefix(game, leaf_ply)
            expected = encode_lc0(leaf)
            keys = set()
            for root_ply in sorted({0, leaf_ply, leaf_ply - 1, leaf_ply - 8, leaf_ply // 2} & set(range(leaf_ply + 1))):
                if _path_repeats(leaf, leaf_ply - root_ply):
                    skipped += 1
                    continue
                planes, key = _c_input(_prefix(game, root_ply), leaf)
                where = f"{game.root().fen()} moves {' '.join(m.uci() for m in leaf.move_stack)} (root at {root_ply})"
                np.testing.assert_array_equal(planes, expected, err_msg=where)
                keys.add(key)
                checked += 1
            assert len(keys) <= 1  # the same input, wherever the root is: the same cache key
    assert checked > 300 and skipped < checked // 10, (checked, skipped)


def test_c_policy_index_is_lc0s_for_every_legal_move():
    boards = [_prefix(game, n) for game in _games()[::3] for n in range(len(game.move_stack) + 1)][:600]
    boards += [chess.Board(PROMOTIONS.format(turn)) for turn in "wb"]
    for leaf in boards:
        runner = _runner(leaf)
        got = [runner.lc0_policy_index([], _mcts.encode_move(m)) for m in leaf.legal_moves]
        assert got == [move_to_lc0_index(leaf, m) for m in leaf.legal_moves], leaf.fen()


def test_underpromotions_have_their_own_index():
    for turn in "wb":
        board = chess.Board(PROMOTIONS.format(turn))
        runner = _runner(board)
        src, dst = (chess.B7, chess.A8) if turn == "w" else (chess.G2, chess.H1)
        indices = {runner.lc0_policy_index([], _mcts.encode_move(chess.Move(src, dst, piece)))
                   for piece in (chess.QUEEN, chess.ROOK, chess.BISHOP, chess.KNIGHT)}
        assert len(indices) == 4


def test_cache_key_holds_the_history():
    """A transposition with another history, or another rule-50 count, is another network input."""
    def leaf(sans: list[str], fen: str = chess.STARTING_FEN) -> chess.Board:
        board = chess.Board(fen)
        for san in sans:
            board.push_san(san)
        return board

    one = leaf(["Nf3", "Nf6", "g3", "g6"])
    other = leaf(["g3", "g6", "Nf3", "Nf6"])
    assert _mcts.position_key(one) == _mcts.position_key(other)
    assert _c_input(one.root(), one)[1] != _c_input(other.root(), other)[1]
    assert _c_input(one.root(), one)[1] == _c_input(_prefix(one, 2), one)[1]
    fresh, later = chess.Board(one.fen()), chess.Board(one.fen())
    later.halfmove_clock = fresh.halfmove_clock + 5
    assert _c_input(fresh, fresh)[1] != _c_input(later, later)[1]


@pytest.mark.parametrize("moves", [[], ["e2e4"], ["e2e4", "e7e5", "g1f3"]])
def test_gather_sends_lc0_planes_and_indices(moves):
    """``gather`` with ``lc0_input``: the root leaf's bitboards and rule-50 count are encode_lc0's."""
    board = chess.Board()
    for move in moves:
        board.push_uci(move)
    runner = _runner(board)
    runner.lc0_input = True
    runner.tree.set_root_key(_mcts.position_key(board))
    batch = _mcts.Batch(4)
    count, rows, rule50 = runner.gather(batch, 1, 1)
    assert count == 1 and rows.shape == (1, 112) and rule50.shape == (1,)
    np.testing.assert_array_equal(lc0_rows_to_planes(rows, rule50)[0], encode_lc0(board))
