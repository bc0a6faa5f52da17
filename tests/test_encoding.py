"""Tests of the position encoding, the move <-> policy index mapping and the prior computation.

The expected values come from hand-checked positions and from an independent re-implementation of
pytorch-alpha-zero's ``moveToIdx`` rule written here from DESIGN.md's description.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from pathlib import Path

import chess
import chess.pgn
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import encode_batch, encode_position, index_to_move, masked_softmax, move_priors, move_to_index
from engine.bundled import data_path
from engine.positions import read_fens
from engine.priors import UNDERPROMOTION_LOGIT_PENALTY, legal_move_indices

ECO_PGN = Path("/usr/share/pgn-extract/eco.pgn")

# Plane numbers of DESIGN.md (after mirroring, "white" is the side to move).
P, p, R, r, B, b, N, n, Q, q, K, k = range(12)
OUR_OO, THEIR_OO, OUR_OOO, THEIR_OOO = 12, 13, 14, 15
PIECE_PLANE = {
    (chess.PAWN, True): P, (chess.PAWN, False): p, (chess.ROOK, True): R, (chess.ROOK, False): r,
    (chess.BISHOP, True): B, (chess.BISHOP, False): b, (chess.KNIGHT, True): N, (chess.KNIGHT, False): n,
    (chess.QUEEN, True): Q, (chess.QUEEN, False): q, (chess.KING, True): K, (chess.KING, False): k,
}


# ----- an independent reference of the policy index ------------------------------------------


def reference_index(board: chess.Board, move: chess.Move) -> int:
    """pytorch-alpha-zero's moveToIdx as DESIGN.md states it, after ``chess.square_mirror`` for black."""
    src, dst = move.from_square, move.to_square
    if board.turn == chess.BLACK:
        src, dst = chess.square_mirror(src), chess.square_mirror(dst)
    from_rank, from_file = chess.square_rank(src), chess.square_file(src)
    drank = chess.square_rank(dst) - from_rank
    dfile = chess.square_file(dst) - from_file
    knight = [(1, 2), (2, 1), (2, -1), (1, -2), (-1, 2), (-2, 1), (-2, -1), (-1, -2)]
    if (dfile, drank) in knight:
        plane = 64 + knight.index((dfile, drank))
    elif drank == 0 and dfile > 0:
        plane = 0 + dfile
    elif drank == 0 and dfile < 0:
        plane = 8 - dfile
    elif dfile == 0 and drank > 0:
        plane = 16 + drank
    elif dfile == 0 and drank < 0:
        plane = 24 - drank
    elif dfile == drank and dfile > 0:
        plane = 32 + dfile
    elif dfile == drank and dfile < 0:
        plane = 40 - dfile
    elif dfile == -drank and dfile > 0:  # south-east: file up, rank down
        plane = 48 + dfile
    elif dfile == -drank and dfile < 0:  # north-west
        plane = 56 - dfile
    else:
        raise AssertionError(f"{move} is neither a queen-line nor a knight move")
    return plane * 64 + from_rank * 8 + from_file


# ----- real positions ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def real_positions() -> tuple[chess.Board, ...]:
    """The shipped 2400 FENs from real games, plus every position of the ECO lines when pgn-extract is here."""
    boards = read_fens(data_path("calibration.fen")) + read_fens(data_path("heldout.fen"))
    if ECO_PGN.is_file():
        seen: set[str] = set()
        with ECO_PGN.open() as handle:
            while (game := chess.pgn.read_game(handle)) is not None:
                board = game.board()
                for move in game.mainline_moves():
                    board.push(move)
                    fen = board.fen()
                    if fen not in seen:
                        seen.add(fen)
                        boards.append(board.copy(stack=False))
    return tuple(boards)


def test_real_position_sets_are_there() -> None:
    """The shipped FEN files hold 1200 positions each (the tests below rely on them)."""
    assert len(read_fens(data_path("calibration.fen"))) == 1200
    assert len(read_fens(data_path("heldout.fen"))) == 1200
    if not ECO_PGN.is_file():
        pytest.skip(f"{ECO_PGN} is absent (apt-get install pgn-extract); only the shipped FENs are used")
    assert len(real_positions()) > 5000


# ----- hand-checked encodings --------------------------------------------------------------------


