"""Syzygy endgame tablebases for the search, through python-chess's prober (``chess.syzygy``).

Inside the tree a position with no more pieces than the tables hold (and no castling right) is terminal
with its WDL: a win 1, a loss -1, and a draw, a cursed win or a blessed loss 0 (the 50-move rule makes
those draws). At the root the DTZ tables choose: the moves that win fastest within the 50-move rule,
else every move that holds the draw, else the moves that lose slowest; the search then plays among them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import chess
import chess.syzygy

log = logging.getLogger(__name__)

# Rank of a root move's outcome for the side to move: higher is better.
_LOSS, _DRAW, _WIN, _MATE = 0, 1, 2, 3


@dataclass(frozen=True)
class OpenedTables:
    """What ``Tablebases.open`` found: the tablebases (None when no table was found) and a message."""

    tablebases: Tablebases | None
    message: str


class Tablebases:
    """Opened Syzygy tables: WDL values of positions, and the root moves DTZ allows."""

    def __init__(self, prober: chess.syzygy.Tablebase, paths: list[str]) -> None:
        self.prober = prober
        self.paths = paths
        #: Pieces (kings included) of the largest table; positions with more pieces are not probed.
        self.max_pieces = max((len(name) - 1 for name in prober.wdl), default=0)

    @classmethod
    def open(cls, path_list: str) -> OpenedTables:
        """Open the tables in ``path_list`` (directories separated by ``os.pathsep``, as Stockfish takes it).

        Directories that do not exist are named in the message and skipped; with no WDL table found at
        all the result holds no tablebases.
        """
        paths = [p for p in path_list.split(os.pathsep) if p.strip()]
        prober = chess.syzygy.Tablebase()
        missing = []
        files = 0
        for path in paths:
            directory = os.path.expanduser(path.strip())
            if not os.path.isdir(directory):
                missing.append(path)
                continue
            try:
                files += prober.add_directory(directory)
            except OSError as exc:
                missing.append(f"{path} ({exc.strerror or exc})")
        note = f"; not found: {', '.join(missing)}" if missing else ""
        if not prober.wdl:
            prober.close()
            return OpenedTables(None, f"SyzygyPath: no Syzygy tables in {path_list!r}{note}; tablebases off")
        tables = cls(prober, paths)
        return OpenedTables(tables, f"SyzygyPath: {files} table files, up to {tables.max_pieces} pieces{note}")

    def close(self) -> None:
        """Close the table files."""
        self.prober.close()

    def covers(self, board: chess.Board) -> bool:
        """Whether ``board`` may be in the tables: few enough pieces and no castling right."""
        return chess.popcount(board.occupied) <= self.max_pieces and not board.castling_rights

    def wdl_value(self, board: chess.Board) -> int | None:
        """1, 0 or -1 for the side to move (cursed wins and blessed losses are draws); None without a table."""
        try:
            wdl = self.prober.probe_wdl(board)
        except KeyError:  # MissingTableError: this material is not in the tables
            return None
        return 1 if wdl == 2 else -1 if wdl == -2 else 0

    def root_moves(self, board: chess.Board, use_dtz: bool = True) -> list[chess.Move] | None:
        """The legal moves the tables keep at the root, or None when ``board`` is not (wholly) in them.

        Kept are the moves that mate or win fastest within the 50-move rule (a winning capture or pawn
        move counts as fastest: it resets the count); without a win every drawing move; without a draw
        the moves that lose slowest. Without ``use_dtz`` (WDL only, much faster) every winning move is
        kept, else every drawing move, else every move.
        """
        if not self.covers(board):
            return None
        ranked: list[tuple[tuple[int, int], chess.Move]] = []
        for move in board.legal_moves:
            zeroing = board.is_zeroing(move)
            board.push(move)
            try:
                rank = self._rank_after(board, zeroing) if use_dtz else self._wdl_rank_after(board)
            except KeyError:  # a table of a position after the move is missing
                return None
            finally:
                board.pop()
            ranked.append((rank, move))
        if not ranked:
            return None
        best = max(rank for rank, _ in ranked)
        if best[0] == _DRAW:
            return [move for rank, move in ranked if rank[0] == _DRAW]
        return [move for rank, move in ranked if rank == best]

    def _wdl_rank_after(self, child: chess.Board) -> tuple[int, int]:
        """(outcome, 0) of the move that led to ``child`` by WDL alone (cursed results are draws)."""
        if child.is_checkmate():
            return _MATE, 0
        their_wdl = self.prober.probe_wdl(child)
        return (_WIN if their_wdl == -2 else _LOSS if their_wdl == 2 else _DRAW), 0

    def _rank_after(self, child: chess.Board, zeroing: bool) -> tuple[int, int]:
        """(outcome, tie-break) of the move that led to ``child``, for the side that played it."""
        if child.is_checkmate():
            return _MATE, 0
        their_wdl = self.prober.probe_wdl(child)
        if their_wdl == 0 or abs(their_wdl) == 1:
            return _DRAW, 0
        plies = abs(self.prober.probe_dtz(child))  # until the winner's next capture or pawn move
        within_rule = child.halfmove_clock + plies <= 100
        if their_wdl == -2:  # we win
            if not within_rule:
                return _DRAW, 0
            return _WIN, 0 if zeroing else -plies
        if not within_rule:  # they win, but not before the 50-move rule
            return _DRAW, 0
        return _LOSS, plies
