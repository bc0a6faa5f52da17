"""azengine against lc0 on the same lc0 network: search nodes/s side by side, and their ratio.

``python -m benchmarks.bench_lc0 [--nets maia-1900,maia-1100] [--nodes 8000] [--positions 6] [--threads 1,2]``

For each network (``.pb.gz`` files in ``--nets-dir``, default the ``shared/nets`` folder above the repository), lc0 runs
``lc0 benchmark --backend=blas --nodes=N --num-positions=K --threads=T`` and its ``Nodes/second`` line is
read; then azengine searches the same K positions (read from lc0's output) to the same N nodes each, fresh
tree per position and the engine's default search settings, with the network as fp32, static-int8 and
onnx-int8 (files made by ``engine.quant.quantize`` with the lc0 default recipe, loaded back as the engine
loads them) and ``Threads`` T. Each azengine row gives its ratio to lc0's nodes/s at the same threads.
``--quick`` (for the tests): Maia-1100 only, 1 thread, 1 position of 200 nodes, 64 calibration positions.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import chess

from engine.backends import onnx_backend
from engine.backends.torch_backend import set_qengine
from engine.loader import load_model
from engine.nets.files import read_weights
from engine.nets.torch_files import build_network
from engine.quant import Recipe, calibration_positions, quantize
from engine.quant.torch_int8 import DEFAULT_QENGINE
from search import Limits, Searcher, SearchParams

from .common import header

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LC0 = Path.home() / ".cache" / "azengine-tools" / "bin" / "lc0"
_NPS = re.compile(r"^Nodes/second\s*:\s*(\d+)", re.MULTILINE)
_POSITION = re.compile(r"^Position: \d+/\d+ (.+)$", re.MULTILINE)


def default_nets_dir() -> Path:
    """``$AZ_SHARED/nets``, else the first ``shared/nets`` folder above the repository (where the Maia
    networks are kept)."""
    if os.environ.get("AZ_SHARED"):
        return Path(os.environ["AZ_SHARED"]) / "nets"
    return next((p / "shared" / "nets" for p in REPO.parents if (p / "shared" / "nets").is_dir()),
                REPO.parent / "shared" / "nets")


def lc0_benchmark(lc0: Path, net: Path, nodes: int, positions: int, threads: int) -> tuple[float, list[str]]:
    """lc0's nodes/s from ``lc0 benchmark`` (BLAS backend) and the FENs of the positions it searched."""
    command = [str(lc0), "benchmark", "--backend=blas", f"--weights={net}", f"--nodes={nodes}",
               f"--num-positions={positions}", f"--threads={threads}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    text = done.stdout + done.stderr
    found = _NPS.search(text)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"bench_lc0: {' '.join(command)} exited {done.returncode} without a Nodes/second line:\n"
                         f"{text[-2000:]}")
    return float(found.group(1)), [fen.strip() for fen in _POSITION.findall(text)]


def board_of(position: str) -> chess.Board:
    """The board of one of lc0's benchmark positions: a FEN, optionally followed by ``moves m1 m2 ...``."""
    fen, _, moves = position.partition(" moves ")
    board = chess.Board(fen)
    for move in moves.split():
        board.push_uci(move)
    return board


def azengine_rate(evaluator: object, positions: list[str], nodes: int) -> float:
    """azengine's nodes/s over fresh searches of lc0's benchmark ``positions`` to ``nodes`` nodes each (default
    search settings)."""
    total, elapsed = 0, 0.0
    for position in positions:
        searcher = Searcher(evaluator, SearchParams())
        start = time.perf_counter()
        result = searcher.search(board_of(position), Limits(nodes=nodes))
        elapsed += time.perf_counter() - start
        total += result.info.nodes
        searcher.close()
    return total / elapsed


def int8_files(net: Path, kinds: list[str], workdir: Path, calibration: int) -> dict[str, Path]:
    """The int8 files of an lc0 network, made now with the default recipe for lc0 networks (the weight
    rounding and bias correction change no speed: left out to keep the run short)."""
    module = build_network(read_weights(net))
    positions = calibration_positions(size=calibration)
    files = {}
    for kind in kinds:
        recipe = Recipe(kind, calibration_size=len(positions), bias_correction=False, weight_rounding="nearest")
        path = workdir / f"{net.name.split('.')[0]}_{kind}{'.onnx' if kind.startswith('onnx') else '.pt'}"
        path.write_bytes(quantize(module, recipe, positions, {"source_model": net.name}).data)
        files[kind] = path
    return files


def main(argv: list[str] | None = None) -> None:
    """Print lc0's and azengine's nodes/s per network, backend and thread count, with the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", default="maia-1900,maia-1100", help="network names in --nets-dir (no .pb.gz)")
    parser.add_argument("--nets-dir", type=Path, default=default_nets_dir(),
                        help="folder of the .pb.gz files (default: shared/nets above the repository)")
    parser.add_argument("--lc0", type=Path, default=DEFAULT_LC0, help="the lc0 binary (built with BLAS)")
    parser.add_argument("--nodes", type=int, default=8000, help="nodes per position (default 8000)")
    parser.add_argument("--positions", type=int, default=6, help="positions of lc0's benchmark set (default 6)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--calibration", type=int, default=1024, help="calibration positions of the int8 files")
    parser.add_argument("--quick", action="store_true",
                        help="maia-1100, 1 thread, 1 position of 200 nodes, 64 calibration positions (for the tests)")
    args = parser.parse_args(argv)
    if args.quick:
        args.nets, args.threads, args.positions, args.nodes, args.calibration = "maia-1100", "1", 1, 200, 64
    if not args.lc0.is_file():
        raise SystemExit(f"bench_lc0: no lc0 binary at {args.lc0}; build it with ../shared/tools/build-tools.sh lc0")
    threads = [int(t) for t in args.threads.split(",")]
    kinds = ["static-int8"] + (["onnx-int8"] if onnx_backend.available() else [])
    set_qengine(DEFAULT_QENGINE)  # what static int8 runs on (the header names it)
    header(f"azengine vs lc0 benchmark: {args.positions} position(s) of lc0's benchmark set, {args.nodes} nodes "
           f"each, threads {args.threads}")
    print(f"{'network':<10} {'engine':<9} {'backend':<12} {'threads':>7} {'nodes/s':>9} {'vs lc0':>7}")
    with tempfile.TemporaryDirectory(prefix="azengine-bench-lc0-") as tmp:
        for name in args.nets.split(","):
            net = args.nets_dir / f"{name}.pb.gz"
            if not net.is_file():
                raise SystemExit(f"bench_lc0: no network {net}")
            files = {"fp32": net, **int8_files(net, kinds, Path(tmp), args.calibration)}
            for count in threads:
                lc0_nps, fens = lc0_benchmark(args.lc0, net, args.nodes, args.positions, count)
                print(f"{name:<10} {'lc0':<9} {'blas':<12} {count:>7} {lc0_nps:>9,.0f} {1.0:>6.2f}x", flush=True)
                for kind, path in files.items():
                    evaluator = load_model(path, "fp32" if kind == "fp32" else "auto", count)
                    nps = azengine_rate(evaluator, fens or [chess.STARTING_FEN], args.nodes)
                    print(f"{name:<10} {'azengine':<9} {kind:<12} {count:>7} {nps:>9,.0f} {nps / lc0_nps:>6.2f}x",
                          flush=True)


if __name__ == "__main__":
    main()
