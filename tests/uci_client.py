"""A raw UCI client for tests: start ``azengine``, write lines, read lines with timeouts.

A reader thread puts every stdout line (with its arrival time) on a queue, so a test can measure
how long the engine took to answer and check that nothing but protocol lines reached stdout.
"""

from __future__ import annotations

import queue
import random
import shutil
import subprocess
import sys
import threading
import time

import chess

#: First words of the lines an engine may send (UCI: id, option, uciok, readyok, info, bestmove, ...).
UCI_KEYWORDS = ("id", "option", "uciok", "readyok", "info", "bestmove", "copyprotection", "registration")


def engine_command() -> list[str]:
    """The installed ``azengine`` console script, else the same thing through this Python."""
    exe = shutil.which("azengine")
    if exe:
        return [exe]
    return [sys.executable, "-c", "import sys; from uci.cli import main; sys.exit(main())"]


def long_game(plies: int = 300) -> chess.Board:
    """A game of random legal moves (seeded) that is not over after ``plies`` plies."""
    for seed in range(1000):
        rng = random.Random(seed)
        board = chess.Board()
        while board.ply() < plies and not board.is_game_over():
            board.push(rng.choice(sorted(board.legal_moves, key=chess.Move.uci)))
        if board.ply() == plies and not board.is_game_over():
            return board
    raise AssertionError(f"no random game of {plies} plies found")


class RawEngine:
    """``azengine`` in a subprocess, spoken to line by line."""

    def __init__(self, command: list[str] | None = None) -> None:
        self.proc = subprocess.Popen(command or engine_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, bufsize=0)
        self.lines: queue.Queue[tuple[float, str | None]] = queue.Queue()
        self.seen: list[str] = []  # every stdout line, in order
        self.stderr: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._read_err, daemon=True)
        self._err_reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            self.seen.append(line)
            self.lines.put((time.monotonic(), line))
        self.lines.put((time.monotonic(), None))  # end of output

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            self.stderr.append(raw)

    # ----- writing ---------------------------------------------------------------------------

    def send_bytes(self, data: bytes) -> float:
        """Write raw bytes; returns the time just after they were flushed."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()
        return time.monotonic()

    def send(self, *lines: str) -> float:
        """Write the lines (each with a newline) in one go; returns the time just after."""
        return self.send_bytes("".join(line + "\n" for line in lines).encode())

    # ----- reading ---------------------------------------------------------------------------

    def read_line(self, timeout: float) -> tuple[float, str]:
        """The next line and its arrival time; AssertionError on timeout or end of output."""
        try:
            at, line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line from the engine within {timeout} s; seen so far: {self.seen[-10:]}") \
                from None
        if line is None:
            raise AssertionError(f"the engine closed stdout; stderr: {b''.join(self.stderr)[-2000:]!r}")
        return at, line

    def wait_for(self, prefix: str, timeout: float) -> tuple[float, str, list[str]]:
        """Read until a line starting with ``prefix``; returns its arrival time, the line and the lines before."""
        deadline = time.monotonic() + timeout
        before: list[str] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {prefix!r} within {timeout} s; lines before: {before[-10:]}")
            at, line = self.read_line(left)
            if line == prefix or line.startswith(prefix + " "):
                return at, line, before
            before.append(line)

    def drain(self, seconds: float) -> list[str]:
        """All lines that arrive within ``seconds``."""
        deadline = time.monotonic() + seconds
        out = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                _, line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            out.append(line)
        return out

    def handshake(self, timeout: float = 60.0) -> list[str]:
        """``uci`` ... ``uciok``, then ``isready`` ... ``readyok`` (the network is loaded after it)."""
        self.send("uci")
        _, _, before = self.wait_for("uciok", timeout)
        self.isready(timeout)
        return before

    def isready(self, timeout: float = 60.0) -> list[str]:
        """Send ``isready`` and wait for ``readyok``; returns the lines before it."""
        self.send("isready")
        return self.wait_for("readyok", timeout)[2]

    def bad_stdout_lines(self) -> list[str]:
        """Stdout lines so far that are not UCI protocol lines."""
        return [line for line in self.seen if not line.split() or line.split()[0] not in UCI_KEYWORDS]

    def close(self) -> None:
        """``quit``, then make sure the process is gone."""
        if self.proc.poll() is None:
            try:
                self.send("quit")
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    def __enter__(self) -> RawEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
