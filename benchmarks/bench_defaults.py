"""Engine nodes/s of the real ``azengine`` per Backend and Threads, alone and with a second engine beside it.

Chooses the defaults of ``Backend=auto`` (for the bundled network) and ``Threads``: each configuration is
a UCI engine process driven by python-chess, searching fixed middlegames with ``go nodes N`` from a fresh
tree (``ucinewgame`` before each search). ``alone``: one engine searches, the others wait. ``pair``: two
engines of the same configuration search at the same moment, as in a match at concurrency 2 (or a GUI
match of two engines on one machine); their nodes/s are averaged. Configurations take turns, round after
round, so that a change in the machine's load touches them alike. ``default`` sets no option: what the
engine does out of the box (on this CPU: ``engine.cpu``); ``old`` is ``Backend=static-int8, Threads=1`` (the
defaults before they depended on the CPU).

    python -m benchmarks.bench_defaults [--nodes 20000 --rounds 3 --configs default,old,onnx-int8:1,...]
    python -m benchmarks.bench_defaults --quick      # seconds: 300 nodes, one position, one round
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import threading
import time

import chess
import chess.engine

from benchmarks.bench_startup import BACKGROUND_LOAD, SWITCH_TIMEOUT_S, SWITCHED
from benchmarks.common import machine_load
from engine.cpu import cpu_kind, default_threads
from engine.loader import bundled_backend

FENS = (
    "r1bq1rk1/pp2bppp/2n1pn2/3p4/2PP4/2N2N2/PP2BPPP/R1BQ1RK1 w - - 0 9",
    "r2q1rk1/pb1nbppp/1p2pn2/2pp4/3P4/1P1BPN2/PBPN1PPP/R2Q1RK1 w - - 2 10",
    "2r2rk1/pp1bqppp/2n1pn2/3p4/3P4/2PB1N2/PP1NQPPP/R4RK1 w - - 4 14",
)
CONFIGS = "default,old,static-int8:2,onnx-int8:1,onnx-int8:2,onnx-fp32:1,onnx-fp32:2"


def engine_options(config: str) -> dict[str, str]:
    """The UCI options of a configuration name: ``default``, ``old`` or ``<backend>:<threads>``."""
    if config == "default":
        return {}
    if config == "old":
        return {"Backend": "static-int8", "Threads": "1"}
    backend, threads = config.split(":")
    return {"Backend": backend, "Threads": threads}


def engine_command() -> list[str]:
    """The ``azengine`` on PATH, else this interpreter running the package."""
    found = shutil.which("azengine")
    return [found] if found else [sys.executable, "-m", "uci"]


class EngineWords(logging.Handler):
    """Keeps the engine lines python-chess logs as unexpected (the info strings outside a search)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def open_engine(config: str) -> chess.engine.SimpleEngine:
    """A started engine with the configuration's options set and its network loaded, also one loading in the
    background (``Backend=auto`` where the bundled network's best form needs torch: until it switched)."""
    words, logger = EngineWords(), logging.getLogger("chess.engine")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(words)
    logger.setLevel(logging.WARNING)
    logger.propagate = False  # kept here, not printed
    try:
        engine = chess.engine.SimpleEngine.popen_uci(engine_command(), stderr=None, timeout=120)
        engine.configure(engine_options(config))
        engine.ping()  # isready: the network loads now, not inside the first timed search
        deadline = time.monotonic() + SWITCH_TIMEOUT_S
        while any(BACKGROUND_LOAD in line for line in words.lines) and time.monotonic() < deadline:
            if any(word in line for line in words.lines for word in SWITCHED):
                break
            time.sleep(0.2)
            engine.ping()  # the switch comes between searches: at isready
    finally:
        logger.removeHandler(words)
        logger.setLevel(level)
        logger.propagate = propagate
    return engine


def search_nps(engine: chess.engine.SimpleEngine, fen: str, nodes: int) -> float:
    """Nodes/s of one fresh search (``ucinewgame`` first), from the engine's own last ``info``."""
    info = engine.analyse(chess.Board(fen), chess.engine.Limit(nodes=nodes), game=object())
    return float(info["nodes"]) / max(float(info["time"]), 1e-3)


def pair_nps(engines: tuple[chess.engine.SimpleEngine, chess.engine.SimpleEngine], fen: str, nodes: int) -> float:
    """Mean nodes/s of two engines searching the same position at the same moment."""
    rates: list[float] = [0.0, 0.0]

    def run(i: int) -> None:
        rates[i] = search_nps(engines[i], fen, nodes)

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statistics.mean(rates)


def spread(values: list[float]) -> str:
    """``median (min-max)`` of nodes/s."""
    return f"{statistics.median(values):7.0f} ({min(values):.0f}-{max(values):.0f})"


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, measure and print the table and the default-vs-old ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20000, help="nodes per search (default 20000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every configuration (default 3)")
    parser.add_argument("--configs", default=CONFIGS,
                        help=f"comma-separated: default, old, <backend>:<threads> (default {CONFIGS})")
    parser.add_argument("--modes", default="alone,pair", help="alone, pair or both (default both)")
    parser.add_argument("--quick", action="store_true",
                        help="a run of seconds that checks the benchmark works: default and old, 300 nodes, "
                             "one position, one round, both modes")
    args = parser.parse_args(argv)
    logging.getLogger("chess.engine").setLevel(logging.ERROR)  # the engines' info strings on loading
    fens = FENS
    if args.quick:
        args.nodes, args.rounds, args.configs, fens = 300, 1, "default,old", FENS[:1]
    configs = args.configs.split(",")
    modes = args.modes.split(",")
    print("# azengine defaults benchmark: engine nodes/s per Backend and Threads, alone and in pairs")
    print(f"# cpu kind {cpu_kind()}: default Backend auto = {bundled_backend()}, Threads {default_threads()}")
    print(f"# {os.cpu_count()} cores, {args.nodes} nodes x {len(fens)} positions x "
          f"{args.rounds} rounds; ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '(unset)')}")
    print(f"# {machine_load()}")
    rates: dict[tuple[str, str], list[float]] = {(c, m): [] for c in configs for m in modes}
    engines = {c: [open_engine(c) for _ in range(2 if "pair" in modes else 1)] for c in configs}
    started = time.monotonic()
    try:
        for round_ in range(1, args.rounds + 1):
            for number, fen in enumerate(fens, 1):
                for config in configs:
                    for mode in modes:
                        nps = (search_nps(engines[config][0], fen, args.nodes) if mode == "alone"
                               else pair_nps((engines[config][0], engines[config][1]), fen, args.nodes))
                        rates[config, mode].append(nps)
                        print(f"#   round {round_} position {number} {config:14s} {mode:5s} {nps:7.0f} nodes/s",
                              flush=True)
    finally:
        for pair in engines.values():
            for e in pair:
                e.quit()
    print(f"# {machine_load()}, {time.monotonic() - started:.0f} s")
    print(f"{'config':16s} " + " ".join(f"{m + ' nodes/s (min-max)':>26s}" for m in modes))
    for config in configs:
        print(f"{config:16s} " + " ".join(f"{spread(rates[config, m]):>26s}" for m in modes))
    if "default" in configs and "old" in configs:
        for mode in modes:
            ratios = [d / o for d, o in zip(rates["default", mode], rates["old", mode], strict=True)]
            print(f"default / old {mode}: {statistics.median(ratios):.2f}x "
                  f"(per search {min(ratios):.2f}-{max(ratios):.2f}x)")


if __name__ == "__main__":
    main()
