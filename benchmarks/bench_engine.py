"""Throughput of the engine core: position encoding and each evaluator backend, side by side.

    python -m benchmarks.bench_engine            # 6x64, 10x128, 20x256; batches 1..128; 1 and 2 threads
    python -m benchmarks.bench_engine --quick    # seconds: a 2x32 network, batches 1 and 32 (checks it runs)

Networks are random (a trained one runs at the same speed); evaluators come from ``engine.load_model``
exactly as the engine loads them (fp32: BatchNorm folded, run eagerly; dynamic-int8: int8
Linear layers; static-int8: quantized in memory on the built-in calibration positions). Each number
is the median of several timed repetitions after a warm-up. Only a quiet machine gives meaningful
numbers: the load average is printed first.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import header, median_rate, parse_net, random_net, real_boards
from engine import encode_batch, encode_position, load_model
from engine.backends.torch_backend import set_torch_threads

BACKENDS = ("fp32", "dynamic-int8", "static-int8")


def bench_encoding(reps: int, min_time: float) -> None:
    """Positions/s of ``encode_batch`` (batch 256) and of ``encode_position`` one at a time."""
    boards = real_boards(256)
    batch_rate = median_rate(lambda: len(encode_batch(boards)), reps, min_time)
    single_rate = median_rate(lambda: len([encode_position(b) for b in boards]), reps, min_time)
    print(f"encode_batch (256 real positions): {batch_rate:12,.0f} positions/s")
    print(f"encode_position one at a time:     {single_rate:12,.0f} positions/s")


def planes_for(batch_size: int, pool: np.ndarray) -> np.ndarray:
    """``batch_size`` real encoded positions (the pool repeated if needed)."""
    reps = -(-batch_size // len(pool))
    return np.ascontiguousarray(np.concatenate([pool] * reps)[:batch_size])


def bench_evaluators(nets: list[str], batch_sizes: list[int], threads: list[int], backends: list[str],
                     reps: int, min_time: float) -> None:
    """Positions/s of each backend for each network size, thread count and batch size."""
    pool = encode_batch(real_boards(512))
    width = max(len(b) for b in backends) + 8
    columns = "".join(f"{b + ' pos/s':>{width}}" for b in backends)
    ratios = "".join(f"{b.split('-')[0] + '/fp32':>{width}}" for b in backends if b != "fp32" and "fp32" in backends)
    print(f"{'net':>8} {'threads':>7} {'batch':>6}{columns}{ratios}")
    with tempfile.TemporaryDirectory() as folder:
        for spec in nets:
            blocks, filters = parse_net(spec)
            path = Path(folder) / f"random_{spec}.pt"
            torch.save(random_net(blocks, filters).state_dict(), path)
            started = time.perf_counter()
            evaluators = {backend: load_model(path, backend=backend) for backend in backends}
            load_s = time.perf_counter() - started
            for thread_count in threads:
                set_torch_threads(thread_count)
                for batch_size in batch_sizes:
                    planes = planes_for(batch_size, pool)
                    rates = {}
                    for backend, evaluator in evaluators.items():
                        def run(ev=evaluator, x=planes) -> int:
                            ev.evaluate(x)
                            return len(x)

                        rates[backend] = median_rate(run, reps, min_time)
                    row = "".join(f"{rates[b]:>{width},.0f}" for b in backends)
                    if "fp32" in rates:
                        row += "".join(f"{rates[b] / rates['fp32']:>{width}.2f}" for b in backends if b != "fp32")
                    print(f"{spec:>8} {thread_count:>7} {batch_size:>6}{row}", flush=True)
            print(f"# {spec}: loading all backends took {load_s:.1f} s (static-int8 calibrates in memory)")


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", default="6x64,10x128,20x256", help="comma-separated BLOCKSxFILTERS")
    parser.add_argument("--batch-sizes", default="1,8,32,64,128", help="comma-separated batch sizes")
    parser.add_argument("--threads", default=None, help="comma-separated torch thread counts (default 1,2; "
                                                          "1 with --quick)")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated backends")
    parser.add_argument("--reps", type=int, default=7, help="timed repetitions (the median is printed)")
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds per repetition at least")
    parser.add_argument("--quick", action="store_true", help="a run of seconds that checks the benchmark works: "
                                                               "2x32, batches 1/32, 2 repetitions of 0.05 s, 1 thread")
    args = parser.parse_args(argv)
    if args.quick:
        args.nets, args.batch_sizes, args.reps, args.min_time = "2x32", "1,32", 2, 0.05
    nets = args.nets.split(",")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    threads = [int(t) for t in (args.threads or ("1" if args.quick else "1,2")).split(",")]
    backends = args.backends.split(",")

    header("azengine engine-core benchmark")
    bench_encoding(args.reps, args.min_time)
    bench_evaluators(nets, batch_sizes, threads, backends, args.reps, args.min_time)


if __name__ == "__main__":
    main()
