"""Both network families at equal size: what squeeze-excitation and the new heads cost in positions/s.

``python -m benchmarks.bench_families [--net 6x64] [--batch 32] [--threads 1] [--quick]``

Three random networks of the same blocks x filters: pytorch-alpha-zero's ``alphazero``, azengine's
``seresnet`` without and with squeeze-excitation. Each runs as fp32 (BatchNorm folded), static-int8
(TorchScript, FX) and onnx-int8 (QDQ, when onnxruntime is installed), made by ``engine.quant.quantize`` and
loaded back from the file as the engine loads it. Rates are medians of interleaved repetitions (each round
times every evaluator once), on real positions.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import engine
from engine.backends import onnx_backend
from engine.backends.torch_backend import TorchEvaluator, set_qengine, set_torch_threads
from engine.encoding import encode_batch
from engine.interface import ModelInfo
from engine.nets.seresnet import SEResNet
from engine.quant import Recipe, calibration_positions, quantize
from engine.quant.torch_int8 import DEFAULT_QENGINE, fold_batchnorm

from .common import header, median_rate, parse_net, random_net, randomize_batchnorm, real_boards

#: Rows of the table: (label, family, squeeze-excitation).
VARIANTS = (("alphazero", "alphazero", False), ("seresnet", "seresnet", False), ("seresnet+SE", "seresnet", True))


def random_seresnet(blocks: int, filters: int, se: bool, seed: int = 0) -> SEResNet:
    """An eval-mode random ``seresnet`` with non-trivial batch-norm statistics (as :func:`random_net`)."""
    torch.manual_seed(seed)
    return randomize_batchnorm(SEResNet(blocks, filters, None if se else 0).eval())


def evaluators(net: nn.Module, kinds: list[str], workdir: Path, threads: int) -> dict[str, Any]:
    """The evaluators of ``net`` to time: fp32 in memory, the int8 kinds written to files and loaded back."""
    info = ModelInfo("in memory", "fp32", net.num_blocks, net.num_filters, family=net.family)
    result: dict[str, Any] = {"fp32": TorchEvaluator(fold_batchnorm(net), "fp32", info, threads)}
    positions = calibration_positions(size=256)
    for kind in kinds:
        # the weight rounding and bias correction change no speed: left out to keep the run short
        recipe = Recipe(kind, calibration_size=len(positions), bias_correction=False, weight_rounding="nearest")
        path = workdir / f"{net.family}_{id(net)}_{kind}{'.onnx' if kind.startswith('onnx') else '.pt'}"
        path.write_bytes(quantize(net, recipe, positions).data)
        result[kind] = engine.load_model(path, "auto", threads)
    return result


def interleaved_rates(table: dict[str, dict[str, Any]], planes: np.ndarray, reps: int,
                      min_time_s: float) -> dict[str, dict[str, float]]:
    """Median positions/s of every evaluator, each round timing each one once in turn."""
    rates: dict[str, dict[str, list[float]]] = {row: {kind: [] for kind in evs} for row, evs in table.items()}
    for rep in range(reps):
        for row, evs in table.items():
            for kind, ev in evs.items():
                def run(ev: Any = ev) -> int:
                    ev.evaluate(planes)
                    return len(planes)
                rates[row][kind].append(median_rate(run, 1, min_time_s, warmup=2 if rep == 0 else 0))
    return {row: {kind: statistics.median(r) for kind, r in per.items()} for row, per in rates.items()}


def cpu_line() -> str:
    """The CPU's model name and its int8/bf16 instruction sets."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "cpu: unknown"
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = sorted({f for f in ("avx512_vnni", "avx512_bf16", "amx_int8", "avx_vnni") if f" {f}" in text})
    return f"cpu: {model}, {', '.join(flags) or 'no VNNI/BF16'}"


def main(argv: list[str] | None = None) -> None:
    """Print positions/s of each family and kind at one batch size, and the ratios to alphazero's."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--net", default="6x64", help="blocks x filters of all three networks (default 6x64)")
    parser.add_argument("--batch", type=int, default=32, help="positions per call (default 32)")
    parser.add_argument("--threads", type=int, default=1, help="torch / ONNX Runtime threads (default 1)")
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions (default 5)")
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum seconds per timing (default 1)")
    parser.add_argument("--quick", action="store_true", help="2x32, 1 repetition of 0.2 s (for the tests)")
    args = parser.parse_args(argv)
    if args.quick:
        args.net, args.reps, args.seconds = "2x32", 1, 0.2
    blocks, filters = parse_net(args.net)
    set_torch_threads(args.threads)
    set_qengine(DEFAULT_QENGINE)  # what static int8 runs on (the header names it)
    kinds = ["static-int8"] + (["onnx-int8"] if onnx_backend.available() else [])
    header(f"azengine network families benchmark: {args.net}, batch {args.batch}, {args.threads} thread(s)")
    print(f"# {cpu_line()}")
    planes = encode_batch(real_boards(args.batch))
    with tempfile.TemporaryDirectory(prefix="azengine-families-") as tmp:
        table, params = {}, {}
        for label, family, se in VARIANTS:
            net = random_net(blocks, filters) if family == "alphazero" else random_seresnet(blocks, filters, se)
            params[label] = sum(p.numel() for p in net.parameters())
            table[label] = evaluators(net, kinds, Path(tmp), args.threads)
        rates = interleaved_rates(table, planes, args.reps, args.seconds)
    columns = ["fp32", *kinds]
    print(f"{'network':<12} {'net':>6} {'params':>10} " + " ".join(f"{k + ' pos/s':>17}" for k in columns))
    for label in table:
        cells = " ".join(f"{rates[label][k]:>17,.0f}" for k in columns)
        print(f"{label:<12} {args.net:>6} {params[label]:>10,} {cells}")
    for label in list(table)[1:]:
        ratios = ", ".join(f"{k} {rates[label][k] / rates['alphazero'][k]:.2f}x" for k in columns)
        print(f"# {label} vs alphazero: {ratios}")


if __name__ == "__main__":
    main()
