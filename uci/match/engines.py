"""The engines of a match: specs (``name=... cmd=... option.X=...``), starting them, and one engine per worker.

Each engine is ``azengine`` in some configuration or any UCI engine, driven through python-chess's
:class:`chess.engine.SimpleEngine`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import chess
import chess.engine

from .errors import MatchError

SPEC_KEYS = ("name", "cmd", "dir", "arg", "proto")
STARTUP_TIMEOUT_S = 60.0  # uci/uciok, setoption, isready (azengine loads its network on the first isready)
QUIT_TIMEOUT_S = 5.0  # after "quit", how long before the process is killed
# what a python-chess call raises when it times out (three distinct classes before Python 3.11)
TIMEOUTS: tuple[type[BaseException], ...] = (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError)

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


def start_engine(spec: EngineSpec, show_stderr: bool = False, chess960: bool = False) -> chess.engine.SimpleEngine:
    """Start the engine, set its options and wait for ``readyok``; MatchError if any of that fails.

    With ``chess960`` the engine must announce ``UCI_Chess960``; python-chess then sets it to true before it
    sends each Chess960 position (as a Shredder-FEN).
    """
    popen_args: dict[str, Any] = {} if show_stderr else {"stderr": subprocess.DEVNULL}
    try:
        engine = chess.engine.SimpleEngine.popen_uci(spec.command, timeout=STARTUP_TIMEOUT_S, cwd=spec.cwd,
                                                     **popen_args)
    except (OSError, chess.engine.EngineError, *TIMEOUTS) as exc:
        reason = "no uciok in time" if isinstance(exc, TIMEOUTS) else str(exc) or type(exc).__name__
        raise MatchError(f"engine {spec.name}: cannot start {shlex.join(spec.command)}: {reason}") from None
    try:
        if chess960 and "UCI_Chess960" not in engine.options:
            raise chess.engine.EngineError("engine has no option UCI_Chess960, which --variant chess960 needs")
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

    def __init__(self, spec: EngineSpec, show_stderr: bool = False, chess960: bool = False) -> None:
        self.spec = spec
        self.show_stderr = show_stderr
        self.chess960 = chess960
        self.engine: chess.engine.SimpleEngine | None = None
        self.starts = 0

    def ensure_started(self) -> None:
        """Start the engine if it is not running (first game, or it crashed or was killed)."""
        if self.engine is not None and not self.engine.returncode.done():
            return
        self.close()
        self.engine = start_engine(self.spec, self.show_stderr, self.chess960)
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
