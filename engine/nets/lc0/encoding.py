"""lc0's 112 input planes (``INPUT_CLASSICAL_112_PLANE``) from a python-chess board and its move stack.

Planes ``[plane, rank, file]``, rank 0 the first rank, all seen from the side to move: when black is to
move every board is mirrored rank-wise and "ours" means black's pieces. Read from lc0's
``src/neural/encoder.cc``:

* 8 history slots of 13 planes, slot 0 the current position, slot 1 the one before it, ...: our
  P N B R Q K, their P N B R Q K, and a plane of ones when that position occurred before (lc0 counts
  a repetition among earlier positions with the same side to move, back to the last zeroing move).
* Slots older than the game's first position are filled as lc0's ``HistoryFill`` option says; its
  default ``fen_only`` repeats the first position, unless that is the standard starting position (then
  those slots stay empty). When the first position has an en-passant square, the copies show it
  before the double step (the pawn back on its start square), as lc0 does.
* 104-107: ones if we can castle queenside, we kingside, they queenside, they kingside.
* 108: ones if black is to move. 109: the rule-50 halfmove count (not scaled). 110: zeros. 111: ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import chess
import numpy as np

NUM_PLANES = 112
HISTORY = 8
PLANES_PER_BOARD = 13
AUX_BASE = HISTORY * PLANES_PER_BOARD  # 104
RULE50_PLANE = AUX_BASE + 5
HISTORY_FILLS = ("fen_only", "always", "no")
_ALL = 0xFFFF_FFFF_FFFF_FFFF
_PIECES = (chess.PAWN, chess.KNIGHT, chess.BISHOP, chess.ROOK, chess.QUEEN, chess.KING)


def _board_key(board: chess.Board, ep_flag: int | None) -> tuple:
    """What lc0 compares when it looks for a repetition: pieces, side to move, castling, en passant flag."""
    return (board.occupied_co[chess.WHITE], board.occupied_co[chess.BLACK], board.pawns, board.knights,
            board.bishops, board.rooks, board.queens, board.kings, board.turn, board.clean_castling_rights(),
            ep_flag)


def _game_positions(board: chess.Board, keep: int) -> tuple[list[chess.Board], list[int], bool]:
    """The last ``keep`` positions of the game (oldest first), their repetition counts, and whether the
    oldest of them is the game's first position."""
    position = board.root()
    boards = [position.copy(stack=False)]
    # lc0 sets the flag of a FEN's en-passant square as given, and after a double step only when an enemy
    # pawn could take
    keys = [_board_key(position, position.ep_square)]
    clocks = [position.halfmove_clock]
    for move in board.move_stack:
        position.push(move)
        boards.append(position.copy(stack=False))
        keys.append(_board_key(position, position.ep_square if position.has_pseudo_legal_en_passant() else None))
        clocks.append(position.halfmove_clock)
    repetitions = [0] * len(boards)
    for last in range(len(boards)):
        if clocks[last] < 4:
            continue
        for idx in range(last - 4, -1, -2):
            if keys[idx] == keys[last]:
                repetitions[last] = 1 + repetitions[idx]
                break
            if clocks[idx] < 2:
                break
    start = max(0, len(boards) - keep)
    return boards[start:], repetitions[start:], start == 0


def _is_startpos(board: chess.Board) -> bool:
    return (board.board_fen() == chess.STARTING_BOARD_FEN and board.turn == chess.WHITE
            and board.clean_castling_rights() == chess.BB_CORNERS and board.ep_square is None)


def _undo_double_step(board: chess.Board) -> chess.Board:
    """A copy of ``board`` with its last double step taken back (the pawn on its start square, no e.p.)."""
    board = board.copy(stack=False)
    if board.ep_square is not None:
        mover = not board.turn  # the side that made the double step
        pawn_now = board.ep_square + (8 if mover == chess.WHITE else -8)
        pawn_before = board.ep_square + (-8 if mover == chess.WHITE else 8)
        board.remove_piece_at(pawn_now)
        board.set_piece_at(pawn_before, chess.Piece(chess.PAWN, mover))
        board.ep_square = None
    return board


