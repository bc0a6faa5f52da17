"""``azengine match``: play games between two UCI engines and measure the Elo difference.

Each engine is ``azengine`` in some configuration or any UCI engine, driven through python-chess's
:class:`chess.engine.SimpleEngine`. Every opening is played twice with colours swapped (a game pair);
the runner keeps the clocks, adjudicates, writes PGN and reports the statistics of :mod:`uci.elo` in
cutechess-cli's format. ``--quantization FP32 INT8`` runs the fp32-against-int8 studies (equal nodes,
then equal time) in one command.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import datetime
import json
import logging
import math
import os
import queue
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import chess
import chess.engine
import chess.pgn

from . import elo

ECO_PGN = Path("/usr/share/pgn-extract/eco.pgn")
BUNDLED_OPENINGS = Path(__file__).resolve().parent / "data" / "openings.epd"
SPEC_KEYS = ("name", "cmd", "dir", "arg", "proto")
STARTUP_TIMEOUT_S = 60.0  # uci/uciok, setoption, isready (azengine loads its network on the first isready)
QUIT_TIMEOUT_S = 5.0  # after "quit", how long before the process is killed
HANG_GRACE_S = 10.0  # how long past its time an engine may stay silent before it is killed
QUANT_DEFAULT_NODES = 400
QUANT_DEFAULT_TC = "10+0.1"
# what a python-chess call raises when it times out (three distinct classes before Python 3.11)
TIMEOUTS: tuple[type[BaseException], ...] = (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError)


class MatchError(Exception):
    """Bad input or an engine that cannot start: one line on stderr, exit code 2."""


# ----- engines -------------------------------------------------------------------------------------


@dataclass
class EngineSpec:
    """How to start one engine: its name, command line, working folder and UCI options."""

    name: str
    command: list[str]
    options: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None


def _spec_fields(tokens: Sequence[str], what: str) -> list[tuple[str, str]]:
    """``key=value`` fields of a cutechess-style spec; a word that starts no field continues the last one."""
    words: list[str] = []
    for token in tokens:
        try:
            words += shlex.split(token)
        except ValueError as exc:
            raise MatchError(f"{what}: cannot split {token!r}: {exc}") from None
    fields: list[str] = []
    for word in words:
        key = word.partition("=")[0]
        if key in SPEC_KEYS or word.lower().startswith("option."):
            fields.append(word)
        elif fields:
            fields[-1] += " " + word  # "option.Skill Level=0" unquoted
        else:
            raise MatchError(f"{what}: expected key=value fields (name=, cmd=, arg=, dir=, proto=, option.X=), "
                             f"got {word!r}")
    result = []
    for text in fields:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise MatchError(f"{what}: {text!r} is not key=value")
        result.append((key, value))
    return result


def _find_program(program: str, cwd: str | None) -> str | None:
    if os.sep in program or (os.altsep and os.altsep in program):
        path = Path(program).expanduser()
        if cwd and not path.is_absolute():
            path = Path(cwd) / path
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        return None
    return shutil.which(program)


def resolve_command(cmd: str, cwd: str | None = None) -> list[str]:
    """The argv of an engine command: a program on PATH or a path, optionally followed by arguments.

    ``azengine`` runs through this Python when the console script is not on PATH. MatchError if not found.
    """
    if not cmd.strip():
        raise MatchError("empty engine command (cmd=)")
    found = _find_program(cmd, cwd)
    if found:
        return [found]
    try:
        words = shlex.split(cmd)
    except ValueError:
        words = [cmd]
    if words and (found := _find_program(words[0], cwd)):
        return [found, *words[1:]]
    if words and words[0] == "azengine":  # not on PATH: this azengine (the frozen binary, or through this Python)
        this = [sys.executable] if getattr(sys, "frozen", False) else [sys.executable, "-m", "uci.cli"]
        return [*this, *words[1:]]
    path = Path(cwd or ".", words[0] if words else cmd)
    if path.is_file():
        raise MatchError(f"engine command {cmd!r}: {path} is not executable")
    raise MatchError(f"engine command not found: {cmd!r}")


def parse_engine_spec(tokens: Sequence[str], each: Sequence[str] = (), index: int = 1) -> EngineSpec:
    """An :class:`EngineSpec` from ``name=N cmd=C [arg=A ...] [dir=D] [option.X=V ...]`` plus the ``--each`` fields.

    Options of the engine's own spec override those of ``--each``. MatchError on bad input.
    """
    what = f"--engine #{index}"
    name: str | None = None
    cmd: str | None = None
    cwd: str | None = None
    args: list[str] = []
    options: dict[str, str] = {}
    for source, fields in (("--each", _spec_fields(each, "--each")), (what, _spec_fields(tokens, what))):
        for key, value in fields:
            if key in ("name", "cmd") and source == "--each":
                raise MatchError(f"--each: {key}= belongs in --engine")
            if key == "name":
                name = value
            elif key == "cmd":
                cmd = value
            elif key == "dir":
                cwd = value
            elif key == "arg":
                args.append(value)
            elif key == "proto":
                if value.lower() != "uci":
                    raise MatchError(f"{source}: only proto=uci is supported, not {value!r}")
            else:
                option = key[len("option."):].strip()
                if not option:
                    raise MatchError(f"{source}: option name missing in {key}={value}")
                if option.lower() in chess.engine.MANAGED_OPTIONS:
                    raise MatchError(f"{source}: option {option} is managed by the match runner (python-chess sets "
                                     "it for every search); leave it out")
                options = {k: v for k, v in options.items() if k.lower() != option.lower()}
                options[option] = value
    if cmd is None:
        raise MatchError(f"{what}: cmd= is missing")
    if cwd is not None and not Path(cwd).is_dir():
        raise MatchError(f"{what}: dir={cwd} is not a folder")
    command = resolve_command(cmd, cwd) + args
    if name is None:
        name = "azengine" if cmd.split()[:1] == ["azengine"] else Path(command[0]).name
    return EngineSpec(name=name, command=command, options=options, cwd=cwd)


def _configure(engine: chess.engine.SimpleEngine, spec: EngineSpec) -> None:
    options: dict[str, chess.engine.ConfigValue] = {}
    for name, value in spec.options.items():
        option = engine.options.get(name)
        if option is None:
            raise chess.engine.EngineError(f"engine has no option {name!r} (it has: {', '.join(engine.options)})")
        options[option.name] = value.strip().lower() in ("true", "1", "yes", "on") if option.type == "check" else value
    engine.configure(options)


def start_engine(spec: EngineSpec, show_stderr: bool = False) -> chess.engine.SimpleEngine:
    """Start the engine, set its options and wait for ``readyok``; MatchError if any of that fails."""
    popen_args: dict[str, Any] = {} if show_stderr else {"stderr": subprocess.DEVNULL}
    try:
        engine = chess.engine.SimpleEngine.popen_uci(spec.command, timeout=STARTUP_TIMEOUT_S, cwd=spec.cwd,
                                                     **popen_args)
    except (OSError, chess.engine.EngineError, *TIMEOUTS) as exc:
        reason = "no uciok in time" if isinstance(exc, TIMEOUTS) else str(exc) or type(exc).__name__
        raise MatchError(f"engine {spec.name}: cannot start {shlex.join(spec.command)}: {reason}") from None
    try:
        _configure(engine, spec)
        engine.ping()
    except (chess.engine.EngineError, chess.engine.EngineTerminatedError, *TIMEOUTS) as exc:
        _kill(engine)
        engine.close()
        reason = "no readyok in time" if isinstance(exc, TIMEOUTS) else str(exc) or type(exc).__name__
        raise MatchError(f"engine {spec.name}: {reason}") from None
    return engine


def _kill(engine: chess.engine.SimpleEngine) -> None:
    """Kill the engine's process from any thread; nothing happens if it is gone already."""
    def kill() -> None:
        with contextlib.suppress(ProcessLookupError, OSError):
            engine.transport.kill()

    with contextlib.suppress(RuntimeError):  # its event loop is closed: the process is gone
        engine.protocol.loop.call_soon_threadsafe(kill)


