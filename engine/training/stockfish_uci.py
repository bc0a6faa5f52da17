"""A lean UCI driver for labelling positions with Stockfish's MultiPV analysis.

python-chess's ``SimpleEngine.analyse`` parses every ``info`` line in full, checking each move of every
principal variation on a board, through an asyncio thread: at the generator's 3,000 nodes with MultiPV 4
that costs about as much CPU as Stockfish's own search. This driver writes the UCI commands to the pipe itself
and reads back only what a label needs from the lines it keeps: for each MultiPV slot the latest score,
WDL and first move. It returns the same ``InfoDict`` keys python-chess does (``multipv``, ``score``,
``wdl``, ``pv`` with the first move only), so the labelling code takes either.
"""

from __future__ import annotations

import subprocess
from types import TracebackType

import chess
import chess.engine


class UciError(RuntimeError):
    """The engine process ended or answered something a UCI engine should not."""


def parse_info(line: str, turn: chess.Color) -> chess.engine.InfoDict | None:
    """The ``multipv``, ``score``, ``wdl`` and first ``pv`` move of one ``info`` line; None for lines
    without a score and a principal variation (``currmove`` lines, ``info string``)."""
    tokens = line.split()
    info: chess.engine.InfoDict = {"multipv": 1}
    i = 1
    while i < len(tokens):
        key = tokens[i]
        if key == "multipv":
            info["multipv"] = int(tokens[i + 1])
            i += 2
        elif key == "score":
            kind, value = tokens[i + 1], int(tokens[i + 2])
            relative = chess.engine.Cp(value) if kind == "cp" else chess.engine.Mate(value)
            info["score"] = chess.engine.PovScore(relative, turn)
            i += 3
            while i < len(tokens) and tokens[i] in ("lowerbound", "upperbound"):
                i += 1
        elif key == "wdl":
            wins, draws, losses = (int(t) for t in tokens[i + 1 : i + 4])
            info["wdl"] = chess.engine.PovWdl(chess.engine.Wdl(wins, draws, losses), turn)
            i += 4
        elif key == "pv":
            if i + 1 < len(tokens):
                info["pv"] = [chess.Move.from_uci(tokens[i + 1])]
            break  # the principal variation runs to the end of the line
        elif key == "string":
            return None
        else:
            i += 1
    if "score" not in info or "pv" not in info:
        return None
    return info


class StockfishLabeller:
    """One Stockfish process answering ``go nodes N`` with MultiPV over raw UCI lines.

    Use as a context manager; :meth:`new_game` before each game (``ucinewgame``), :meth:`analyse` for
    each position, given as the board with its move stack from the standard start position.
    """

    def __init__(self, path: str, hash_mb: int, multipv: int) -> None:
        self._proc = subprocess.Popen(
            [path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
        )
        self._send("uci")
        self._read_until("uciok")
        for name, value in (("Threads", 1), ("Hash", hash_mb), ("UCI_ShowWDL", "true"), ("MultiPV", multipv)):
            self._send(f"setoption name {name} value {value}")
        self._sync()

    def __enter__(self) -> StockfishLabeller:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Ask the engine to quit; kill it if it does not within a few seconds."""
        if self._proc.poll() is None:
            try:
                self._send("quit")
                self._proc.wait(timeout=5)
            except (UciError, OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()

    def new_game(self) -> None:
        """Tell the engine a new game starts (it clears its hash table)."""
        self._send("ucinewgame")
        self._sync()

    def analyse(self, board: chess.Board, nodes: int) -> list[chess.engine.InfoDict]:
        """The engine's final line for each MultiPV slot after a ``nodes``-node search of ``board``,
        best first."""
        moves = " ".join(move.uci() for move in board.move_stack)
        start = board.root().fen()
        root = "startpos" if start == chess.STARTING_FEN else f"fen {start}"
        self._send(f"position {root}" + (f" moves {moves}" if moves else ""))
        self._send(f"go nodes {nodes}")
        latest: dict[int, chess.engine.InfoDict] = {}
        while True:
            line = self._readline()
            if line.startswith("bestmove"):
                break
            if line.startswith("info") and (info := parse_info(line, board.turn)) is not None:
                latest[info["multipv"]] = info
        return [latest[k] for k in sorted(latest)]

    def _send(self, command: str) -> None:
        if self._proc.stdin is None or self._proc.poll() is not None:
            raise UciError("the engine process has ended")
        try:
            self._proc.stdin.write(command + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError as exc:
            raise UciError("the engine process has ended") from exc

    def _readline(self) -> str:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise UciError(f"the engine process ended (exit code {self._proc.wait()})")
        return line

    def _read_until(self, token: str) -> None:
        while not self._readline().startswith(token):
            pass

    def _sync(self) -> None:
        self._send("isready")
        self._read_until("readyok")
