"""Command order under a real client: every ``go`` gets exactly one legal ``bestmove``, whatever comes between.

The installed ``azengine`` with its bundled network runs tiny searches. A seeded random client sends
thousands of short command sequences with random gaps: ``position`` and ``go`` while a search runs,
double ``stop``, ``ucinewgame`` and ``ponderhit`` mid-search, ``isready`` anywhere and now and then
``quit``. After each sequence it sends ``stop`` and ``isready``; by ``readyok`` every ``go`` of the
sequence must have had its one ``bestmove``, legal in the position of that ``go``.
"""

from __future__ import annotations

import os
import random
import time

import chess
from uci_client import RawEngine

#: Sequences in one run (``AZ_ORDER_SEQUENCES`` overrides, e.g. for a longer local run).
SEQUENCES = int(os.environ.get("AZ_ORDER_SEQUENCES", "2000"))
LOAD_S = 120.0
ANSWER_S = 30.0  # safety bound on a loaded machine: no readyok by then is a hang
QUIT_S = 5.0

GOS = ["go nodes 1", "go nodes 0", "go nodes 3", "go nodes 8", "go nodes 20", "go movetime 5", "go movetime 20",
       "go depth 1", "go wtime 40 btime 40", "go wtime 300 btime 300 winc 10 binc 10 movestogo 5",
       "go infinite", "go ponder", "go nodes 5 searchmoves e2e4 d2d4 g1f3 b8c6", "go mate 1 nodes 10"]


def random_position(rng: random.Random) -> tuple[str, chess.Board]:
    """A ``position`` line and its board: startpos or a FEN, then some random legal moves."""
    if rng.random() < 0.7:
        board = chess.Board()
        head = "position startpos"
    else:
        board = chess.Board(rng.choice([
            "r1bq1rk1/pp2bppp/2n1pn2/3p4/2PP4/2N2N2/PP2BPPP/R2QKB1R w KQ - 0 9",
            "8/8/8/4k3/8/8/3K4/7R w - - 0 1",
            "r1bqkb1r/pppp1ppp/2n2n2/4p2Q/2B1P3/8/PPPP1PPP/RNB1K1NR w KQkq - 4 4",
            "6k1/5ppp/8/8/8/8/5PPP/3R2K1 w - - 0 1",  # back-rank mate in 1
            "7k/5Q2/6K1/8/8/8/8/8 b - - 0 1",  # black is stalemated: bestmove 0000
        ]))
        head = f"position fen {board.fen()}"
    moves = []
    for _ in range(rng.randrange(0, 12)):
        legal = list(board.legal_moves)
        if not legal:
            break
        move = rng.choice(legal)
        board.push(move)
        moves.append(move.uci())
    return (f"{head} moves {' '.join(moves)}" if moves else head), board


class Checker:
    """Sends commands and matches each ``bestmove`` to its ``go`` (in order)."""

    def __init__(self) -> None:
        self.engine = RawEngine()
        self.engine.handshake(LOAD_S)
        self.board = chess.Board()  # the position the next go searches
        self.waiting: list[tuple[str, chess.Board]] = []  # gos without their bestmove yet
        self.gos = 0
        self.bestmoves = 0
        self.readies = 0  # isready sent, readyok not yet read

    def send(self, line: str) -> None:
        if line.startswith("go"):
            self.waiting.append((line, self.board.copy()))
            self.gos += 1
        elif line == "isready":
            self.readies += 1
        self.engine.send(line)

    def collect(self, timeout: float) -> None:
        """Read lines up to the readyok of the last isready sent; check each bestmove against its go."""
        deadline = time.monotonic() + timeout
        while self.readies:
            left = deadline - time.monotonic()
            assert left > 0, f"no readyok within {timeout} s (hang); waiting gos: {self.waiting[:3]}"
            _, line = self.engine.read_line(left)
            if line.startswith("bestmove"):
                assert self.waiting, f"a bestmove without a go: {line}; last lines {self.engine.seen[-12:]}"
                go, board = self.waiting.pop(0)
                self.bestmoves += 1
                words = line.split()
                if not any(board.legal_moves):
                    assert words[1] == "0000", (go, board.fen(), line)
                else:
                    assert chess.Move.from_uci(words[1]) in board.legal_moves, (go, board.fen(), line)
            elif line == "readyok":
                self.readies -= 1
            else:
                assert line.split()[0] in ("info", "readyok"), line


