"""Reading chess positions from files: FEN/EPD lines and PGN games (python-chess does the parsing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import chess
import chess.pgn


class PositionFileError(ValueError):
    """A positions file that is missing, unreadable, or holds a line that is no position."""


def board_from_line(line: str) -> tuple[chess.Board, dict[str, object]]:
    """The board of one FEN or EPD line and its EPD operations (empty for a FEN).

    A FEN may omit its move counters. ``ValueError`` when the line is neither.
    """
    fields = line.split()
    if len(fields) >= 6 and fields[4].isdigit() and fields[5].isdigit() and ";" not in line:
        return chess.Board(" ".join(fields[:6])), {}
    if len(fields) == 4:
        return chess.Board(" ".join(fields) + " 0 1"), {}
    board, ops = chess.Board.from_epd(line)
    return board, dict(ops)


def iter_fen_lines(path: str | Path) -> Iterator[tuple[int, chess.Board, dict[str, object]]]:
    """``(line number, board, EPD operations)`` for each FEN/EPD line; blank and ``#`` lines are skipped.

    :class:`PositionFileError` names the file and line of a line that is no position.
    """
    path = Path(path)
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                board, ops = board_from_line(line)
            except ValueError as exc:
                raise PositionFileError(f"{path}:{number}: not a FEN or EPD line ({exc})") from None
            yield number, board, ops


def read_fens(path: str | Path, limit: int | None = None) -> list[chess.Board]:
    """The boards of a FEN/EPD file, at most ``limit`` of them."""
    boards = []
    for _, board, _ in iter_fen_lines(path):
        boards.append(board)
        if limit is not None and len(boards) >= limit:
            break
    return boards


def iter_pgn_games(path: str | Path) -> Iterator[chess.pgn.Game]:
    """Every game of a PGN file, in order (python-chess's lenient reader; see ``game.errors``)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        while (game := chess.pgn.read_game(handle)) is not None:
            yield game


def is_pgn(path: str | Path) -> bool:
    """True for a ``.pgn`` file name (any case)."""
    return Path(path).suffix.lower() == ".pgn"
