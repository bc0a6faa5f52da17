"""How long ``go`` takes to bring ``bestmove`` at a near-empty clock: the pauses a fast game can lose on time.

    python -m benchmarks.move_latency --moves 3000 --clock-ms 130 --engines 2
    python -m benchmarks.move_latency --quick                                  # a few seconds

Each engine process plays games against itself, every move ``go wtime C btime C winc 10 binc 10``, so
it plans a few milliseconds (``search/timeman.py``) and every longer answer is a pause: a garbage
collection, the background load of the faster form, the operating system. ``--engines 2`` runs two
such processes at once, as a two-game match does. Prints, per engine, the median and the slowest
answers with the second of the run they came in (the first seconds hold the network's loads).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time

import chess

from benchmarks.soak import engine_words

#: Plies after which a self-play game is started afresh.
MAX_PLIES = 200


def play(engine: list[str], moves: int, clock_ms: int, inc_ms: int) -> list[tuple[float, float, int]]:
    """``moves`` searches at a ``clock_ms`` clock: (milliseconds go -> bestmove, seconds into the run, ply)."""
    proc = subprocess.Popen(engine, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, bufsize=1)
    assert proc.stdin is not None and proc.stdout is not None

    def send(line: str) -> None:
        proc.stdin.write(line + "\n")
        proc.stdin.flush()

    def wait_for(word: str) -> str:
        for line in proc.stdout:
            if line.split()[:1] == [word]:
                return line
        raise RuntimeError(f"the engine exited before {word!r}")

    send("uci")
    wait_for("uciok")
    send("isready")
    wait_for("readyok")
    board = chess.Board()
    start = time.monotonic()
    answers = []
    for _ in range(moves):
        if board.is_game_over() or board.ply() >= MAX_PLIES:
            board = chess.Board()
            send("ucinewgame")
        played = " ".join(move.uci() for move in board.move_stack)
        send(f"position startpos moves {played}" if played else "position startpos")
        sent = time.monotonic()
        send(f"go wtime {clock_ms} btime {clock_ms} winc {inc_ms} binc {inc_ms}")
        best = wait_for("bestmove")
        answers.append(((time.monotonic() - sent) * 1000.0, sent - start, board.ply()))
        board.push_uci(best.split()[1])
    send("quit")
    proc.wait(timeout=30)
    return answers


def main(argv: list[str] | None = None) -> int:
    """Run the engines side by side and print each one's median and slowest answers."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: 30 moves, one engine")
    parser.add_argument("--engine", help="engine command (default: azengine on PATH)")
    parser.add_argument("--moves", type=int, default=3000, help="searches per engine")
    parser.add_argument("--clock-ms", type=int, default=130, help="wtime and btime of every go")
    parser.add_argument("--inc-ms", type=int, default=10, help="winc and binc of every go")
    parser.add_argument("--engines", type=int, default=2, help="engine processes at once")
    parser.add_argument("--slowest", type=int, default=5, help="slowest answers listed per engine")
    args = parser.parse_args(argv)
    if args.quick:
        args.moves, args.engines = 30, 1
    engine = engine_words(args.engine)
    results: list[list[tuple[float, float, int]]] = [[] for _ in range(args.engines)]

    def run(index: int) -> None:
        results[index] = play(engine, args.moves, args.clock_ms, args.inc_ms)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(args.engines)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, answers in enumerate(results):
        median = statistics.median(ms for ms, _, _ in answers)
        print(f"engine {index + 1}: {len(answers)} moves, go -> bestmove median {median:.1f} ms; slowest:")
        for ms, at, ply in sorted(answers, reverse=True)[:args.slowest]:
            print(f"  {ms:7.1f} ms at {at:6.1f} s (ply {ply})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
