"""Built-in sets of real positions: calibration for static int8, and held-out positions for accuracy.

Both files under ``engine/data/`` hold one FEN per line, taken from games that start from ECO openings
(``eco.pgn``) continued by Stockfish; ``python -m engine.training.positions`` remakes them.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import chess
import numpy as np

from .encoding import encode_batch

CALIBRATION_FILE = "calibration.fen"
HELDOUT_FILE = "heldout.fen"


def data_path(name: str) -> Path:
    """Path of a file shipped under ``engine/data``."""
    return Path(str(resources.files("engine") / "data" / name))


def read_fens(path: str | Path, limit: int | None = None) -> list[chess.Board]:
    """Boards from a text file of FEN/EPD lines (EPD operations after the 4th field are ignored)."""
    boards = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        fen = " ".join(fields[:6]) if len(fields) >= 6 and fields[4].isdigit() else " ".join(fields[:4]) + " 0 1"
        boards.append(chess.Board(fen))
        if limit is not None and len(boards) >= limit:
            break
    return boards


@lru_cache(maxsize=2)
def _cached_planes(name: str) -> np.ndarray:
    return encode_batch(read_fens(data_path(name)))


def builtin_calibration_planes() -> np.ndarray:
    """Encoded planes of the shipped calibration positions (float32, ``(N, 16, 8, 8)``)."""
    return _cached_planes(CALIBRATION_FILE).copy()


def builtin_heldout_boards() -> list[chess.Board]:
    """The shipped held-out positions (never used for calibration)."""
    return read_fens(data_path(HELDOUT_FILE))