def squares_of(planes: np.ndarray, plane: int) -> set[str]:
    """Names of the squares set in one plane (rank index 0 = first rank)."""
    ranks, files = np.nonzero(planes[plane])
    return {chess.square_name(chess.square(int(f), int(r))) for r, f in zip(ranks, files, strict=True)}


def test_start_position() -> None:
    planes = encode_position(chess.Board())
    assert planes.shape == (16, 8, 8)
    assert planes.dtype == np.float32
    assert set(np.unique(planes)) <= {0.0, 1.0}
    assert squares_of(planes, P) == {f"{f}2" for f in "abcdefgh"}
    assert squares_of(planes, p) == {f"{f}7" for f in "abcdefgh"}
    assert squares_of(planes, R) == {"a1", "h1"}
    assert squares_of(planes, r) == {"a8", "h8"}
    assert squares_of(planes, B) == {"c1", "f1"}
    assert squares_of(planes, b) == {"c8", "f8"}
    assert squares_of(planes, N) == {"b1", "g1"}
    assert squares_of(planes, n) == {"b8", "g8"}
    assert squares_of(planes, Q) == {"d1"}
    assert squares_of(planes, q) == {"d8"}
    assert squares_of(planes, K) == {"e1"}
    assert squares_of(planes, k) == {"e8"}
    # planes[c, rank, file]: the white king is at rank 0, file 4
    assert planes[K, 0, 4] == 1.0
    for plane in (OUR_OO, THEIR_OO, OUR_OOO, THEIR_OOO):
        assert planes[plane].min() == 1.0


def test_black_to_move_is_mirrored_with_asymmetric_castling() -> None:
    # 1.e4 with only white's O-O and black's O-O-O rights left: black (the mover) is seen as white.
    board = chess.Board("rnbqkbnr/pppppppp/8/8/4P3/8/PPPP1PPP/RNBQKBNR b Kq - 0 1")
    planes = encode_position(board)
    # the mover's (black's) pawns all stand on their home rank, seen as the second rank
    assert squares_of(planes, P) == {f"{f}2" for f in "abcdefgh"}
    # the opponent's (white's) e-pawn went to e4, which the vertical flip puts on e5
    assert squares_of(planes, p) == {f"{f}7" for f in "abcdfgh"} | {"e5"}
    # a vertical flip (not a rotation): queens stay on the d-file, kings on the e-file
    assert squares_of(planes, Q) == {"d1"} and squares_of(planes, q) == {"d8"}
    assert squares_of(planes, K) == {"e1"} and squares_of(planes, k) == {"e8"}
    # castling planes follow the side to move: 12 = black's O-O (gone), 13 = white's O-O (kept),
    # 14 = black's O-O-O (kept), 15 = white's O-O-O (gone)
    assert planes[OUR_OO].max() == 0.0
    assert planes[THEIR_OO].min() == 1.0
    assert planes[OUR_OOO].min() == 1.0
    assert planes[THEIR_OOO].max() == 0.0


def test_white_to_move_after_e4_c5() -> None:
    board = chess.Board()
    board.push_san("e4")
    board.push_san("c5")
    board.push_san("Nf3")
    board.push_san("d6")
    planes = encode_position(board)
    assert squares_of(planes, P) == {f"{f}2" for f in "abcdfgh"} | {"e4"}
    assert squares_of(planes, p) == {f"{f}7" for f in "abefgh"} | {"c5", "d6"}
    assert squares_of(planes, N) == {"b1", "f3"}
    assert all(planes[c].min() == 1.0 for c in (OUR_OO, THEIR_OO, OUR_OOO, THEIR_OOO))


def test_black_king_moved_loses_both_own_castling_planes() -> None:
    board = chess.Board("r3k2r/8/8/8/8/8/8/R3K2R w KQkq - 0 1")
    board.push_san("Kf1")  # white gives up both rights; black to move keeps its own
    planes = encode_position(board)
    assert planes[OUR_OO].min() == 1.0 and planes[OUR_OOO].min() == 1.0
    assert planes[THEIR_OO].max() == 0.0 and planes[THEIR_OOO].max() == 0.0
    assert squares_of(planes, K) == {"e1"}  # black's king, mirrored
    assert squares_of(planes, k) == {"f8"}  # white's king on f1, mirrored