class EngineHung(Exception):
    """The engine gave no move long after its time was up and was killed."""


class Player:
    """One engine process of one worker, restarted when it died in an earlier game."""

    def __init__(self, spec: EngineSpec, show_stderr: bool = False) -> None:
        self.spec = spec
        self.show_stderr = show_stderr
        self.engine: chess.engine.SimpleEngine | None = None
        self.starts = 0

    def ensure_started(self) -> None:
        """Start the engine if it is not running (first game, or it crashed or was killed)."""
        if self.engine is not None and not self.engine.returncode.done():
            return
        self.close()
        self.engine = start_engine(self.spec, self.show_stderr)
        self.starts += 1

    def kill(self) -> None:
        """Kill the process now (from any thread); the running ``play`` raises EngineTerminatedError."""
        if self.engine is not None:
            _kill(self.engine)

    def close(self) -> None:
        """Send ``quit`` and close; kill the process if it does not exit within a few seconds."""
        engine, self.engine = self.engine, None
        if engine is None:
            return
        try:
            if not engine.returncode.done():
                engine.timeout = QUIT_TIMEOUT_S
                engine.quit()
        except (chess.engine.EngineError, RuntimeError, chess.engine.EngineTerminatedError, *TIMEOUTS):
            _kill(engine)
        finally:
            engine.close()

    def play(self, board: chess.Board, limit: chess.engine.Limit, hard_timeout: float,
             game: object) -> tuple[chess.engine.PlayResult, float]:
        """The engine's move and the wall time it took; EngineHung after ``hard_timeout`` seconds."""
        assert self.engine is not None
        fired = threading.Event()

        def on_timeout() -> None:
            fired.set()
            self.kill()

        timer = threading.Timer(hard_timeout, on_timeout)
        timer.daemon = True
        started = time.perf_counter()
        timer.start()
        try:
            result = self.engine.play(board, limit, info=chess.engine.INFO_BASIC | chess.engine.INFO_SCORE, game=game)
        except (chess.engine.EngineTerminatedError, *TIMEOUTS):
            if fired.is_set():
                raise EngineHung from None
            if not self.engine.returncode.done():
                self.kill()  # a python-chess timeout: the engine is stuck; restart it for the next game
            raise chess.engine.EngineTerminatedError("engine process died") from None
        finally:
            timer.cancel()
        elapsed = time.perf_counter() - started
        if fired.is_set():
            raise EngineHung
        return result, elapsed


