"""``azengine bench``: measured speed, size and accuracy of each backend, side by side in one run.

Every figure is measured here and now: raw evaluator throughput per batch size (median of several
timed repetitions after a warm-up, the backends taking turns within each repetition), MCTS nodes/s on
a fixed set of positions, file sizes on disk, and agreement with fp32 on held-out positions.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import chess
import numpy as np
import torch
from tqdm import tqdm

import engine
from engine.backends import onnx_backend
from engine.errors import CommandError
from engine.files import atomic_write
from engine.inputs import encode_for
from engine.nets.files import sibling_path
from engine.positions import PositionFileError
from engine.quant import Recipe, compare, heldout_positions, read_positions
from search import Limits, Searcher, SearchParams

from .command import QuantizeRequest, quantize_file

#: Fixed positions for the MCTS measurement: an opening, two middlegames, an endgame.
MCTS_FENS = (
    "rnbqkb1r/pp2pppp/3p1n2/8/3NP3/8/PPP2PPP/RNBQKB1R w KQkq - 1 5",
    "r1bq1rk1/pp2bppp/2n1pn2/3p4/2PP4/2N2N2/PP2BPPP/R1BQ1RK1 w - - 0 9",
    "2r2rk1/1b2qppp/p3pn2/1p6/3N4/P1B1P3/1P2BPPP/2RQ1RK1 b - - 3 17",
    "8/5pk1/6p1/3R4/5P2/6KP/r7/8 w - - 2 44",
)
DEFAULT_BATCH_SIZES = "1,8,32,64,128"


class BenchError(CommandError):
    """Bad arguments or files: one line on stderr, exit code 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``azengine bench``."""
    parser.add_argument("--model", help="fp32 model (default: the bundled network)")
    parser.add_argument("--quantization", choices=("none", "dynamic", "static", "both"), default="both",
                        help="int8 backends to compare with fp32 (default both)")
    parser.add_argument("--dynamic-model", help="dynamic-int8 file (default: the sibling file, else made now)")
    parser.add_argument("--static-model", help="static-int8 file (default: the sibling file, else made now)")
    parser.add_argument("--onnx", choices=("auto", "yes", "no"), default="auto",
                        help="also measure the ONNX Runtime backends onnx-fp32 and onnx-int8 (default auto: when "
                             "onnxruntime is installed)")
    parser.add_argument("--batch-sizes", default=DEFAULT_BATCH_SIZES, help=f"default {DEFAULT_BATCH_SIZES}")
    parser.add_argument("--skip-mcts", action="store_true", help="skip the MCTS nodes/s section")
    parser.add_argument("--nodes", type=int, default=2000, help="MCTS playouts per position (default 2000)")
    parser.add_argument("--minibatch", type=int, default=32, help="MCTS minibatch size (default 32)")
    parser.add_argument("--positions", help="EPD/FEN or PGN file of held-out positions for accuracy and "
                        "throughput (default: built-in held-out positions)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per measurement (default 5)")
    parser.add_argument("--seconds", type=float, default=0.5, help="minimum seconds per repetition (default 0.5)")
    parser.add_argument("--json", dest="json_out", help="write all results as JSON here")
    parser.add_argument("--plot", help="draw throughput and nodes/s to this PNG (needs matplotlib)")


def _parse_batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise BenchError(f"--batch-sizes takes comma-separated integers, not {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise BenchError(f"--batch-sizes needs positive integers, not {text!r}")
    return sizes


def run(args: argparse.Namespace) -> int:
    """Run the benchmark (:class:`BenchError` on bad input; outputs are written whole or not at all)."""
    results = benchmark(args)
    sys.stdout.write(format_results(results))
    if args.json_out:
        atomic_write(Path(args.json_out), json.dumps(results, indent=2).encode())
    if args.plot:
        plot(results, args.plot)
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _timed_block(evaluator: Any, planes: np.ndarray, min_seconds: float) -> tuple[float, int]:
    """Evaluate ``planes`` repeatedly for at least ``min_seconds``: (seconds taken, calls made)."""
    calls = 0
    start = time.perf_counter()
    while True:
        evaluator.evaluate(planes)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed, calls


def _time_interleaved(evaluators: dict[str, Any], planes: np.ndarray, repeats: int,
                      min_seconds: float) -> dict[str, dict[str, float]]:
    """Median positions/s and ms per batch of each evaluator on ``planes``.

    The repetitions are interleaved: each round times every evaluator once, in turn, so a slow spell
    of the machine falls on all of them rather than on whichever happened to be running.
    """
    for evaluator in evaluators.values():  # warm-up
        evaluator.evaluate(planes)
        evaluator.evaluate(planes)
    rates: dict[str, list[float]] = {kind: [] for kind in evaluators}
    per_batch: dict[str, list[float]] = {kind: [] for kind in evaluators}
    for _ in range(repeats):
        for kind, evaluator in evaluators.items():
            elapsed, calls = _timed_block(evaluator, planes, min_seconds)
            rates[kind].append(calls * len(planes) / elapsed)
            per_batch[kind].append(1000.0 * elapsed / calls)
    return {kind: {"positions_per_s": statistics.median(rates[kind]),
                   "ms_per_batch": statistics.median(per_batch[kind])} for kind in evaluators}


def _converted_file(model: Path, kind: str, given: str | None, workdir: Path, threads: int) -> tuple[Path, str]:
    """The file of ``kind`` to measure: given, the sibling file, or one made now into ``workdir``
    (with ``azengine quantize``'s default recipe)."""
    if given:
        return Path(given), "given"
    sibling = sibling_path(model, kind)
    if sibling.is_file():
        return sibling, "sibling file"
    output = workdir / sibling.name
    quantize_file(QuantizeRequest(model=model, recipe=Recipe(kind), output=output, threads=threads))
    return output, "made now"


def _onnx_kinds(choice: str) -> list[str]:
    if choice == "no" or (choice == "auto" and not onnx_backend.available()):
        return []
    if not onnx_backend.available():
        raise BenchError(f"--onnx yes: {onnx_backend.INSTALL_HINT}")
    return list(onnx_backend.ONNX_KINDS)


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Run every section and return the results (see :func:`format_results`)."""
    sizes = _parse_batch_sizes(args.batch_sizes)
    if args.threads < 1 or args.repeats < 1 or args.nodes < 1:
        raise BenchError("--threads, --repeats and --nodes must be positive")
    model = Path(args.model) if args.model else engine.default_model_path()
    try:
        boards = read_positions(args.positions) if args.positions else heldout_positions()
    except PositionFileError as exc:
        raise BenchError(str(exc)) from None

    kinds = {"none": [], "dynamic": ["dynamic-int8"], "static": ["static-int8"],
             "both": ["dynamic-int8", "static-int8"]}[args.quantization] + _onnx_kinds(args.onnx)
    with tempfile.TemporaryDirectory(prefix="azengine-bench-") as tmp:
        files: dict[str, tuple[Path, str]] = {"fp32": (model, "given")}
        try:
            evaluators = {"fp32": engine.load_model(model, "fp32", args.threads)}
        except engine.ModelFileError as exc:
            raise BenchError(str(exc)) from None
        for kind in kinds:
            given = {"dynamic-int8": args.dynamic_model, "static-int8": args.static_model}.get(kind)
            files[kind] = _converted_file(model, kind, given, Path(tmp), args.threads)
            try:
                evaluators[kind] = engine.load_model(files[kind][0], "auto", args.threads)
            except engine.ModelFileError as exc:
                raise BenchError(str(exc)) from None
            if evaluators[kind].kind != kind:
                raise BenchError(f"{files[kind][0]} is a {evaluators[kind].kind} model, not {kind}")
        torch.set_num_threads(args.threads)
        info = evaluators["fp32"].info
        results: dict[str, Any] = {
            "model": str(model), "blocks": info.blocks, "filters": info.filters,
            "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "torch_threads": args.threads,
                        "torch": torch.__version__, "python": platform.python_version(),
                        "load_average": list(os.getloadavg())},
            "sizes": {k: {"file": str(p), "source": src, "bytes": p.stat().st_size} for k, (p, src) in files.items()},
        }

        planes_all = encode_for(evaluators["fp32"], boards[: max(sizes)] * (max(sizes) // len(boards) + 1))
        throughput: dict[str, dict[str, dict[str, float]]] = {k: {} for k in evaluators}
        for size in tqdm(sizes, desc="throughput", file=sys.stderr, leave=False):
            timings = _time_interleaved(evaluators, planes_all[:size], args.repeats, args.seconds)
            for kind, timing in timings.items():
                throughput[kind][str(size)] = timing
        results["throughput"] = throughput

        if not args.skip_mcts:
            results["mcts"] = {kind: _mcts_speed(ev, args) for kind, ev in
                               tqdm(evaluators.items(), desc="mcts", file=sys.stderr, leave=False)}
        results["accuracy"] = {kind: compare(evaluators["fp32"], ev, boards).to_dict()
                               for kind, ev in evaluators.items() if kind != "fp32"}
    results["summary"] = _summary(results)
    return results


def _mcts_speed(evaluator: Any, args: argparse.Namespace) -> dict[str, float]:
    """Nodes/s of the real search (fresh tree and cache per position), and the raw evaluator rate at the
    same batch size next to it."""
    nodes, seconds = 0, 0.0
    for fen in MCTS_FENS:
        searcher = Searcher(evaluator, SearchParams(minibatch_size=args.minibatch, nn_cache_size=0))
        start = time.perf_counter()
        result = searcher.search(chess.Board(fen), Limits(nodes=args.nodes))
        seconds += time.perf_counter() - start
        nodes += result.info.nodes
        searcher.close()
    planes = encode_for(evaluator, [chess.Board(f) for f in MCTS_FENS] * (args.minibatch // len(MCTS_FENS) + 1))
    raw = _time_interleaved({"raw": evaluator}, planes[: args.minibatch], args.repeats,
                            args.seconds)["raw"]["positions_per_s"]
    nps = nodes / seconds
    return {"nodes_per_s": nps, "raw_positions_per_s_at_minibatch": raw, "share_of_raw": nps / raw,
            "minibatch": args.minibatch, "nodes": nodes}


def _summary(results: dict[str, Any]) -> list[str]:
    lines = []
    sizes = results["sizes"]
    for kind in results["accuracy"]:
        biggest = max(results["throughput"][kind], key=int)
        speedup = (results["throughput"][kind][biggest]["positions_per_s"]
                   / results["throughput"]["fp32"][biggest]["positions_per_s"])
        text = (f"{kind}: {speedup:.2f}x fp32's throughput at batch {biggest}, "
                f"{100 * sizes[kind]['bytes'] / sizes['fp32']['bytes']:.0f}% of the size, "
                f"top-1 agreement {100 * results['accuracy'][kind]['top1_agreement']:.1f}%")
        if "mcts" in results:
            text += f", {results['mcts'][kind]['nodes_per_s'] / results['mcts']['fp32']['nodes_per_s']:.2f}x nodes/s"
        lines.append(text)
    return lines


def format_results(r: dict[str, Any]) -> str:
    """The tables printed by ``azengine bench``."""
    m = r["machine"]
    out = [f"azengine bench: {r['model']} ({r['blocks']}x{r['filters']})",
           f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} with {m['torch_threads']} thread(s), "
           f"load average {m['load_average'][0]:.2f}", ""]
    kinds = list(r["throughput"])
    sizes = list(r["throughput"]["fp32"])
    out.append("Evaluator throughput, positions/s (ms per batch), median of interleaved repeats")
    out.append(f"{'batch':>6} " + " ".join(f"{k:>22}" for k in kinds))
    for b in sizes:
        cells = [f"{r['throughput'][k][b]['positions_per_s']:>10.0f} ({r['throughput'][k][b]['ms_per_batch']:7.2f} ms)"
                 for k in kinds]
        out.append(f"{b:>6} " + " ".join(f"{c:>22}" for c in cells))
    if "mcts" in r:
        out += ["", "MCTS nodes/s (fresh tree, no cache, fixed positions) next to the raw evaluator rate",
                f"{'backend':>14} {'nodes/s':>10} {'raw pos/s':>10} {'share':>7}"]
        for k, v in r["mcts"].items():
            out.append(f"{k:>14} {v['nodes_per_s']:>10.0f} {v['raw_positions_per_s_at_minibatch']:>10.0f} "
                       f"{100 * v['share_of_raw']:>6.0f}%   (batch {v['minibatch']}, {v['nodes']} nodes)")
    out += ["", "File size on disk", f"{'backend':>14} {'bytes':>12} {'vs fp32':>8}  file"]
    for k, v in r["sizes"].items():
        out.append(f"{k:>14} {v['bytes']:>12,} {100 * v['bytes'] / r['sizes']['fp32']['bytes']:>7.1f}%  "
                   f"{v['file']} ({v['source']})")
    if r["accuracy"]:
        out += ["", "Accuracy against fp32 on held-out positions",
                f"{'backend':>14} {'value RMSE':>10} {'max err':>8} {'policy RMSE':>11} {'KL':>8} {'top-1':>7}"]
        for k, a in r["accuracy"].items():
            out.append(f"{k:>14} {a['value_rmse']:>10.4f} {a['value_max_error']:>8.4f} {a['policy_rmse']:>11.5f} "
                       f"{a['policy_kl']:>8.5f} {100 * a['top1_agreement']:>6.1f}%")
    out += ["", "Summary"] + [f"  {s}" for s in r["summary"]]
    return "\n".join(out) + "\n"


def plot(r: dict[str, Any], path: str) -> None:
    """Throughput against batch size per backend, and MCTS nodes/s per backend, as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("azengine bench: --plot needs matplotlib: pip install 'azengine[plot]'") from None
    panels = 2 if "mcts" in r else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.2), squeeze=False)
    ax = axes[0][0]
    for kind, per in r["throughput"].items():
        sizes = [int(b) for b in per]
        ax.plot(sizes, [per[str(b)]["positions_per_s"] for b in sizes], marker="o", label=kind)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("positions / s")
    ax.set_title(f"Evaluator throughput, {r['blocks']}x{r['filters']}")
    ax.legend()
    ax.grid(alpha=0.3)
    if "mcts" in r:
        ax = axes[0][1]
        kinds = list(r["mcts"])
        ax.bar(kinds, [r["mcts"][k]["nodes_per_s"] for k in kinds], label="MCTS nodes/s")
        ax.plot(kinds, [r["mcts"][k]["raw_positions_per_s_at_minibatch"] for k in kinds], "k_", markersize=30,
                label="raw evaluator at the same batch")
        ax.set_ylabel("nodes / s")
        ax.set_title("MCTS speed")
        ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write(Path(path), buffer.getvalue())