def test_promotion_position() -> None:
    # white pawn on b7 about to promote, black pawn on g2 that can capture-promote on h1 next move
    board = chess.Board("8/1P6/8/3k4/8/8/6p1/K6R w - - 0 1")
    planes = encode_position(board)
    assert squares_of(planes, P) == {"b7"}
    assert squares_of(planes, p) == {"g2"}
    assert squares_of(planes, R) == {"h1"}
    promotions = [m for m in board.legal_moves if m.from_square == chess.B7]
    assert {m.promotion for m in promotions} == {chess.QUEEN, chess.ROOK, chess.BISHOP, chess.KNIGHT}
    indices = {move_to_index(board, m) for m in promotions}
    assert indices == {(16 + 1) * 64 + chess.B7}  # north, distance 1, from b7
    assert index_to_move(board, indices.pop()) == chess.Move.from_uci("b7b8q")

    board = chess.Board("8/1P6/8/3k4/8/8/6p1/K6R b - - 0 1")
    planes = encode_position(board)
    assert squares_of(planes, P) == {"g7"}  # black's g2 pawn seen from black's side
    assert squares_of(planes, p) == {"b2"}
    straight = [m for m in board.legal_moves if m.uci().startswith("g2g1")]
    capture = [m for m in board.legal_moves if m.uci().startswith("g2h1")]
    assert len(straight) == 4 and len(capture) == 4
    assert {move_to_index(board, m) for m in straight} == {(16 + 1) * 64 + chess.G7}
    assert {move_to_index(board, m) for m in capture} == {(32 + 1) * 64 + chess.G7}  # north-east after the flip
    assert index_to_move(board, (32 + 1) * 64 + chess.G7) == chess.Move.from_uci("g2h1q")


def test_castling_and_en_passant_indices() -> None:
    board = chess.Board("r3k2r/8/8/8/8/8/8/R3K2R w KQkq - 0 1")
    assert move_to_index(board, chess.Move.from_uci("e1g1")) == (0 + 2) * 64 + chess.E1
    assert move_to_index(board, chess.Move.from_uci("e1c1")) == (8 + 2) * 64 + chess.E1
    board.turn = chess.BLACK
    assert move_to_index(board, chess.Move.from_uci("e8g8")) == (0 + 2) * 64 + chess.E1
    assert move_to_index(board, chess.Move.from_uci("e8c8")) == (8 + 2) * 64 + chess.E1
    ep = chess.Board("4k3/8/8/3pP3/8/8/8/4K3 w - d6 0 2")
    move = chess.Move.from_uci("e5d6")
    assert move in ep.legal_moves
    assert move_to_index(ep, move) == (56 + 1) * 64 + chess.E5  # north-west, distance 1
    assert index_to_move(ep, move_to_index(ep, move)) == move


def test_index_to_move_rejects_unused_indices() -> None:
    board = chess.Board()
    for bad in (-1, 4608, 0, 8 * 64):  # plane 0 and plane 8 (distance 0) name no move
        with pytest.raises(ValueError):
            index_to_move(board, bad)
    with pytest.raises(ValueError):
        move_to_index(board, chess.Move(chess.A1, chess.C4))


# ----- the index mapping over many real positions ----------------------------------------------


def test_every_legal_move_of_real_positions_round_trips() -> None:
    boards = real_positions()
    moves_checked = 0
    for board in boards:
        by_index: dict[int, list[chess.Move]] = defaultdict(list)
        for move in board.legal_moves:
            index = move_to_index(board, move)
            assert 0 <= index < 4608
            assert index == reference_index(board, move), (board.fen(), move.uci())
            by_index[index].append(move)
            back = index_to_move(board, index)
            expected = chess.Move(move.from_square, move.to_square, chess.QUEEN if move.promotion else None)
            assert back == expected, (board.fen(), move.uci(), back.uci())
            moves_checked += 1
        for index, group in by_index.items():
            if len(group) > 1:  # only the promotions of one pawn move share an index
                assert len({(m.from_square, m.to_square) for m in group}) == 1, (board.fen(), index, group)
                assert all(m.promotion for m in group), (board.fen(), index, group)
        moves, indices = legal_move_indices(board)
        assert [move_to_index(board, m) for m in moves] == indices.tolist()
    assert len(boards) >= 2400 and moves_checked > 50_000