# ----- openings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Opening:
    """A start position and the book moves played from it before the engines take over."""

    fen: str
    moves: tuple[chess.Move, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # ECO / Opening / Variation of the source, when known

    def start_board(self) -> chess.Board:
        """The position the game starts from (before the book moves)."""
        return chess.Board(self.fen)

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


def _read_pgn_openings(path: Path, plies: int) -> list[Opening]:
    openings = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        while (game := chess.pgn.read_game(handle)) is not None:
            if game.errors:
                continue
            board = game.board()
            moves = tuple(list(game.mainline_moves())[:plies])
            if not moves and "FEN" not in game.headers:
                continue
            headers = tuple((k, game.headers[k]) for k in ("ECO", "Opening", "Variation") if game.headers.get(k))
            openings.append(Opening(board.fen(), moves, headers))
    return openings


def _read_epd_openings(path: Path) -> list[Opening]:
    openings = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            try:
                if len(parts) >= 6 and parts[4].isdigit() and parts[5].isdigit() and ";" not in line:
                    board, ops = chess.Board(" ".join(parts[:6])), {}
                else:
                    board, ops = chess.Board.from_epd(line)
            except ValueError as exc:
                raise MatchError(f"{path}:{number}: not an EPD or FEN line ({exc})") from None
            if not board.is_valid():
                raise MatchError(f"{path}:{number}: not a legal position: {line}")
            name = ops.get("id") or ops.get("c0")
            openings.append(Opening(board.fen(), (), (("Opening", str(name)),) if name else ()))
    return openings


def load_openings(path: str | Path, plies: int = 16) -> list[Opening]:
    """Openings from a PGN file (main lines cut to ``plies`` plies) or an EPD/FEN file (one position a line).

    Duplicates and openings whose position is already game over are dropped. MatchError on a missing,
    unreadable or empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise MatchError(f"openings file not found: {path}")
    try:
        found = _read_pgn_openings(path, plies) if path.suffix.lower() == ".pgn" else _read_epd_openings(path)
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


# ----- limits and adjudication ---------------------------------------------------------------------


@dataclass(frozen=True)
class TimeControl:
    """Fischer clock: ``base`` seconds plus ``inc`` seconds after every move."""

    base: float
    inc: float = 0.0

    def __str__(self) -> str:
        return f"{self.base:g}+{self.inc:g}" if self.inc else f"{self.base:g}"


def parse_tc(text: str) -> TimeControl | None:
    """``base+inc`` in seconds (``10+0.1``, ``60``, ``1:30+1``), or ``inf`` for no clock; MatchError if bad."""
    text = text.strip()
    if text.lower() in ("inf", "infinite"):
        return None
    base_text, _, inc_text = text.partition("+")
    try:
        if ":" in base_text:
            minutes, _, seconds = base_text.partition(":")
            base = 60 * float(minutes) + float(seconds)
        else:
            base = float(base_text)
        inc = float(inc_text) if inc_text else 0.0
    except ValueError:
        raise MatchError(f"bad --tc {text!r}: expected base+inc in seconds, e.g. 10+0.1") from None
    if not (math.isfinite(base) and math.isfinite(inc)) or base <= 0 or inc < 0:
        raise MatchError(f"bad --tc {text!r}: the base must be positive and the increment not negative")
    return TimeControl(base, inc)


@dataclass(frozen=True)
class Limits:
    """What each engine gets per move: a clock, a node count, a fixed move time, or a combination."""

    tc: TimeControl | None = None
    nodes: int | None = None
    movetime_ms: int | None = None
    timemargin_ms: int | None = None  # None: 0 with a clock, 1000 with a move time
    move_timeout_s: float = 120.0  # only limit when there is neither a clock nor a move time

    def margin_s(self) -> float:
        """How far past its time a move may come before it loses on time."""
        if self.timemargin_ms is not None:
            return self.timemargin_ms / 1000.0
        return 0.0 if self.tc else 1.0

    def pgn_time_control(self) -> str:
        """The PGN TimeControl tag: ``base+inc`` of the clock, else ``-``."""
        return str(self.tc) if self.tc else "-"

    def describe(self) -> str:
        """For reports: ``tc 10+0.1``, ``400 nodes``, ``movetime 100 ms``, joined."""
        parts = []
        if self.tc:
            parts.append(f"tc {self.tc}")
        if self.movetime_ms:
            parts.append(f"movetime {self.movetime_ms} ms")
        if self.nodes:
            parts.append(f"{self.nodes} nodes")
        return ", ".join(parts)


@dataclass(frozen=True)
class Adjudication:
    """Draw and resign adjudication (off when the move counts are 0) and the maximum game length."""

    draw_movenumber: int = 0
    draw_movecount: int = 0
    draw_score: int = 10
    resign_movecount: int = 0
    resign_score: int = 1000
    max_plies: int = 400


# ----- one game ------------------------------------------------------------------------------------


@dataclass
class GameRecord:
    """The result of one game and its PGN."""

    pair: int
    index: int  # 0: the first engine has white; 1: colours swapped
    white: str
    black: str
    result: str  # "1-0", "0-1", "1/2-1/2"
    termination: str  # PGN Termination tag
    detail: str  # e.g. "White mates", "Black loses on time"
    plies: int  # book moves included
    book_plies: int
    opening: str
    fault: tuple[str, str] | None = None  # (engine name, "time" | "illegal" | "crash")
    pgn: chess.pgn.Game | None = None

    @property
    def round(self) -> str:
        """``pair.game`` (``3.1``, ``3.2``): the Round tag."""
        return f"{self.pair}.{self.index + 1}"

    def points(self, name: str) -> float:
        """Points of the engine called ``name`` in this game."""
        white_points = {"1-0": 1.0, "0-1": 0.0}.get(self.result, 0.5)
        return white_points if name == self.white else 1.0 - white_points

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (without the moves)."""
        return {"round": self.round, "white": self.white, "black": self.black, "result": self.result,
                "termination": self.termination, "detail": self.detail, "plies": self.plies,
                "book_plies": self.book_plies, "opening": self.opening,
                "fault": list(self.fault) if self.fault else None}


_DRAW_TEXT = {
    chess.Termination.STALEMATE: "Draw by stalemate",
    chess.Termination.INSUFFICIENT_MATERIAL: "Draw by insufficient mating material",
    chess.Termination.SEVENTYFIVE_MOVES: "Draw by 75 moves rule",
    chess.Termination.FIVEFOLD_REPETITION: "Draw by 5-fold repetition",
    chess.Termination.FIFTY_MOVES: "Draw by fifty moves rule",
    chess.Termination.THREEFOLD_REPETITION: "Draw by 3-fold repetition",
}


def _colour(color: chess.Color) -> str:
    return "White" if color == chess.WHITE else "Black"


def _score_comment(info: chess.engine.InfoDict, elapsed: float) -> str:
    score = info.get("score")
    text = "?"
    if score is not None:
        relative = score.relative
        mate = relative.mate()
        text = (f"{'+' if mate > 0 else '-'}M{abs(mate)}" if mate is not None
                else f"{relative.score() / 100:+.2f}")
    depth = info.get("depth")
    return f"{text}/{depth if depth is not None else 0} {elapsed:.3f}s"


@dataclass
class _GameEnd:
    result: str
    termination: str
    detail: str
    fault: tuple[str, str] | None = None


def play_game(white: Player, black: Player, opening: Opening, limits: Limits, adjudication: Adjudication,
              game_token: object, headers: dict[str, str]) -> GameRecord:
    """Play one game from ``opening``; faults of an engine (time, illegal move, crash) lose it the game."""
    board = opening.start_board()
    game = chess.pgn.Game()
    game.headers.update(headers)
    game.headers["White"], game.headers["Black"] = white.spec.name, black.spec.name
    if opening.fen != chess.STARTING_FEN:
        game.setup(board)
    for key, value in opening.headers:
        game.headers[key] = value
    game.headers["TimeControl"] = limits.pgn_time_control()
    if limits.nodes:
        game.headers["Nodes"] = str(limits.nodes)
    if limits.movetime_ms:
        game.headers["MoveTime"] = f"{limits.movetime_ms}ms"
    node: chess.pgn.GameNode = game
    for move in opening.moves:
        board.push(move)
        node = node.add_variation(move, comment="book")
    book_plies = len(board.move_stack)

    players = {chess.WHITE: white, chess.BLACK: black}
    clocks = {chess.WHITE: limits.tc.base, chess.BLACK: limits.tc.base} if limits.tc else {}
    draw_count = 0
    resign_count = {chess.WHITE: 0, chess.BLACK: 0}
    end: _GameEnd | None = None
    while end is None:
        outcome = board.outcome(claim_draw=True)
        if outcome is not None:
            if outcome.winner is not None:
                end = _GameEnd(outcome.result(), "normal", f"{_colour(outcome.winner)} mates")
            else:
                end = _GameEnd("1/2-1/2", "normal", _DRAW_TEXT.get(outcome.termination, "Draw"))
            break
        if len(board.move_stack) >= adjudication.max_plies:
            end = _GameEnd("1/2-1/2", "adjudication", f"Draw by maximum game length ({adjudication.max_plies} plies)")
            break
        color = board.turn
        player = players[color]
        loss = "0-1" if color == chess.WHITE else "1-0"
        name = _colour(color)
        limit = chess.engine.Limit(
            nodes=limits.nodes, time=limits.movetime_ms / 1000 if limits.movetime_ms else None,
            white_clock=clocks.get(chess.WHITE), black_clock=clocks.get(chess.BLACK),
            white_inc=limits.tc.inc if limits.tc else None, black_inc=limits.tc.inc if limits.tc else None)
        if limits.tc:
            hard = clocks[color] + limits.margin_s() + HANG_GRACE_S
        elif limits.movetime_ms:
            hard = limits.movetime_ms / 1000 + limits.margin_s() + HANG_GRACE_S
        else:
            hard = limits.move_timeout_s
        try:
            result, elapsed = player.play(board, limit, hard, game_token)
        except EngineHung:
            end = _GameEnd(loss, "time forfeit", f"{name} loses on time (no move after {hard:.1f} s)",
                           (player.spec.name, "time"))
            break
        except chess.engine.EngineTerminatedError:
            end = _GameEnd(loss, "abandoned", f"{name} disconnects (engine crashed)", (player.spec.name, "crash"))
            break
        except chess.engine.EngineError as exc:
            end = _GameEnd(loss, "rules infraction", f"{name} makes an illegal move ({exc})",
                           (player.spec.name, "illegal"))
            break
        move = result.move
        if move is None or move not in board.legal_moves:
            end = _GameEnd(loss, "rules infraction", f"{name} makes an illegal move: {move or '(none)'}",
                           (player.spec.name, "illegal"))
            break
        if limits.tc:
            clocks[color] -= elapsed
            if clocks[color] < -limits.margin_s():
                end = _GameEnd(loss, "time forfeit", f"{name} loses on time", (player.spec.name, "time"))
                break
            clocks[color] += limits.tc.inc
        elif limits.movetime_ms and elapsed > limits.movetime_ms / 1000 + limits.margin_s():
            end = _GameEnd(loss, "time forfeit", f"{name} loses on time ({elapsed:.3f} s for a "
                           f"{limits.movetime_ms} ms move)", (player.spec.name, "time"))
            break
        board.push(move)
        node = node.add_variation(move, comment=_score_comment(result.info, elapsed))

        score = result.info.get("score")
        cp = score.relative.score(mate_score=100_000) if score is not None else None
        if adjudication.draw_movecount > 0:
            draw_count = draw_count + 1 if cp is not None and abs(cp) <= adjudication.draw_score else 0
            if board.ply() // 2 >= adjudication.draw_movenumber and draw_count >= 2 * adjudication.draw_movecount:
                end = _GameEnd("1/2-1/2", "adjudication", "Draw by adjudication")
                break
        if adjudication.resign_movecount > 0:
            resigning = cp is not None and cp <= -adjudication.resign_score
            resign_count[color] = resign_count[color] + 1 if resigning else 0
            if resign_count[color] >= adjudication.resign_movecount:
                end = _GameEnd(loss, "adjudication", f"{name} resigns (adjudication)")
                break

    game.headers["Result"] = end.result
    game.headers["Termination"] = end.termination
    game.headers["PlyCount"] = str(len(board.move_stack))
    if node is game:
        game.comment = end.detail
    else:
        node.comment = f"{node.comment}, {end.detail}" if node.comment else end.detail
    return GameRecord(pair=0, index=0, white=white.spec.name, black=black.spec.name, result=end.result,
                      termination=end.termination, detail=end.detail, plies=len(board.move_stack),
                      book_plies=book_plies, opening=opening.label(), fault=end.fault, pgn=game)


# ----- the match -----------------------------------------------------------------------------------


@dataclass
class MatchConfig:
    """Everything one match needs."""

    engines: tuple[EngineSpec, EngineSpec]
    openings: list[Opening]
    limits: Limits
    games: int = 2
    concurrency: int = 1
    adjudication: Adjudication = field(default_factory=Adjudication)
    opening_order: str = "random"
    seed: int = 0
    sprt: elo.Sprt | None = None
    pgn_path: Path | None = None
    event: str = "azengine match"
    show_engine_stderr: bool = False
    openings_source: str = ""
    label: str = ""  # the study, with --quantization


@dataclass
class MatchResult:
    """Games played so far and the statistics of the first engine against the second."""

    first: str
    second: str
    sprt: elo.Sprt | None = None
    records: list[GameRecord] = field(default_factory=list)
    wins: int = 0
    losses: int = 0
    draws: int = 0
    faults: dict[str, dict[str, int]] = field(default_factory=dict)
    pairs: dict[int, list[float]] = field(default_factory=dict)
    llr: float = 0.0
    decision: str | None = None
    stopped: str | None = None  # why the match ended before all games were played

    def __post_init__(self) -> None:
        for name in (self.first, self.second):
            self.faults.setdefault(name, {"time": 0, "illegal": 0, "crash": 0})

    def add(self, record: GameRecord) -> None:
        """Count a finished game (and update the SPRT)."""
        self.records.append(record)
        points = record.points(self.first)
        if points == 1.0:
            self.wins += 1
        elif points == 0.0:
            self.losses += 1
        else:
            self.draws += 1
        self.pairs.setdefault(record.pair, []).append(points)
        if record.fault:
            self.faults[record.fault[0]][record.fault[1]] += 1
        if self.sprt is not None:
            self.llr = self.sprt.llr(self.wins, self.losses, self.draws, self.pentanomial())
            if self.decision is None:
                self.decision = self.sprt.decision(self.llr)

    @property
    def games(self) -> int:
        """Games counted."""
        return self.wins + self.losses + self.draws

    def pentanomial(self) -> list[int]:
        """Pentanomial counts of the complete game pairs."""
        return elo.pentanomial(sum(p) for p in self.pairs.values() if len(p) == 2)

    def score_line(self) -> str:
        """``Score of A vs B: W - L - D  [p] N``."""
        return elo.format_score_line(self.first, self.second, self.wins, self.losses, self.draws)

    def summary_lines(self) -> list[str]:
        """The final report, in cutechess-cli's format where it has one."""
        lines = [self.score_line(), elo.format_elo_line(self.wins, self.losses, self.draws)]
        if self.sprt is not None:
            lines.append(elo.format_sprt_line(self.llr, self.sprt, self.decision))
        lines.append(elo.format_pentanomial_line(self.pentanomial()))
        f, s = self.faults[self.first], self.faults[self.second]
        lines.append(f"Time losses: {self.first} {f['time']}, {self.second} {s['time']}; "
                     f"illegal moves: {self.first} {f['illegal']}, {self.second} {s['illegal']}; "
                     f"crashes: {self.first} {f['crash']}, {self.second} {s['crash']}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready data (non-finite numbers become null)."""
        def num(x: float) -> float | None:
            return x if math.isfinite(x) else None

        w, lo, d = self.wins, self.losses, self.draws
        data: dict[str, Any] = {
            "first": self.first, "second": self.second, "games": self.games, "wins": w, "losses": lo, "draws": d,
            "score": num(elo.score(w, lo, d)), "elo": num(elo.elo_from_score(elo.score(w, lo, d))),
            "elo_error_95": num(elo.elo_error_margin(w, lo, d)), "los": num(elo.los(w, lo)),
            "draw_ratio": num(elo.draw_ratio(w, lo, d)), "pentanomial": self.pentanomial(),
            "faults": self.faults, "stopped": self.stopped, "lines": self.summary_lines(),
        }
        if self.sprt is not None:
            lower, upper = self.sprt.bounds
            data["sprt"] = {"elo0": self.sprt.elo0, "elo1": self.sprt.elo1, "alpha": self.sprt.alpha,
                            "beta": self.sprt.beta, "model": self.sprt.model, "llr": self.llr,
                            "lower_bound": lower, "upper_bound": upper, "decision": self.decision}
        data["game_list"] = [r.to_dict() for r in sorted(self.records, key=lambda r: (r.pair, r.index))]
        return data


@dataclass
class _Shared:
    """What the workers of one match share: the job queue, the tally (under the lock) and the stop flags."""

    config: MatchConfig
    result: MatchResult
    jobs: queue.Queue
    reports: queue.Queue  # ("game", record, progress text) | ("error", message) | ("done", None)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)  # start no more games
    abort: threading.Event = field(default_factory=threading.Event)  # interrupted: drop the games in flight


def _count(shared: _Shared, record: GameRecord) -> str:
    """Add a finished game to the tally, stop the match when the SPRT decided; the progress text."""
    result, sprt = shared.result, shared.config.sprt
    with shared.lock:
        result.add(record)
        text = (f"Finished game {result.games} ({record.white} vs {record.black}): {record.result} "
                f"{{{record.detail}}}\n{result.score_line()}\n")
        if sprt is not None:
            text += elo.format_sprt_line(result.llr, sprt, result.decision) + "\n"
        if result.decision is not None and not shared.stop.is_set():
            result.stopped = f"SPRT: {result.decision} accepted"
            shared.stop.set()
    return text


def _worker(shared: _Shared, players: tuple[Player, Player]) -> None:
    config = shared.config
    first, second = players
    try:
        while not shared.stop.is_set():
            try:
                pair, index, opening = shared.jobs.get_nowait()
            except queue.Empty:
                break
            white, black = (first, second) if index == 0 else (second, first)
            white.ensure_started()
            black.ensure_started()
            headers = {"Event": config.event, "Site": "?", "Date": datetime.date.today().strftime("%Y.%m.%d"),
                       "Round": f"{pair}.{index + 1}"}
            record = play_game(white, black, opening, config.limits, config.adjudication,
                               f"{id(shared)}:{pair}.{index}", headers)
            if shared.abort.is_set():
                break  # engines killed by Ctrl-C: not a real result
            record.pair, record.index = pair, index
            shared.reports.put(("game", record, _count(shared, record)))
    except MatchError as exc:
        shared.reports.put(("error", str(exc), ""))
    except Exception as exc:  # noqa: BLE001 - reported by the main thread, which ends the match
        shared.reports.put(("error", f"{type(exc).__name__}: {exc}", ""))
    finally:
        for player in players:
            with contextlib.suppress(Exception):
                player.close()
        shared.reports.put(("done", None, ""))


def run_match(config: MatchConfig, progress: TextIO | None = None) -> MatchResult:
    """Play the match; progress lines go to ``progress`` (stderr by default). MatchError if an engine cannot start.

    The first worker's engines are started before any game, so that a bad command or option fails at once.
    With an SPRT, no game starts after the decision; games already running are played out and counted.
    """
    progress = sys.stderr if progress is None else progress
    spec_a, spec_b = config.engines
    pairs = (max(1, config.games) + 1) // 2
    shared = _Shared(config, MatchResult(spec_a.name, spec_b.name, config.sprt), queue.Queue(), queue.Queue())
    rng = random.Random(config.seed)
    for pair, opening in enumerate(opening_schedule(config.openings, pairs, config.opening_order, rng), 1):
        shared.jobs.put((pair, 0, opening))
        shared.jobs.put((pair, 1, opening))

    all_players = [(Player(spec_a, config.show_engine_stderr), Player(spec_b, config.show_engine_stderr))
                   for _ in range(max(1, min(config.concurrency, 2 * pairs)))]
    try:
        for player in all_players[0]:
            player.ensure_started()
    except MatchError:
        for player in all_players[0]:
            player.close()
        raise
    progress.write(f"Started match{': ' + config.label if config.label else ''}: {spec_a.name} vs {spec_b.name}, "
                   f"{config.limits.describe()}, {config.games} games; openings {config.openings_source or '?'} "
                   f"({len(config.openings)}, {config.opening_order} order, seed {config.seed})\n")
    progress.flush()
    threads = [threading.Thread(target=_worker, args=(shared, players), name=f"match-worker-{i}", daemon=True)
               for i, players in enumerate(all_players)]
    for thread in threads:
        thread.start()
    running = len(threads)
    result = shared.result
    pgn_handle = open(config.pgn_path, "a", encoding="utf-8") if config.pgn_path else None  # noqa: SIM115
    try:
        while running:
            try:
                kind, payload, text = shared.reports.get(timeout=0.25)
            except queue.Empty:
                continue
            if kind == "done":
                running -= 1
            elif kind == "error":
                with shared.lock:
                    if result.stopped is None or result.stopped.startswith("SPRT"):
                        result.stopped = f"error: {payload}"
                shared.stop.set()
                progress.write(f"azengine match: error: {payload}; stopping the match\n")
                progress.flush()
            else:
                record: GameRecord = payload
                if pgn_handle is not None and record.pgn is not None:
                    pgn_handle.write(str(record.pgn) + "\n\n")
                    pgn_handle.flush()
                progress.write(text)
                progress.flush()
    except KeyboardInterrupt:
        shared.abort.set()
        shared.stop.set()
        result.stopped = "interrupted"
        for players in all_players:
            for player in players:
                player.kill()
        for thread in threads:
            thread.join(timeout=5.0)
    finally:
        if pgn_handle is not None:
            pgn_handle.close()
    return result


# ----- the command ---------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``azengine match``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Play games between two UCI engines (azengine configurations or any UCI engine) and report the Elo "
        "difference.\nEach opening is played twice with colours swapped.\n\nexample:\n"
        "  azengine match --engine \"name=fp32 cmd=azengine option.Backend=fp32\" \\\n"
        "    --engine \"name=int8 cmd=azengine option.Backend=static-int8\" \\\n"
        "    --each option.Threads=1 --tc 10+0.1 --games 200 --pgn fp32_vs_int8.pgn\n\n"
        "  azengine match --quantization model.pt model_static_quantized.pt --games 200")
    g = parser.add_argument_group("engines")
    g.add_argument("--engine", action="append", nargs="+", metavar="FIELD",
                   help="an engine (give it twice): name=NAME cmd=COMMAND [arg=ARG ...] [dir=DIR] [option.NAME=VALUE "
                   "...], as one quoted string or as separate words")
    g.add_argument("--each", action="append", nargs="+", default=[], metavar="FIELD",
                   help="fields applied to both engines, e.g. option.Threads=1 (an engine's own options win)")
    g.add_argument("--quantization", nargs=2, metavar=("FP32_MODEL", "INT8_MODEL"),
                   help="shortcut: azengine with WeightsFile=FP32_MODEL Backend=fp32 against WeightsFile=INT8_MODEL "
                   "(a TorchScript int8 .pt or an ONNX .onnx file), "
                   f"at equal nodes (--nodes, default {QUANT_DEFAULT_NODES}) and then at equal time (--tc, default "
                   f"{QUANT_DEFAULT_TC}), --games games each")
    g = parser.add_argument_group("limits")
    g.add_argument("--tc", help="time control base+inc in seconds, e.g. 10+0.1 (clocks kept by the runner)")
    g.add_argument("--nodes", type=int, help="nodes per move (equal nodes)")
    g.add_argument("--movetime", type=int, metavar="MS", help="milliseconds per move")
    g.add_argument("--timemargin", type=int, metavar="MS",
                   help="how far past its clock (or the move time) a move may come before it loses on time "
                   "(default 0 with --tc, 1000 with --movetime)")
    g.add_argument("--move-timeout", type=float, default=120.0, metavar="S",
                   help="with --nodes only: an engine silent this long loses on time and is restarted (default 120)")
    g = parser.add_argument_group("games and openings")
    g.add_argument("--games", type=int, default=100, help="number of games, rounded up to pairs (default 100)")
    g.add_argument("--concurrency", type=int, default=1, help="games played at once, each with its own engine "
                   "processes (default 1)")
    g.add_argument("--openings", help=f"EPD/FEN or PGN file of openings (default {ECO_PGN} when present, else the "
                   "small set shipped with azengine)")
    g.add_argument("--plies", type=int, default=16, help="book plies taken from each PGN opening line (default 16)")
    g.add_argument("--opening-order", choices=("random", "sequential"), default="random",
                   help="order of the openings (default random)")
    g.add_argument("--seed", type=int, help="seed of the random opening order (default: a random one, reported)")
    g = parser.add_argument_group("adjudication (off unless one of its options is given)")
    g.add_argument("--draw-movenumber", type=int, help="draw: not before this full move (default 40)")
    g.add_argument("--draw-movecount", type=int, help="draw: after this many consecutive moves of each side with "
                   "|score| <= --draw-score (default 8)")
    g.add_argument("--draw-score", type=int, help="draw: score bound in centipawns (default 10)")
    g.add_argument("--resign-movecount", type=int, help="resign: after this many consecutive moves of one side "
                   "with score <= -resign-score (default 4)")
    g.add_argument("--resign-score", type=int, help="resign: score bound in centipawns (default 1000)")
    g.add_argument("--max-plies", type=int, default=400, help="a game this long is a draw (default 400)")
    g = parser.add_argument_group("stopping and output")
    g.add_argument("--sprt", metavar="FIELDS", help="stop early by SPRT: \"elo0=0 elo1=10 alpha=0.05 beta=0.05\" "
                   "[model=trinomial|pentanomial]; --games is then the maximum")
    g.add_argument("--pgn", help="append every game to this PGN file")
    g.add_argument("--json", dest="json_out", help="write settings, results and the game list as JSON")
    g.add_argument("--event", default="azengine match", help="PGN Event tag (default 'azengine match')")
    g.add_argument("--show-engine-stderr", action="store_true", help="let the engines' stderr through")


def _check_output(path_text: str | None, option: str) -> Path | None:
    if not path_text:
        return None
    path = Path(path_text)
    if path.is_dir():
        raise MatchError(f"{option} {path}: is a folder, not a file name")
    if not path.parent.is_dir():
        raise MatchError(f"{option} {path}: folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise MatchError(f"{option} {path}: folder {path.parent} is not writable")
    return path


def _positive(value: int | float | None, option: str, minimum: int = 1) -> None:
    if value is not None and value < minimum:
        raise MatchError(f"{option} must be at least {minimum}, not {value}")


def _adjudication(args: argparse.Namespace) -> Adjudication:
    for option in ("draw_movenumber", "draw_movecount", "draw_score", "resign_movecount", "resign_score"):
        _positive(getattr(args, option), "--" + option.replace("_", "-"), 0)
    _positive(args.max_plies, "--max-plies")
    draw_on = any(v is not None for v in (args.draw_movenumber, args.draw_movecount, args.draw_score))
    resign_on = args.resign_movecount is not None or args.resign_score is not None

    def pick(value: int | None, default: int) -> int:
        return default if value is None else value

    return Adjudication(
        draw_movenumber=pick(args.draw_movenumber, 40), draw_movecount=pick(args.draw_movecount, 8) if draw_on else 0,
        draw_score=pick(args.draw_score, 10), resign_movecount=pick(args.resign_movecount, 4) if resign_on else 0,
        resign_score=pick(args.resign_score, 1000), max_plies=args.max_plies)


def _limits(args: argparse.Namespace, tc_text: str | None, nodes: int | None, movetime: int | None) -> Limits:
    tc = parse_tc(tc_text) if tc_text is not None else None
    _positive(nodes, "--nodes")
    _positive(movetime, "--movetime")
    _positive(args.timemargin, "--timemargin", 0)
    if args.move_timeout <= 0:
        raise MatchError(f"--move-timeout must be positive, not {args.move_timeout}")
    if tc is None and not nodes and not movetime:
        raise MatchError("give a limit: --tc base+inc, --nodes N or --movetime MS")
    return Limits(tc=tc, nodes=nodes, movetime_ms=movetime, timemargin_ms=args.timemargin,
                  move_timeout_s=args.move_timeout)


def _quantization_specs(args: argparse.Namespace, each: list[str]) -> tuple[EngineSpec, EngineSpec]:
    fp32_model, int8_model = (Path(p) for p in args.quantization)
    for path in (fp32_model, int8_model):
        if not path.is_file():
            raise MatchError(f"--quantization: model file not found: {path}")
    defaults = [] if any("option.threads=" in t.lower() for t in each) else ["option.Threads=1"]
    specs = []
    for name, model, backend in (("fp32", fp32_model, "fp32"), ("int8", int8_model, None)):
        spec = parse_engine_spec([f"name={name}", "cmd=azengine"], defaults + each)
        spec.options["WeightsFile"] = str(model.resolve())
        if backend:
            spec.options["Backend"] = backend
        specs.append(spec)
    return specs[0], specs[1]


def build_configs(args: argparse.Namespace) -> list[tuple[str, MatchConfig]]:
    """The match (or, with ``--quantization``, the two studies) that ``args`` ask for; MatchError if bad."""
    each = [token for tokens in args.each for token in tokens]
    if args.quantization:
        if args.engine:
            raise MatchError("--quantization chooses the engines itself; leave out --engine")
        if args.movetime is not None:
            raise MatchError("--quantization runs equal nodes and equal time; leave out --movetime")
        engines = _quantization_specs(args, each)
        studies = [(f"equal nodes ({args.nodes or QUANT_DEFAULT_NODES} nodes per move)",
                    _limits(args, None, args.nodes or QUANT_DEFAULT_NODES, None)),
                   (f"equal time (tc {args.tc or QUANT_DEFAULT_TC})",
                    _limits(args, args.tc or QUANT_DEFAULT_TC, None, None))]
    else:
        count = len(args.engine or [])
        if count != 2:
            raise MatchError(f"--engine must be given exactly twice (got {count}), e.g. "
                             "--engine \"name=a cmd=azengine\" --engine \"name=b cmd=stockfish\"")
        first = parse_engine_spec(args.engine[0], each, 1)
        second = parse_engine_spec(args.engine[1], each, 2)
        if first.name == second.name:
            first.name, second.name = f"{first.name}-1", f"{second.name}-2"
        engines = (first, second)
        studies = [("", _limits(args, args.tc, args.nodes, args.movetime))]
    _positive(args.games, "--games")
    _positive(args.concurrency, "--concurrency")
    _positive(args.plies, "--plies", 0)
    adjudication = _adjudication(args)
    sprt = None
    if args.sprt:
        try:
            sprt = elo.parse_sprt(args.sprt)
        except ValueError as exc:
            raise MatchError(f"bad --sprt: {exc}") from None
    pgn_path = _check_output(args.pgn, "--pgn")
    _check_output(args.json_out, "--json")
    source = Path(args.openings) if args.openings else default_openings_path()
    openings = load_openings(source, args.plies)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    configs = []
    for label, limits in studies:
        event = f"{args.event}: {label}" if label else args.event
        configs.append((label, MatchConfig(
            engines=engines, openings=openings, limits=limits, games=args.games, concurrency=args.concurrency,
            adjudication=adjudication, opening_order=args.opening_order, seed=seed, sprt=sprt, pgn_path=pgn_path,
            event=event, show_engine_stderr=args.show_engine_stderr, openings_source=str(source), label=label)))
    return configs


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to a temporary file beside ``path``, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _config_dict(config: MatchConfig) -> dict[str, Any]:
    limits, adj = config.limits, config.adjudication
    return {
        "engines": [{"name": s.name, "command": s.command, "options": s.options, "dir": s.cwd}
                    for s in config.engines],
        "limits": {"tc": str(limits.tc) if limits.tc else None, "nodes": limits.nodes,
                   "movetime_ms": limits.movetime_ms,
                   "timemargin_s": limits.margin_s() if limits.tc or limits.movetime_ms else None},
        "games": config.games, "concurrency": config.concurrency, "openings": config.openings_source,
        "opening_count": len(config.openings), "opening_order": config.opening_order, "seed": config.seed,
        "adjudication": dataclasses.asdict(adj), "pgn": str(config.pgn_path) if config.pgn_path else None,
    }


def run(args: argparse.Namespace) -> int:
    """Run the command: 0 when the games were played, 2 on bad input, 1 when an engine failed mid-match."""
    logging.getLogger("chess.engine").setLevel(logging.ERROR)  # not every "info string" line is a warning
    try:
        configs = build_configs(args)
    except MatchError as exc:
        sys.stderr.write(f"azengine match: error: {exc}\n")
        return 2
    studies: list[dict[str, Any]] = []
    code = 0
    try:
        for label, config in configs:
            result = run_match(config)
            if label:
                sys.stdout.write(f"== {label} ==\n")
            sys.stdout.write("\n".join(result.summary_lines()) + "\n")
            if result.stopped:
                sys.stdout.write(f"Match stopped early: {result.stopped}\n")
            sys.stdout.write("Finished match\n")
            sys.stdout.flush()
            studies.append({"study": label or None, "settings": _config_dict(config), "result": result.to_dict()})
            if result.stopped == "interrupted":
                code = 130
                break
            if result.stopped and result.stopped.startswith("error"):
                code = 1
    except MatchError as exc:
        sys.stderr.write(f"azengine match: error: {exc}\n")
        code = 2
    if args.json_out and studies:
        data = studies[0] if len(studies) == 1 and not studies[0]["study"] else {"studies": studies}
        try:
            _write_json(Path(args.json_out), data)
        except OSError as exc:
            sys.stderr.write(f"azengine match: error: {args.json_out}: cannot write ({exc.strerror or exc})\n")
            return code or 1
    return code
