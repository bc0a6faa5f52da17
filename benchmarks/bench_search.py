"""Speed of the search: tree-only playouts/s, and engine NPS next to the evaluator's raw throughput.

    python -m benchmarks.bench_search            # full run
    python -m benchmarks.bench_search --quick    # seconds: 2 positions, few playouts, a 2x32 network

(a) The tree alone: :class:`engine.UniformEvaluator` (no network), so the number is what the Cython tree,
    its C move generator and the batching cost per playout.
(b) The engine: a random network (``--net``, default 10x128) in fp32 and static int8 (as ``load_model`` builds them) at
    minibatch 32 and 64. Printed beside the NPS: the same evaluator's raw positions/s on batches of that
    size, and NPS / raw. A ratio near 1 means the network is the bottleneck and the tree work hides
    behind it; cache hits and terminal positions can push the ratio above 1.
Searches start from fresh trees on a few real positions; each number is the median over them. Only
a quiet machine gives meaningful numbers: the load average is printed first.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import chess
import numpy as np
import torch

from benchmarks.common import header, median_rate, parse_net, random_net, real_boards
from engine import UniformEvaluator, encode_batch, load_model
from engine.backends.torch_backend import set_torch_threads
from search import Limits, Searcher, SearchParams

OPENING_AND_MIDDLEGAME = [
    chess.STARTING_FEN,
    "r1bqkb1r/pppp1ppp/2n2n2/4p3/2B1P3/5N2/PPPP1PPP/RNBQK2R w KQkq - 4 4",
    "r2q1rk1/pp2bppp/2n1pn2/3p4/2PP4/2N1PN2/PP3PPP/R2QKB1R w KQ - 0 9",
]


def positions(count: int) -> list[chess.Board]:
    """A few opening/middlegame positions plus real positions from the shipped held-out set."""
    boards = [chess.Board(fen) for fen in OPENING_AND_MIDDLEGAME]
    return (boards + real_boards(count))[:count]


def search_nps(evaluator, boards: list[chess.Board], nodes: int, minibatch: int) -> tuple[float, float]:
    """Median playouts/s over ``boards`` (fresh tree each) and the mean cache-hit share."""
    rates, hits = [], []
    searcher = Searcher(evaluator, SearchParams(minibatch_size=minibatch, smart_pruning_factor=0.0))
    searcher.search(boards[0], Limits(nodes=min(nodes, 200)))  # warm-up
    for board in boards:
        searcher.new_game()
        before = searcher.runner.cache_hits
        start = time.perf_counter()
        result = searcher.search(board, Limits(nodes=nodes))
        elapsed = time.perf_counter() - start
        rates.append(result.info.nodes / elapsed)
        hits.append((searcher.runner.cache_hits - before) / max(1, result.info.nodes))
    searcher.close()
    return statistics.median(rates), statistics.mean(hits)


def bench_tree(boards: list[chess.Board], nodes: int) -> None:
    """(a) playouts/s of the tree with the uniform evaluator at a few minibatch sizes."""
    print("(a) tree only (UniformEvaluator)")
    print(f"{'minibatch':>10} {'playouts/s':>12} {'cache hits':>11}")
    for minibatch in (1, 32, 64):
        rate, hits = search_nps(UniformEvaluator(), boards, nodes, minibatch)
        print(f"{minibatch:>10} {rate:>12,.0f} {hits:>10.1%}", flush=True)


def bench_engine(boards: list[chess.Board], net: str, nodes: int, reps: int, min_time: float) -> None:
    """(b) NPS of a random ``net`` (``BLOCKSxFILTERS``) search beside the evaluator's raw batched throughput."""
    print(f"(b) {net} random network: search NPS vs raw evaluator throughput at the same batch size")
    print(f"{'backend':>12} {'minibatch':>10} {'search NPS':>11} {'raw pos/s':>10} {'NPS/raw':>8} {'cache hits':>11}")
    pool = encode_batch(real_boards(256))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"random_{net}.pt"
        torch.save(random_net(*parse_net(net)).state_dict(), path)
        for backend in ("fp32", "static-int8"):
            evaluator = load_model(path, backend=backend)
            for minibatch in (32, 64):
                planes = np.ascontiguousarray(pool[:minibatch])

                def run(ev=evaluator, x=planes) -> int:
                    ev.evaluate(x)
                    return len(x)

                raw = median_rate(run, reps, min_time)
                nps, hits = search_nps(evaluator, boards, nodes, minibatch)
                print(f"{backend:>12} {minibatch:>10} {nps:>11,.0f} {raw:>10,.0f} {nps / raw:>8.2f} {hits:>10.1%}",
                      flush=True)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads for the evaluator")
    parser.add_argument("--positions", type=int, default=6, help="positions searched (median reported)")
    parser.add_argument("--tree-nodes", type=int, default=20_000, help="playouts per search in (a)")
    parser.add_argument("--engine-nodes", type=int, default=3_000, help="playouts per search in (b)")
    parser.add_argument("--reps", type=int, default=7, help="timed repetitions of the raw evaluator")
    parser.add_argument("--net", default="10x128", help="BLOCKSxFILTERS of the random network in (b)")
    parser.add_argument("--quick", action="store_true", help="a run of seconds that checks the benchmark works: "
                                                               "2 positions, few playouts, a 2x32 network")
    args = parser.parse_args(argv)
    min_time = 0.3
    if args.quick:
        args.positions, args.tree_nodes, args.engine_nodes, args.reps, min_time = 2, 2_000, 300, 2, 0.05
        args.net = "2x32"

    header("azengine search benchmark")
    print(f"# torch threads {args.threads}; {args.positions} positions; fresh tree per search")
    set_torch_threads(args.threads)
    boards = positions(args.positions)
    bench_tree(boards, args.tree_nodes)
    bench_engine(boards, args.net, args.engine_nodes, args.reps, min_time)


if __name__ == "__main__":
    main()
