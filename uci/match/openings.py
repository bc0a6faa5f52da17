"""Openings of a match: PGN lines or EPD/FEN positions, Chess960 start positions, and the order they are played in.

Files are read with :mod:`engine.positions`; python-chess does the parsing.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import chess
import chess.pgn

from engine.positions import PositionFileError, is_pgn, iter_fen_lines, iter_pgn_games

from .errors import MatchError

ECO_PGN = Path("/usr/share/pgn-extract/eco.pgn")
BUNDLED_OPENINGS = Path(__file__).resolve().parent.parent / "data" / "openings.epd"
VARIANTS = ("standard", "chess960")
CHESS960_POSITIONS = 960  # Scharnagl numbers 0..959
CHESS960_SOURCE = "Chess960 start positions"


@dataclass(frozen=True)
class Opening:
    """A start position and the book moves played from it before the engines take over."""

    fen: str
    moves: tuple[chess.Move, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # ECO / Opening / Variation of the source, when known
    chess960: bool = False  # castling by Chess960 rules (king and rooks anywhere on the back rank)

    def start_board(self) -> chess.Board:
        """The position the game starts from (before the book moves)."""
        return chess.Board(self.fen, chess960=self.chess960)

    def label(self) -> str:
        """A short description for reports: the opening's name, else its moves or FEN."""
        names = dict(self.headers)
        name = ": ".join(v for v in (names.get("Opening"), names.get("Variation")) if v)
        if names.get("ECO"):
            name = f"{names['ECO']} {name}".strip()
        if name:
            return name
        if self.moves:
            return self.start_board().variation_san(list(self.moves))
        return self.fen


def _pgn_openings(path: Path, plies: int, chess960: bool) -> Iterable[Opening]:
    for game in iter_pgn_games(path):
        if game.errors:
            continue
        board = game.board()
        moves = tuple(list(game.mainline_moves())[:plies])
        if not moves and "FEN" not in game.headers:
            continue
        headers = tuple((k, game.headers[k]) for k in ("ECO", "Opening", "Variation") if game.headers.get(k))
        if chess960:
            board.chess960 = True
            replay = board.copy(stack=False)
            moves = tuple(replay.push_uci(move.uci()) for move in moves)  # castling as king-takes-rook
        yield Opening(board.fen(), moves, headers, chess960)


def _epd_openings(path: Path, chess960: bool) -> Iterable[Opening]:
    try:
        for number, board, ops in iter_fen_lines(path):
            board.chess960 = chess960
            if not board.is_valid():
                raise MatchError(f"{path}:{number}: not a legal position: {board.epd()}")
            name = ops.get("id") or ops.get("c0")
            yield Opening(board.fen(), (), (("Opening", str(name)),) if name else (), chess960)
    except PositionFileError as exc:
        raise MatchError(str(exc)) from None


def load_openings(path: str | Path, plies: int = 16, variant: str = "standard") -> list[Opening]:
    """Openings from a PGN file (main lines cut to ``plies`` plies) or an EPD/FEN file (one position a line).

    With ``variant="chess960"`` the positions are Chess960 positions (X-FEN or Shredder-FEN castling rights).
    Duplicates and openings whose position is already game over are dropped. MatchError on a missing,
    unreadable or empty file, or on a line that is no legal position.
    """
    path = Path(path)
    chess960 = variant == "chess960"
    if not path.is_file():
        raise MatchError(f"openings file not found: {path}")
    try:
        found = list(_pgn_openings(path, plies, chess960) if is_pgn(path) else _epd_openings(path, chess960))
    except OSError as exc:
        raise MatchError(f"{path}: cannot read ({exc.strerror or exc})") from None
    seen: set[tuple[str, tuple[chess.Move, ...]]] = set()
    openings = []
    for opening in found:
        board = opening.start_board()
        for move in opening.moves:
            board.push(move)
        key = (opening.fen, opening.moves)
        if key not in seen and not board.is_game_over(claim_draw=True):
            seen.add(key)
            openings.append(opening)
    if not openings:
        raise MatchError(f"{path}: no openings found")
    return openings


def chess960_openings() -> list[Opening]:
    """The 960 Chess960 start positions, in the order of their Scharnagl numbers."""
    return [Opening(chess.Board.from_chess960_pos(n).fen(), chess960=True) for n in range(CHESS960_POSITIONS)]


def default_openings_path() -> Path:
    """eco.pgn of the pgn-extract package when installed, else the small opening set shipped with azengine."""
    return ECO_PGN if ECO_PGN.is_file() else BUNDLED_OPENINGS


def opening_schedule(openings: Sequence[Opening], count: int, order: str, rng: random.Random) -> list[Opening]:
    """``count`` openings in file order or at random (each used once before any repeats), cycling as needed."""
    schedule: list[Opening] = []
    while len(schedule) < count:
        batch = list(openings)
        if order == "random":
            rng.shuffle(batch)
        schedule += batch
    return schedule[:count]
