"""Pure functions for UCI lines: parse ``position``, ``go`` and ``setoption``; format ``info`` lines.

Nothing here does I/O, so every function is tested alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import chess

from search.types import Limits, MoveStats, SearchInfo


class UciParseError(ValueError):
    """A UCI command whose arguments cannot be understood."""


@dataclass
class ParsedPosition:
    """The outcome of ``position``: the board reached, and an error about a bad move if there was one."""

    board: chess.Board
    error: str | None = None


def parse_position(args: list[str], chess960: bool = False) -> ParsedPosition:
    """Parse the arguments of ``position startpos|fen <fen> [moves m1 m2 ...]``.

    With ``chess960`` the board is a Chess960 board: the FEN may be an X-FEN or a Shredder-FEN and
    castling moves are the king taking its rook (``e1h1``; ``e1g1`` is understood where unambiguous).
    A bad FEN raises :class:`UciParseError`. An illegal or malformed move stops the move list there:
    the board holds the moves before it and ``error`` says which move was refused.
    """
    if not args:
        raise UciParseError("position needs 'startpos' or 'fen <fen>'")
    if "moves" in args:
        split = args.index("moves")
        head, moves = args[:split], args[split + 1:]
    else:
        head, moves = args, []
    if not head:
        raise UciParseError("position needs 'startpos' or 'fen <fen>' before 'moves'")
    if head[0] == "startpos":
        if len(head) != 1:
            raise UciParseError(f"unexpected words after startpos: {' '.join(head[1:])}")
        board = chess.Board(chess960=chess960)
    elif head[0] == "fen":
        fen = " ".join(head[1:])
        if not fen:
            raise UciParseError("position fen needs a FEN")
        try:
            board = chess.Board(fen, chess960=chess960)
        except ValueError as exc:
            raise UciParseError(f"bad FEN {fen!r}: {exc}") from None
        if not board.is_valid():
            raise UciParseError(f"impossible position in FEN {fen!r} ({board.status()!r})")
    else:
        raise UciParseError(f"position needs 'startpos' or 'fen', not {head[0]!r}")
    for text in moves:
        try:
            move = board.parse_uci(text) if chess960 else chess.Move.from_uci(text)
        except chess.IllegalMoveError:
            move = None
        except ValueError:
            return ParsedPosition(board, f"malformed move {text!r}; position set up to the move before it")
        if move is None or move not in board.legal_moves:
            return ParsedPosition(board, f"illegal move {text} in {board.fen()}; position set up to the move "
                                         f"before it")
        board.push(move)
    return ParsedPosition(board)


_INT_FIELDS = ("wtime", "btime", "winc", "binc", "movestogo", "movetime", "nodes", "depth", "mate")
_GO_WORDS = set(_INT_FIELDS) | {"infinite", "ponder", "searchmoves"}


def parse_go(args: list[str], board: chess.Board) -> Limits:
    """Parse the arguments of ``go`` into :class:`~search.types.Limits`.

    Unknown words and values that are not integers raise :class:`UciParseError`; ``searchmoves``
    takes the moves up to the next keyword and ignores those that are not legal in ``board``.
    Negative clock values (a flag already fallen in a GUI) are taken as 0.
    """
    limits = Limits()
    i = 0
    while i < len(args):
        word = args[i]
        if word in _INT_FIELDS:
            if i + 1 >= len(args):
                raise UciParseError(f"go {word} needs a number")
            try:
                value = int(args[i + 1])
            except ValueError:
                raise UciParseError(f"go {word} needs a number, not {args[i + 1]!r}") from None
            setattr(limits, word, max(0, value))
            i += 2
        elif word == "infinite":
            limits.infinite = True
            i += 1
        elif word == "ponder":
            limits.ponder = True
            i += 1
        elif word == "searchmoves":
            i += 1
            while i < len(args) and args[i] not in _GO_WORDS:
                try:
                    move = chess.Move.from_uci(args[i])
                except ValueError:
                    move = None
                if move is not None and move in board.legal_moves:
                    limits.searchmoves.append(move)
                i += 1
        else:
            raise UciParseError(f"unknown go parameter {word!r}")
    return limits


def parse_setoption(args: list[str]) -> tuple[str, str]:
    """``setoption name <name with spaces> [value <text with spaces>]`` -> (name, value text)."""
    if not args or args[0] != "name":
        raise UciParseError("setoption needs 'name <option>'")
    if "value" in args:
        split = args.index("value")
        name, value = " ".join(args[1:split]), " ".join(args[split + 1:])
    else:
        name, value = " ".join(args[1:]), ""
    if not name:
        raise UciParseError("setoption needs an option name")
    return name, value


def format_info(info: SearchInfo, show_wdl: bool) -> list[str]:
    """The ``info`` lines of a search report, one per MultiPV line."""
    head = (f"info depth {info.depth} seldepth {info.seldepth} time {info.time_ms} nodes {info.nodes} "
            f"nps {info.nps} hashfull {info.hashfull}")
    if info.tbhits is not None:
        head += f" tbhits {info.tbhits}"
    out = []
    for line in info.lines:
        text = f"{head} multipv {line.multipv} score {line.score.uci()}"
        if show_wdl:
            text += " wdl {} {} {}".format(*line.wdl)
        text += " pv " + " ".join(m.uci() for m in line.pv)
        out.append(text)
    if not out:
        out.append(head)
    return out


def format_move_stats(stats: list[MoveStats]) -> list[str]:
    """``info string`` lines with per-move statistics (``VerboseMoveStats``), least visited first."""
    out = []
    for s in sorted(stats, key=lambda s: s.visits):
        q = f"{s.q:+.4f}" if s.q is not None else "  -    "
        mate = ""
        if s.mate_plies:
            mate = f" ({'mates' if s.mate_plies > 0 else 'is mated'} in {abs(s.mate_plies)} plies)"
        out.append(f"info string {s.move.uci():<6} (N: {s.visits:>7}) (P: {100 * s.prior:6.2f}%) (Q: {q}){mate}")
    return out
