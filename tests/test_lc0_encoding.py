"""lc0's policy index and 112-plane input (engine.nets.lc0.policy / .encoding), against lc0's own tables
and hand-checked positions."""

from __future__ import annotations

import random
import re

import chess
import numpy as np
import pytest

from engine.nets.lc0 import encode_lc0, encode_lc0_batch, lc0_index_to_move, move_to_lc0_index
from engine.nets.lc0.encoding import AUX_BASE, PLANES_PER_BOARD
from engine.nets.lc0.policy import CONV_POLICY_MAP, MOVES, NUM_MOVES
from engine.positions import read_fens
from tests.lc0_tools import REPO, lc0_source

HELDOUT = REPO / "engine" / "data" / "heldout.fen"


def _source_or_skip(relative: str) -> str:
    text = lc0_source(relative)
    if text is None:
        pytest.skip(f"lc0's sources are not here ({relative}: no ~/.cache/azengine-tools/src/lc0, no "
                    f"shared/tools/lc0-*.tar.gz)")
    return text


def test_move_list_is_lc0s():
    source = _source_or_skip("src/neural/encoder.cc")
    start = source.index("kMoveStrs[]")
    table = re.findall(r'"([a-h][1-8][a-h][1-8][nbrq]?)"', source[start:source.index("};", start)])
    assert len(MOVES) == NUM_MOVES == len(table)
    assert MOVES == table


def test_conv_policy_map_is_lc0s():
    source = _source_or_skip("src/neural/tables/policy_map.h")
    body = source[source.index("kConvPolicyMap[]"):]
    values = [int(v) for v in re.findall(r"-?\d+", body[body.index("{") + 1:body.index("}")])]
    assert CONV_POLICY_MAP.tolist() == values
    used = CONV_POLICY_MAP[CONV_POLICY_MAP >= 0]
    assert sorted(used.tolist()) == list(range(NUM_MOVES))  # every move exactly once


def _random_positions(count: int, seed: int) -> list[chess.Board]:
    rng = random.Random(seed)
    boards = []
    while len(boards) < count:
        board = chess.Board()
        for _ in range(rng.randrange(1, 120)):
            moves = list(board.legal_moves)
            if not moves:
                break
            board.push(rng.choice(moves))
        boards.append(board)
    return boards


PROMOTIONS = "r3k2r/pPpp1ppp/8/8/8/8/PPPP1PpP/R3K2R {} KQkq - 0 1"


@pytest.mark.parametrize("board", [chess.Board(PROMOTIONS.format("w")), chess.Board(PROMOTIONS.format("b"))]
                         + _random_positions(60, seed=3), ids=lambda b: b.fen())
def test_index_round_trip_over_legal_moves(board):
    indices = [move_to_lc0_index(board, m) for m in board.legal_moves]
    assert len(set(indices)) == len(indices)  # distinct legal moves, distinct indices
    for move, index in zip(list(board.legal_moves), indices, strict=True):
        assert lc0_index_to_move(board, index) == move


def test_special_moves():
    white = chess.Board(PROMOTIONS.format("w"))
    assert MOVES[move_to_lc0_index(white, chess.Move.from_uci("e1g1"))] == "e1h1"  # castling: king takes rook
    assert MOVES[move_to_lc0_index(white, chess.Move.from_uci("e1c1"))] == "e1a1"
    assert MOVES[move_to_lc0_index(white, chess.Move.from_uci("b7a8q"))] == "b7a8q"
    assert MOVES[move_to_lc0_index(white, chess.Move.from_uci("b7a8n"))] == "b7a8"  # knight: the plain move
    black = chess.Board(PROMOTIONS.format("b"))  # black's moves are mirrored
    assert MOVES[move_to_lc0_index(black, chess.Move.from_uci("g2h1r"))] == "g7h8r"
    assert MOVES[move_to_lc0_index(black, chess.Move.from_uci("e8g8"))] == "e1h1"


def _slot(planes: np.ndarray, slot: int) -> np.ndarray:
    return planes[slot * PLANES_PER_BOARD:(slot + 1) * PLANES_PER_BOARD]


def test_startpos_has_no_fill_and_aux_planes():
    planes = encode_lc0(chess.Board())
    assert planes[:12].sum() == 32 and planes[13:AUX_BASE].sum() == 0  # fen_only: no copies of startpos
    assert planes[0, 1].sum() == 8 and planes[6, 6].sum() == 8  # our pawns on rank 2, theirs on rank 7
    assert [planes[AUX_BASE + i].mean() for i in range(8)] == [1, 1, 1, 1, 0, 0, 0, 1]
    assert np.array_equal(_slot(encode_lc0(chess.Board(), "always"), 5), _slot(planes, 0))


def test_history_is_seen_from_the_side_to_move():
    board = chess.Board()
    board.push_san("e4")
    planes = encode_lc0(board)
    # black to move: black's pawns are "ours", mirrored onto the second rank
    assert planes[0, 1].sum() == 8
    assert planes[6, 4, 4] == 1 and planes[6, 6, 4] == 0  # white's e-pawn, mirrored: e4 -> e5, e2 -> e7
    assert planes[13 + 6, 6, 4] == 1  # slot 1 (the start position): white's e-pawn still on e2 (mirrored e7)
    assert planes[2 * PLANES_PER_BOARD:AUX_BASE].sum() == 0  # the game began at the start position: no fill
    assert planes[AUX_BASE + 4].min() == 1


def test_fen_fill_undoes_the_double_step():
    board = chess.Board("rnbqkbnr/pppp1ppp/8/4p3/4P3/8/PPPP1PPP/RNBQKBNR w KQkq e6 0 2")
    planes = encode_lc0(board)
    assert planes[6, 4, 4] == 1  # slot 0: their pawn on e5
    for slot in range(1, 8):
        theirs = _slot(planes, slot)[6]
        assert theirs[4, 4] == 0 and theirs[6, 4] == 1  # copies: the pawn back on e7
    assert encode_lc0(board, "no")[2 * PLANES_PER_BOARD:AUX_BASE].sum() == 0  # "no": only the one known ply
    assert encode_lc0(board, "no")[PLANES_PER_BOARD:2 * PLANES_PER_BOARD].sum() > 0


def test_repetition_and_rule50_planes():
    board = chess.Board()
    for san in ["Nf3", "Nf6", "Ng1", "Ng8"]:
        board.push_san(san)
    planes = encode_lc0(board)
    assert planes[12].min() == 1  # the start position again: repeated once
    assert _slot(planes, 4)[12].max() == 0  # the first start position was not a repetition
    assert planes[AUX_BASE + 5].mean() == 4  # rule-50 count, unscaled


def test_batch_of_real_positions_matches_single_encoding():
    boards = read_fens(HELDOUT, limit=50)
    batch = encode_lc0_batch(boards)
    assert batch.shape == (50, 112, 8, 8) and batch.dtype == np.float32
    for i in (0, 17, 49):
        assert np.array_equal(batch[i], encode_lc0(boards[i]))
