"""Board -> input planes, and move <-> policy index, in pytorch-alpha-zero's layout.

Planes (16, 8, 8), indexed ``[plane, rank, file]`` with rank 0 the first rank, always seen from the
side to move: when black is to move the board is mirrored (``Board.mirror()``: flipped vertically,
colours swapped), so plane 0 holds the mover's pawns.

* planes 0-11: P p R r B b N n Q q K k (upper case = side to move after mirroring)
* planes 12-15: all ones when the right exists: our O-O, their O-O, our O-O-O, their O-O-O (Chess960:
  the right of the rook on the h-side of the king is O-O, on the a-side O-O-O)

Policy index = ``plane * 64 + from_square`` (``from_square = rank * 8 + file``, after mirroring).
Planes ``base + distance`` (distance 1..7) for sliding moves with bases 0 east, 8 west, 16 north,
24 south, 32 north-east, 40 south-west, 48 south-east, 56 north-west; planes 64-71 for knight jumps
(dfile, drank) = (1,2) (2,1) (2,-1) (1,-2) (-1,2) (-2,1) (-2,-1) (-1,-2). A promotion carries no piece
in its index, so the four promotions of one pawn move share an index. Chess960 castling (the king takes
its own rook) has the index of the king's move to its destination on the c- or g-file, as standard castling
has; when the king does not move, that of the king's move to the rook.
"""

from __future__ import annotations

from collections.abc import Sequence

import chess
import numpy as np

NUM_PLANES = 16
POLICY_SIZE = 4608  # 72 move planes x 64 from-squares

_SLIDE_BASES = {
    (1, 0): 0,
    (-1, 0): 8,
    (0, 1): 16,
    (0, -1): 24,
    (1, 1): 32,
    (-1, -1): 40,
    (1, -1): 48,
    (-1, 1): 56,
}
_KNIGHT_JUMPS = [(1, 2), (2, 1), (2, -1), (1, -2), (-1, 2), (-2, 1), (-2, -1), (-1, -2)]


