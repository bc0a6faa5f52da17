"""Static int8 with each quantized kernel library (qengine) against fp32, timed in turn in one run.

Which ``--qengine`` should ``azengine quantize`` default to on this CPU? Each engine's static int8 model is
made in memory by the shipped recipe (calibrated on the built-in positions, bias-corrected) and
TorchScript-compiled as in the saved files; then every round times fp32 and each engine once per batch
size, and the table shows the median round. Ratios taken this way survive the machine's drift; the
absolute rates do not.

    python -m benchmarks.bench_qengines [--model M] [--batches 1,32,64] [--rounds 5] [--seconds 0.4]
    python -m benchmarks.bench_qengines --quick    # a short run: batch 32, 1 round of 0.1 s, 64 calibration positions
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from torch import nn

import engine
from benchmarks.common import header, median_rate, real_boards
from engine import encode_batch
from engine.backends.torch_backend import set_qengine
from engine.nets.files import read_weights
from engine.nets.torch_files import build_network
from engine.quant import torch_int8
from engine.quant.calibration import builtin_calibration_planes
from engine.torch_conversions import fp32_module


def positions_per_second(module: nn.Module, planes: torch.Tensor, seconds: float) -> float:
    """Positions/s of ``module`` on ``planes``: calls for at least ``seconds`` after one warm-up call."""
    def call() -> int:
        module(planes)
        return len(planes)

    with torch.inference_mode():
        return median_rate(call, reps=1, min_time_s=seconds, warmup=1)


def main(argv: list[str] | None = None) -> None:
    """Print positions/s per batch size for fp32 and each available qengine, and the ratio to fp32."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=engine.default_model_path())
    parser.add_argument("--batches", default="1,32,64")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.4)
    parser.add_argument("--calibration", type=int, default=None,
                        help="calibration positions (default: all built-in ones, as azengine quantize)")
    parser.add_argument("--quick", action="store_true",
                        help="short run: batch 32, 1 round of 0.1 s, 64 calibration positions")
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.rounds, args.seconds, args.calibration = "32", 1, 0.1, 64
    torch.set_num_threads(1)
    header(f"static int8 per qengine vs fp32: {args.model.name}, 1 thread, median of {args.rounds} rounds")
    print(f"# CPU capability reported by torch: {torch.backends.cpu.get_cpu_capability()}")
    net = build_network(read_weights(args.model)).eval()
    calibration = builtin_calibration_planes()[:args.calibration]
    qengines = [q for q in ("onednn", "x86", "fbgemm") if q in torch.backends.quantized.supported_engines]
    modules: dict[str, nn.Module] = {"fp32": fp32_module(net)}
    for qengine in qengines:
        modules[qengine] = torch_int8.to_torchscript(torch_int8.quantize_static(
            net, (calibration[i:i + 64] for i in range(0, len(calibration), 64)), qengine=qengine))
    batches = [int(b) for b in args.batches.split(",")]
    boards = real_boards(max(batches))
    print(f"{'batch':>5s} " + " ".join(f"{name:>16s}" for name in modules))
    for batch in batches:
        x = torch.from_numpy(encode_batch(boards[:batch]))
        rates: dict[str, list[float]] = {name: [] for name in modules}
        for _ in range(args.rounds):
            for name, module in modules.items():
                if name != "fp32":
                    set_qengine(name)  # a module runs with the engine it was packed for
                rates[name].append(positions_per_second(module, x, args.seconds))
        median = {name: statistics.median(values) for name, values in rates.items()}
        cells = [f"{median['fp32']:16.0f}"]
        cells += [f"{median[q]:7.0f} ({median[q] / median['fp32']:4.2f}x)" for q in qengines]
        print(f"{batch:5d} " + " ".join(cells))


if __name__ == "__main__":
    main()