def test_every_go_gets_one_legal_bestmove_in_random_command_sequences() -> None:
    rng = random.Random(2929)
    checker = Checker()
    quits = 0
    try:
        for _ in range(SEQUENCES):
            for _ in range(rng.randrange(1, 7)):
                roll = rng.random()
                if roll < 0.25:
                    line, board = random_position(rng)
                    checker.send(line)
                    checker.board = board
                elif roll < 0.60:
                    checker.send(rng.choice(GOS))
                elif roll < 0.72:
                    checker.send("stop")
                    if rng.random() < 0.5:
                        checker.send("stop")  # double stop
                elif roll < 0.80:
                    checker.send("ucinewgame")
                    checker.board = chess.Board()
                elif roll < 0.87:
                    checker.send("ponderhit")
                elif roll < 0.95:
                    checker.send("isready")
                elif roll < 0.998 or quits >= 3:
                    checker.send("setoption name MultiPV value " + rng.choice(["1", "2"]))
                else:  # quit anywhere: the engine exits promptly; the next sequences run in a new one
                    checker.send("quit")
                    checker.engine.proc.wait(timeout=QUIT_S)
                    checker.engine.close()
                    checker.waiting.clear()
                    checker.readies = 0
                    quits += 1
                    checker.engine = RawEngine()
                    checker.engine.handshake(LOAD_S)
                    checker.board = chess.Board()
                if rng.random() < 0.3:
                    time.sleep(rng.random() * 0.01)
            checker.send("stop")
            checker.send("isready")
            checker.collect(ANSWER_S)
            assert not checker.waiting, f"gos without bestmove after stop + isready: {checker.waiting}"
        assert checker.engine.bad_stdout_lines() == []
    finally:
        checker.engine.close()
    print(f"{SEQUENCES} sequences, {checker.gos} go, {checker.bestmoves} bestmove, {quits} quit")
    assert checker.gos > SEQUENCES


def test_go_and_position_during_a_search_that_ends_by_itself() -> None:
    """The issue's case: before a nodes search's bestmove, position + go infinite, then stop: two bestmoves."""
    with RawEngine() as eng:
        eng.handshake(LOAD_S)
        for _ in range(3):
            eng.send("position startpos", "go nodes 400", "position startpos moves e2e4", "go infinite")
            _, first, _ = eng.wait_for("bestmove", ANSWER_S)
            assert chess.Move.from_uci(first.split()[1]) in chess.Board().legal_moves
            time.sleep(0.2)
            eng.send("stop")
            _, second, _ = eng.wait_for("bestmove", ANSWER_S)
            after = chess.Board()
            after.push_uci("e2e4")
            assert chess.Move.from_uci(second.split()[1]) in after.legal_moves


def test_go_during_infinite_waits_for_stop() -> None:
    with RawEngine() as eng:
        eng.handshake(LOAD_S)
        eng.send("position startpos", "go infinite", "position startpos moves d2d4", "go nodes 5")
        lines = eng.drain(0.5)
        assert not any(line.startswith("bestmove") for line in lines), lines
        assert any(line.startswith("info string") and "after stop" in line for line in lines), lines
        eng.send("stop")
        _, first, _ = eng.wait_for("bestmove", ANSWER_S)
        _, second, _ = eng.wait_for("bestmove", ANSWER_S)
        assert chess.Move.from_uci(first.split()[1]) in chess.Board().legal_moves
        assert chess.Move.from_uci(second.split()[1]) in chess.Board("rnbqkbnr/pppppppp/8/8/3P4/8/PPP1PPPP/RNBQKBNR "
                                                                     "b KQkq - 0 1").legal_moves