def _build_tables() -> tuple[np.ndarray, np.ndarray]:
    """Return (plane of (from, to) from the mover's side or -1, to-square of each policy index or -1)."""
    plane_of = np.full((64, 64), -1, dtype=np.int16)
    to_of_index = np.full(POLICY_SIZE, -1, dtype=np.int16)
    for src in range(64):
        f0, r0 = src % 8, src // 8
        for dst in range(64):
            df, dr = dst % 8 - f0, dst // 8 - r0
            if (df, dr) == (0, 0):
                continue
            if (df, dr) in _KNIGHT_JUMPS:
                plane = 64 + _KNIGHT_JUMPS.index((df, dr))
            elif df == 0 or dr == 0 or abs(df) == abs(dr):
                distance = max(abs(df), abs(dr))
                direction = (df // distance, dr // distance)
                plane = _SLIDE_BASES[direction] + distance
            else:
                continue
            plane_of[src, dst] = plane
            to_of_index[plane * 64 + src] = dst
    return plane_of, to_of_index


PLANE_OF_MOVE, TO_SQUARE_OF_INDEX = _build_tables()


def move_to_index(board: chess.Board, move: chess.Move) -> int:
    """Policy index in [0, 4608) of ``move`` played in ``board`` (the side to move's view).

    All promotions of one pawn move share the index of that pawn move.
    """
    src, dst = move.from_square, move.to_square
    if board.chess960 and board.is_castling(move):
        dst = castling_target(src, dst)
    if board.turn == chess.BLACK:
        src ^= 56
        dst ^= 56
    plane = int(PLANE_OF_MOVE[src, dst])
    if plane < 0:
        raise ValueError(f"{move.uci()} is not a queen-line or knight move")
    return plane * 64 + src


def castling_target(king: chess.Square, rook: chess.Square) -> chess.Square:
    """The square a Chess960 castling move (king on ``king`` takes its rook on ``rook``) is indexed by:
    the king's destination on the c- or g-file, or ``rook`` when the king stays where it is."""
    target = chess.square(2 if rook < king else 6, chess.square_rank(king))
    return rook if target == king else target


def index_to_move(board: chess.Board, index: int) -> chess.Move:
    """The move of ``board`` that policy ``index`` stands for; pawn moves to the last rank promote to a queen.

    The move is not checked for legality.
    """
    if not 0 <= index < POLICY_SIZE or TO_SQUARE_OF_INDEX[index] < 0:
        raise ValueError(f"policy index {index} names no move")
    src, dst = index % 64, int(TO_SQUARE_OF_INDEX[index])
    if board.turn == chess.BLACK:
        src ^= 56
        dst ^= 56
    promotion = None
    if board.piece_type_at(src) == chess.PAWN and chess.square_rank(dst) in (0, 7):
        promotion = chess.QUEEN
    return chess.Move(src, dst, promotion)


_ALL = 0xFFFF_FFFF_FFFF_FFFF


def _castling_planes(board: chess.Board) -> tuple[bool, bool, bool, bool]:
    """Our O-O, their O-O, our O-O-O, their O-O-O rights (Chess960: h-side and a-side of the king)."""
    us, them = board.turn, not board.turn
    if board.chess960:
        return (board.has_kingside_castling_rights(us), board.has_kingside_castling_rights(them),
                board.has_queenside_castling_rights(us), board.has_queenside_castling_rights(them))
    rights = board.clean_castling_rights()
    if us == chess.WHITE:
        our_k, their_k, our_q, their_q = chess.BB_H1, chess.BB_H8, chess.BB_A1, chess.BB_A8
    else:
        our_k, their_k, our_q, their_q = chess.BB_H8, chess.BB_H1, chess.BB_A8, chess.BB_A1
    return bool(rights & our_k), bool(rights & their_k), bool(rights & our_q), bool(rights & their_q)


def bitboard_row(board: chess.Board) -> list[int]:
    """16 bitboards of one position before the black-to-move flip (planes 12-15 all ones or zero)."""
    us = board.occupied_co[board.turn]
    them = board.occupied_co[not board.turn]
    pawns, rooks, bishops = board.pawns, board.rooks, board.bishops
    knights, queens, kings = board.knights, board.queens, board.kings
    return [
        pawns & us, pawns & them, rooks & us, rooks & them, bishops & us, bishops & them,
        knights & us, knights & them, queens & us, queens & them, kings & us, kings & them,
    ] + [_ALL if right else 0 for right in _castling_planes(board)]


def bitboards_to_planes(bitboards: np.ndarray, black_to_move: np.ndarray) -> np.ndarray:
    """Expand ``(B, 16)`` uint64 bitboards into ``(B, 16, 8, 8)`` float32 planes.

    Rows whose ``black_to_move`` is true are flipped vertically (a byte swap of each bitboard).
    """
    if black_to_move.any():
        bitboards[black_to_move] = bitboards[black_to_move].byteswap()
    little = bitboards.astype("<u8", copy=False)
    bits = np.unpackbits(little.view(np.uint8), bitorder="little")
    return bits.reshape(len(bitboards), NUM_PLANES, 8, 8).astype(np.float32)


def encode_batch(boards: Sequence[chess.Board]) -> np.ndarray:
    """Encode positions into float32 planes ``(B, 16, 8, 8)``, each from its side to move's view."""
    bitboards = np.array([bitboard_row(b) for b in boards], dtype=np.uint64).reshape(-1, NUM_PLANES)
    black = np.fromiter((b.turn == chess.BLACK for b in boards), dtype=bool, count=len(boards))
    return bitboards_to_planes(bitboards, black)


def encode_position(board: chess.Board) -> np.ndarray:
    """Encode one position into float32 planes ``(16, 8, 8)`` from the side to move's view."""
    return encode_batch([board])[0]