# ----- batches and symmetry ---------------------------------------------------------------------


def test_encode_batch_equals_stacked_positions() -> None:
    boards = list(real_positions()[:500])
    batch = encode_batch(boards)
    assert batch.shape == (500, 16, 8, 8) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, np.stack([encode_position(b) for b in boards]))
    assert encode_batch([]).shape == (0, 16, 8, 8)


def assert_planes_match_board(planes: np.ndarray, board: chess.Board) -> None:
    """Each piece plane holds exactly the pieces of the board, seen from the side to move."""
    view = board if board.turn == chess.WHITE else board.mirror()
    for (piece_type, ours), plane in PIECE_PLANE.items():
        expected = view.pieces(piece_type, chess.WHITE if ours else chess.BLACK)
        assert squares_of(planes, plane) == {chess.square_name(s) for s in expected}
    assert planes[:12].sum() == len(board.piece_map())
    rights = [view.has_kingside_castling_rights(chess.WHITE), view.has_kingside_castling_rights(chess.BLACK),
              view.has_queenside_castling_rights(chess.WHITE), view.has_queenside_castling_rights(chess.BLACK)]
    for plane, has in zip((OUR_OO, THEIR_OO, OUR_OOO, THEIR_OOO), rights, strict=True):
        assert planes[plane].sum() == (64 if has else 0)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=60))
def test_mirror_symmetry_and_piece_counts(choices: list[int]) -> None:
    board = chess.Board()
    for choice in choices:
        moves = list(board.legal_moves)
        if not moves:
            break
        board.push(moves[choice % len(moves)])
    planes = encode_position(board)
    assert_planes_match_board(planes, board)
    # the same position with colours swapped (and the other side to move) encodes identically
    np.testing.assert_array_equal(planes, encode_position(board.mirror()))
    for move in board.legal_moves:
        mirrored = chess.Move(chess.square_mirror(move.from_square), chess.square_mirror(move.to_square),
                              move.promotion)
        assert move_to_index(board, move) == move_to_index(board.mirror(), mirrored)


# ----- priors -----------------------------------------------------------------------------------


def test_masked_softmax_sums_to_one_and_is_stable() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=4608).astype(np.float32)
    indices = np.array([5, 100, 2000, 4607])
    probs = masked_softmax(logits, indices)
    assert probs.dtype == np.float32
    assert probs.sum() == pytest.approx(1.0, abs=1e-6)
    expected = np.exp(logits[indices]) / np.exp(logits[indices]).sum()
    np.testing.assert_allclose(probs, expected, rtol=1e-5)

    huge = np.full(4608, -1e30, dtype=np.float32)
    huge[100] = 1e30
    probs = masked_softmax(huge, indices)
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs, [0.0, 1.0, 0.0, 0.0])
    for value in (1e30, -1e30):
        flat = np.full(4608, value, dtype=np.float32)
        np.testing.assert_allclose(masked_softmax(flat, indices), [0.25] * 4, rtol=1e-6)
    assert masked_softmax(logits, np.array([], dtype=np.int64)).size == 0


def test_move_priors_over_real_positions() -> None:
    rng = np.random.default_rng(2)
    for board in real_positions()[:200]:
        logits = (rng.normal(size=4608) * 5).astype(np.float32)
        priors = move_priors(board, logits)
        assert set(priors) == set(board.legal_moves)
        assert sum(priors.values()) == pytest.approx(1.0, abs=1e-5)
        assert all(v >= 0.0 for v in priors.values())


def test_underpromotions_get_less_prior_than_the_queen() -> None:
    board = chess.Board("8/1P6/8/3k4/8/8/6p1/K6R w - - 0 1")
    priors = move_priors(board, np.zeros(4608, dtype=np.float32))
    queen = priors[chess.Move.from_uci("b7b8q")]
    for piece in "rbn":
        under = priors[chess.Move.from_uci(f"b7b8{piece}")]
        assert under < queen
        assert under / queen == pytest.approx(np.exp(-UNDERPROMOTION_LOGIT_PENALTY), rel=1e-5)
    # the queen promotion keeps the weight of its index; an ordinary king move with equal logit gets the same
    assert queen == pytest.approx(priors[chess.Move.from_uci("a1a2")], rel=1e-6)
