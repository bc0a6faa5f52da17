"""Search nodes/s against network threads and minibatch size per backend, next to raw throughput.

Chooses the defaults of the ``Threads`` and ``MinibatchSize`` options: the search thread shares the cores
with the network's thread pool, so the raw evaluator speed alone does not tell which setting searches
fastest. ``onnx-int8+spin`` is ONNX Runtime with its idle threads spinning (the engine turns that off).

    python -m benchmarks.bench_threads [--blocks 6 --filters 64 --nodes 3000 --backends fp32,onnx-int8]
    python -m benchmarks.bench_threads --quick     # seconds: a 2x32 network, 1 thread, batch 32, few nodes
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import chess
import torch

from benchmarks.common import machine_load
from engine.backends import onnx_backend
from engine.encoding import encode_batch
from engine.loader import load_model
from engine.nets.alphazero import AlphaZeroNet
from engine.nets.files import sibling_path
from engine.quant import onnx_int8, torch_int8
from engine.quant.calibration import builtin_calibration_planes
from engine.torch_conversions import fp32_module
from search import Limits, Searcher, SearchParams

FENS = (
    "r1bq1rk1/pp2bppp/2n1pn2/3p4/2PP4/2N2N2/PP2BPPP/R1BQ1RK1 w - - 0 9",
    "rnbqkb1r/pp2pppp/3p1n2/8/3NP3/8/PPP2PPP/RNBQKB1R w KQkq - 1 5",
)


def raw_rate(evaluator: object, batch: int, seconds: float = 1.0) -> float:
    """Positions/s of ``evaluator.evaluate`` on real positions at ``batch``."""
    planes = encode_batch([chess.Board(f) for f in FENS] * (batch // len(FENS) + 1))[:batch]
    evaluator.evaluate(planes)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        evaluator.evaluate(planes)
        n += batch
    return n / (time.perf_counter() - start)


def search_rate(evaluator: object, batch: int, nodes: int) -> float:
    """Nodes/s of fresh searches (no cache) of the fixed positions."""
    total, elapsed = 0, 0.0
    for fen in FENS:
        searcher = Searcher(evaluator, SearchParams(minibatch_size=batch, nn_cache_size=0))
        start = time.perf_counter()
        searcher.search(chess.Board(fen), Limits(nodes=nodes))
        elapsed += time.perf_counter() - start
        total += nodes
        searcher.close()
    return total / elapsed


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--nodes", type=int, default=3000)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batches", default="16,32,64")
    parser.add_argument("--backends", default="fp32,static-int8",
                        help="comma-separated: fp32, static-int8, onnx-fp32, onnx-int8, onnx-int8+spin")
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds of raw evaluator timing per row")
    parser.add_argument("--calibration", type=int, default=512, help="calibration positions of the int8 files")
    parser.add_argument("--quick", action="store_true",
                        help="a run of seconds that checks the benchmark works: 2x32, 1 thread, batch 32, 200 nodes, "
                             "0.2 s of raw timing, 64 calibration positions")
    args = parser.parse_args(argv)
    if args.quick:
        args.blocks, args.filters, args.nodes, args.threads, args.batches = 2, 32, 200, "1", "32"
        args.seconds, args.calibration = 0.2, 64
    print(f"# {machine_load()}")
    torch.manual_seed(0)
    net = AlphaZeroNet(args.blocks, args.filters).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.pt"
        torch.save(net.state_dict(), path)
        calibration = builtin_calibration_planes()[:args.calibration]
        static = torch_int8.quantize_static(net, [calibration])
        meta = {"kind": "static-int8", "blocks": args.blocks, "filters": args.filters,
                "qengine": torch_int8.DEFAULT_QENGINE}
        (Path(tmp) / "net_static_quantized.pt").write_bytes(torch_int8.archive_bytes(static, meta))
        backends = args.backends.split(",")
        if any(b.startswith("onnx") for b in backends):
            fp32_onnx = onnx_int8.export_fp32(fp32_module(net))
            int8_onnx = onnx_int8.quantize_int8(fp32_onnx, [calibration])
            for kind, model in (("onnx-fp32", fp32_onnx), ("onnx-int8", int8_onnx)):
                sibling_path(path, kind).write_bytes(onnx_int8.model_bytes(model, {**meta, "kind": kind}))
        for backend in backends:
            for threads in (int(t) for t in args.threads.split(",")):
                if backend.endswith("+spin"):
                    data = sibling_path(path, backend.removesuffix("+spin")).read_bytes()
                    evaluator = onnx_backend.OnnxEvaluator(data, backend, None, threads, spinning=True)
                else:
                    evaluator = load_model(path, backend, threads)
                for batch in (int(b) for b in args.batches.split(",")):
                    raw = raw_rate(evaluator, batch, args.seconds)
                    nps = search_rate(evaluator, batch, args.nodes)
                    print(f"{args.blocks}x{args.filters} {backend:12s} threads {threads} batch {batch:3d}: "
                          f"raw {raw:7.0f} pos/s  search {nps:7.0f} nodes/s  ({100 * nps / raw:3.0f}% of raw)",
                          flush=True)


if __name__ == "__main__":
    main()
