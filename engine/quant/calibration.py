"""Positions for calibration and accuracy checks: the built-in sets, or a user's EPD/FEN or PGN file.

The built-in files under ``engine/data/`` hold one FEN per line from games that start from ECO
openings (``eco.pgn``) continued by Stockfish; the calibration and held-out sets come from different games.
Positions from a PGN file keep the moves before them that lc0's 112 planes read (its history and
repetitions); FEN positions have none (lc0 fills the history as for a FEN it is given).
"""

from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path

import chess
import numpy as np

from ..bundled import CALIBRATION_FILE, HELDOUT_FILE, data_path
from ..inputs import encode_for_format
from ..interface import AZ_INPUT
from ..nets.lc0.encoding import HISTORY
from ..positions import PositionFileError, is_pgn, iter_pgn_games, read_fens

#: Calibration positions ``azengine quantize`` uses unless told otherwise.
DEFAULT_CALIBRATION_SIZE = 1024


def read_positions(path: str | Path, limit: int | None = None, seed: int = 0) -> list[chess.Board]:
    """Positions from a PGN file (every position of every game) or an EPD/FEN file (one per line).

    With ``limit``, a random sample (fixed ``seed``) of that many positions. Game-over positions are
    skipped: the network never sees them during search. :class:`PositionFileError` for a missing file
    or one without positions.
    """
    path = Path(path)
    if not path.is_file():
        raise PositionFileError(f"{path}: no such file")
    try:
        boards = _pgn_positions(path) if is_pgn(path) else read_fens(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PositionFileError(f"{path}: not an EPD/FEN or PGN file ({exc})") from None
    boards = [b for b in boards if not b.is_game_over()]
    if not boards:
        raise PositionFileError(f"{path}: no positions found (expected EPD/FEN lines or PGN games)")
    if limit is not None and len(boards) > limit:
        boards = random.Random(seed).sample(boards, limit)
    return boards


def _pgn_positions(path: Path) -> list[chess.Board]:
    """Every position of every game, each with the moves lc0's planes read: the last ``HISTORY - 1`` (the
    history slots) or back to the last capture or pawn move (repetitions), whichever is more."""
    boards = []
    for game in iter_pgn_games(path):
        board = game.board()
        for move in game.mainline_moves():
            board.push(move)
            boards.append(board.copy(stack=max(HISTORY - 1, board.halfmove_clock)))
    return boards


def calibration_positions(path: str | Path | None = None, size: int = DEFAULT_CALIBRATION_SIZE) -> list[chess.Board]:
    """``size`` calibration positions from ``path``, or from the built-in set when ``path`` is None."""
    return read_positions(path if path is not None else data_path(CALIBRATION_FILE), limit=size)


def heldout_positions(size: int | None = None) -> list[chess.Board]:
    """The built-in held-out positions (never used for calibration), the first ``size`` of them."""
    boards = read_fens(data_path(HELDOUT_FILE))
    return boards[:size] if size else boards


@lru_cache(maxsize=2)
def _builtin_calibration_planes(input_format: str) -> np.ndarray:
    return encode_for_format(input_format, read_fens(data_path(CALIBRATION_FILE)))


def builtin_calibration_planes(input_format: str = AZ_INPUT) -> np.ndarray:
    """Encoded planes of all the shipped calibration positions (FENs, no history) in ``input_format``
    (float32, ``(N, 16, 8, 8)`` for ``AZ_INPUT``, ``(N, 112, 8, 8)`` for ``LC0_INPUT``)."""
    return _builtin_calibration_planes(input_format).copy()
