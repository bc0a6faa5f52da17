"""Shared pieces of the benchmark scripts: random networks, real positions, timing, machine load."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable

import chess
import chess.engine
import torch
from torch import nn

from engine import AlphaZeroNet
from engine.bundled import data_path
from engine.positions import read_fens


def parse_net(spec: str) -> tuple[int, int]:
    """``"10x128"`` -> ``(10, 128)`` (residual blocks x filters)."""
    blocks, filters = spec.lower().split("x")
    return int(blocks), int(filters)


def random_net(blocks: int, filters: int, seed: int = 0) -> AlphaZeroNet:
    """An eval-mode random network with non-trivial batch-norm statistics (so folding does real work)."""
    torch.manual_seed(seed)
    return randomize_batchnorm(AlphaZeroNet(blocks, filters).eval())


def randomize_batchnorm(net: nn.Module) -> nn.Module:
    """``net`` with its batch-norm statistics and affine parameters moved away from the identity."""
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.8, 1.2)
                module.bias.uniform_(-0.1, 0.1)
    return net


def real_boards(limit: int | None = None) -> list[chess.Board]:
    """Positions from real games shipped with the engine (held-out set first, then calibration set)."""
    boards = read_fens(data_path("heldout.fen")) + read_fens(data_path("calibration.fen"))
    return boards[:limit] if limit else boards


def median_rate(run: Callable[[], int], reps: int, min_time_s: float, warmup: int = 2) -> float:
    """Median over ``reps`` repetitions of items/s, where ``run()`` does some work and returns its item count.

    Each repetition calls ``run`` until at least ``min_time_s`` has passed; ``warmup`` calls come first.
    """
    for _ in range(warmup):
        run()
    rates = []
    for _ in range(reps):
        items = 0
        start = time.perf_counter()
        while True:
            items += run()
            elapsed = time.perf_counter() - start
            if elapsed >= min_time_s:
                break
        rates.append(items / elapsed)
    return statistics.median(rates)


def machine_load() -> str:
    """One line on the machine's load, with a warning when it is busy."""
    try:
        load1, load5, load15 = os.getloadavg()
    except OSError:
        return "load average: unknown"
    cores = os.cpu_count() or 1
    line = f"load average {load1:.2f} {load5:.2f} {load15:.2f} on {cores} cores"
    if load1 > 0.5 * cores:
        line += "  -- WARNING: the machine is busy, timings are not meaningful"
    return line


def header(title: str) -> None:
    """Print what ran where: title, torch version, quantized engine, load."""
    print(f"# {title}")
    print(f"# torch {torch.__version__}, quantized engine {torch.backends.quantized.engine}, "
          f"python {sys.version.split()[0]}")
    print(f"# {machine_load()}")


def searched_moves(options: dict[str, str], boards: list[chess.Board], nodes: int,
                   command: str = "azengine") -> list[chess.Move]:
    """The UCI engine's best move after a ``nodes``-node search of each position: one thread, ``options``
    on top, ``ucinewgame`` before each position (no tree or cache carried over)."""
    moves = []
    with chess.engine.SimpleEngine.popen_uci([command]) as engine:
        engine.configure({"Threads": 1, **options})
        for board in boards:
            moves.append(engine.play(board, chess.engine.Limit(nodes=nodes), game=object()).move)
    return moves