def history_slots(board: chess.Board, history_fill: str = "fen_only") -> list[tuple[chess.Board, bool] | None]:
    """lc0's 8 history slots of ``board`` (slot 0 the current position): each the position it shows and
    whether that position occurred before, or None for an empty slot (every slot after it is empty too).

    Slots older than the game's first position hold that position as ``history_fill`` says (the module
    docstring); those copies show its double step, if any, undone.
    """
    if history_fill not in HISTORY_FILLS:
        raise ValueError(f"history_fill must be one of {', '.join(HISTORY_FILLS)}")
    boards, repetitions, from_start = _game_positions(board, HISTORY)
    slots: list[tuple[chess.Board, bool] | None] = [None] * HISTORY
    for slot in range(HISTORY):
        k = len(boards) - 1 - slot
        if k >= 0:
            slots[slot] = (boards[k], repetitions[k] >= 1)
            continue
        if not from_start:
            raise AssertionError("history shorter than 8 positions must start at the game's beginning")
        first = boards[0]
        if history_fill == "no" and (k < -1 or first.ep_square is None):
            break
        if history_fill == "fen_only" and _is_startpos(first):
            break
        slots[slot] = (_undo_double_step(first), repetitions[0] >= 1)
    return slots


def lc0_bitboards(board: chess.Board, history_fill: str = "fen_only") -> tuple[list[int], int]:
    """The 112 planes of ``board`` as bitboards in absolute squares (before the black-to-move mirror),
    and the rule-50 count that fills plane 109."""
    us = board.turn
    masks = [0] * NUM_PLANES
    for slot, shown in enumerate(history_slots(board, history_fill)):
        if shown is None:
            break
        position, repeated = shown
        base = slot * PLANES_PER_BOARD
        masks[base:base + 12] = [position.pieces_mask(p, us) for p in _PIECES] + \
                                [position.pieces_mask(p, not us) for p in _PIECES]
        if repeated:
            masks[base + 12] = _ALL
    if board.has_queenside_castling_rights(us):
        masks[AUX_BASE + 0] = _ALL
    if board.has_kingside_castling_rights(us):
        masks[AUX_BASE + 1] = _ALL
    if board.has_queenside_castling_rights(not us):
        masks[AUX_BASE + 2] = _ALL
    if board.has_kingside_castling_rights(not us):
        masks[AUX_BASE + 3] = _ALL
    if us == chess.BLACK:
        masks[AUX_BASE + 4] = _ALL
    masks[AUX_BASE + 7] = _ALL
    return masks, board.halfmove_clock


def lc0_rows_to_planes(rows: np.ndarray, rule50: np.ndarray) -> np.ndarray:
    """Expand ``(B, 112)`` uint64 bitboards, already seen from the side to move (mirrored for black), and
    the rule-50 counts ``(B,)`` into lc0's float32 planes ``(B, 112, 8, 8)``."""
    bits = np.unpackbits(np.ascontiguousarray(rows, dtype="<u8").view(np.uint8), bitorder="little")
    planes = bits.reshape(len(rows), NUM_PLANES, 8, 8).astype(np.float32)
    planes[:, RULE50_PLANE] = np.asarray(rule50, dtype=np.float32)[:, None, None]
    return planes


def encode_lc0_batch(boards: Sequence[chess.Board], history_fill: str = "fen_only") -> np.ndarray:
    """lc0's float32 input planes ``(B, 112, 8, 8)`` of each board with its game history."""
    rows = []
    black = np.zeros(len(boards), dtype=bool)
    rule50 = np.zeros(len(boards), dtype=np.float32)
    for i, board in enumerate(boards):
        masks, rule50[i] = lc0_bitboards(board, history_fill)
        black[i] = board.turn == chess.BLACK
        rows.append(masks)
    bitboards = np.array(rows, dtype=np.uint64).reshape(-1, NUM_PLANES)
    if black.any():
        bitboards[black] = bitboards[black].byteswap()  # mirror the ranks: one byte per rank
    return lc0_rows_to_planes(bitboards, rule50)


def encode_lc0(board: chess.Board, history_fill: str = "fen_only") -> np.ndarray:
    """lc0's float32 input planes ``(112, 8, 8)`` of one board with its game history."""
    return encode_lc0_batch([board], history_fill)[0]
