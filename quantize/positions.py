"""Positions for calibration and accuracy checks, from EPD/FEN or PGN files or the built-in sets."""

from __future__ import annotations

import random
from pathlib import Path

import chess
import chess.pgn

from engine.calibration import builtin_heldout_boards, data_path, read_fens


class PositionFileError(ValueError):
    """A positions file that is missing or holds no usable position."""


def read_positions(path: str | Path, limit: int | None = None, seed: int = 0) -> list[chess.Board]:
    """Positions from a PGN file (every position of every game) or an EPD/FEN file (one per line).

    With ``limit``, a random sample (fixed ``seed``) of that many positions. Game-over positions are
    skipped: the network never sees them during search.
    """
    path = Path(path)
    if not path.is_file():
        raise PositionFileError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".pgn":
            boards = _pgn_positions(path)
        else:
            boards = read_fens(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PositionFileError(f"{path}: not an EPD/FEN or PGN file ({exc})") from None
    boards = [b for b in boards if not b.is_game_over()]
    if not boards:
        raise PositionFileError(f"{path}: no positions found (expected EPD/FEN lines or PGN games)")
    if limit is not None and len(boards) > limit:
        boards = random.Random(seed).sample(boards, limit)
    return boards


def _pgn_positions(path: Path) -> list[chess.Board]:
    boards = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        while (game := chess.pgn.read_game(handle)) is not None:
            board = game.board()
            for move in game.mainline_moves():
                board.push(move)
                boards.append(board.copy(stack=False))
    return boards


def calibration_positions(path: str | Path | None, size: int) -> list[chess.Board]:
    """``size`` calibration positions from ``path``, or from the built-in set (real games: ECO openings
    continued by Stockfish) when ``path`` is None."""
    return read_positions(path if path is not None else data_path("calibration.fen"), limit=size)


def heldout_positions(size: int | None = None) -> list[chess.Board]:
    """The built-in held-out positions (disjoint games from the calibration set)."""
    boards = builtin_heldout_boards()
    return boards[:size] if size else boards
