"""``azengine quantize``: write the int8 (or ONNX) version of an fp32 model and report its accuracy.

TorchScript (default format). Dynamic: int8 weights for the Linear layers (policy fc1, value fc1/fc2),
quantized on the fly per batch; convolutions stay fp32. Static: BatchNorm folded, conv+ReLU fused, the
residual stream's channels equalized, per-channel int8 weights rounded by GPTQ, int8 activations
everywhere including the skip additions, activation ranges calibrated on real positions, then each int8
layer's bias corrected so that its mean output matches fp32's on those positions. Both are saved as
TorchScript archives with metadata.

ONNX (``--format onnx``): fp32 (the BatchNorm-folded network exported) or static int8 in QDQ form,
its residual stream equalized, calibrated and bias-corrected on the same positions. ``load_model``
recognises every one of these files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import ModelFileError, default_model_path, load_model
from engine.backends.torch_backend import set_torch_threads
from engine.errors import BackendUnavailableError, CommandError
from engine.files import atomic_write
from engine.nets.files import read_weights, sibling_path
from engine.nets.torch_files import build_network
from engine.positions import PositionFileError
from engine.quant import (
    DEFAULT_CALIBRATION_SIZE,
    LAYERS,
    QENGINES,
    Progress,
    Recipe,
    RecipeError,
    calibration_positions,
    compare,
    heldout_positions,
    quantize,
)
from engine.quant.torch_int8 import DEFAULT_QENGINE, WEIGHT_ROUNDINGS

from .progress import progress_bars

FORMATS = ("torchscript", "onnx")


class QuantizeError(CommandError):
    """A bad request: reported as one line on stderr with exit code 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``azengine quantize``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Quantize an fp32 model (pytorch-alpha-zero's AlphaZeroNet or azengine's seresnet state_dict, or an lc0 "
        ".pb.gz network such as Maia) to int8, or export it to ONNX.\n\nLayers, AlphaZeroNet (the seresnet and lc0 "
        "families' are in the report and the file's metadata):\n"
        f"--format torchscript (default):\n  dynamic: {LAYERS['dynamic-int8']}.\n  static:  {LAYERS['static-int8']}."
        f"\n--format onnx:\n  fp32:    {LAYERS['onnx-fp32']}.\n  static:  {LAYERS['onnx-int8']}.\n\n"
        "Dynamic quantization of the convolutions is not offered: PyTorch has no dynamic int8 convolution "
        "kernel for the CPU backends, so only the Linear layers can be quantized dynamically.")
    parser.add_argument("--model", help="fp32 model file (default: the bundled network)")
    parser.add_argument("--type", choices=("dynamic", "static", "fp32"), required=True,
                        help="quantization type (fp32: ONNX export without quantization, --format onnx only)")
    parser.add_argument("--format", choices=FORMATS, default="torchscript",
                        help="output format (default torchscript)")
    parser.add_argument("--calibration-size", type=int, default=DEFAULT_CALIBRATION_SIZE,
                        help=f"calibration positions for static (default {DEFAULT_CALIBRATION_SIZE})")
    parser.add_argument("--calibration-data", help="EPD/FEN or PGN file of calibration positions (default: the "
                        "built-in positions from real games: ECO openings continued by Stockfish)")
    parser.add_argument("--qengine", choices=QENGINES, default=DEFAULT_QENGINE,
                        help=f"quantized kernel library (default {DEFAULT_QENGINE})")
    parser.add_argument("--fp32-input-conv", action="store_true",
                        help="static torchscript: keep the input convolution fp32 (more accurate value, slightly "
                             "larger and slower)")
    parser.add_argument("--no-bias-correction", dest="bias_correction", action="store_false",
                        help="static, both formats: skip the bias correction after calibration (each int8 layer's "
                             "mean output matched to fp32's on the calibration positions)")
    parser.add_argument("--no-equalization", dest="equalize", action="store_false",
                        help="static, both formats: do not rescale the residual stream's channels to use their "
                             "tensors' whole int8 range before calibrating")
    parser.add_argument("--weight-rounding", choices=WEIGHT_ROUNDINGS, default=None,
                        help="static torchscript: how int8 weights are rounded (default gptq: each layer's rounding "
                             "errors compensated on calibration positions; nearest: torch's own, faster)")
    parser.add_argument("--output", help="output file (default beside the model: <stem>_<type>_quantized.pt; "
                        "onnx: <stem>.onnx, <stem>_static_quantized.onnx; <stem> of an lc0 file: its name without "
                        ".pb.gz)")
    parser.add_argument("--json", dest="json_out", help="also write the report as JSON to this file")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")


def run(args: argparse.Namespace) -> int:
    """Run the command: quantize, write the file and the report; :class:`QuantizeError` on bad input."""
    report = quantize_file(request_from_args(args), progress=progress_bars())
    sys.stdout.write(format_report(report))
    if args.json_out:
        atomic_write(Path(args.json_out), json.dumps(report, indent=2))
    return 0


def request_from_args(args: argparse.Namespace) -> QuantizeRequest:
    """The request an ``azengine quantize`` command line makes (:class:`QuantizeError` for a bad one)."""
    kind = output_kind(args.type, args.format)
    if not args.bias_correction and kind not in ("static-int8", "onnx-int8"):
        raise QuantizeError("--no-bias-correction applies to --type static only (the other types have no bias "
                            "correction)")
    if not args.equalize and kind not in ("static-int8", "onnx-int8"):
        raise QuantizeError("--no-equalization applies to --type static only")
    if args.weight_rounding is not None and kind != "static-int8":
        raise QuantizeError("--weight-rounding applies to --type static with the torchscript format only (ONNX int8 "
                            "rounds weights to nearest)")
    if args.fp32_input_conv and kind != "static-int8":
        raise QuantizeError("--fp32-input-conv applies to --type static with the torchscript format only (ONNX int8 "
                            "always keeps the input convolution fp32)")
    if args.calibration_size < 1:
        raise QuantizeError(f"--calibration-size must be at least 1, not {args.calibration_size}")
    recipe = Recipe(kind, calibration_size=args.calibration_size, qengine=args.qengine,
                    fp32_input_conv=args.fp32_input_conv, bias_correction=args.bias_correction,
                    equalize=args.equalize, weight_rounding=args.weight_rounding or WEIGHT_ROUNDINGS[0])
    return QuantizeRequest(model=Path(args.model) if args.model else None, recipe=recipe,
                           output=Path(args.output) if args.output else None,
                           calibration_data=Path(args.calibration_data) if args.calibration_data else None,
                           threads=args.threads)


@dataclass(frozen=True)
class QuantizeRequest:
    """What to quantize, how, and where to write it (None: the bundled network / the sibling file name)."""

    model: Path | None
    recipe: Recipe
    output: Path | None = None
    calibration_data: Path | None = None
    threads: int | None = None


def output_kind(quantization_type: str, output_format: str) -> str:
    """The evaluator kind of the file to write, or QuantizeError for a combination that is not offered."""
    if output_format == "onnx":
        if quantization_type == "dynamic":
            raise QuantizeError("--format onnx offers --type fp32 or static: ONNX Runtime's dynamic int8 "
                                "convolutions (ConvInteger) are not used here")
        return {"fp32": "onnx-fp32", "static": "onnx-int8"}[quantization_type]
    if quantization_type == "fp32":
        raise QuantizeError("--type fp32 needs --format onnx (for torch, the fp32 .pt file itself is the fp32 model)")
    return f"{quantization_type}-int8"


def _check_output(path: Path) -> None:
    directory = path.parent
    if not directory.is_dir():
        raise QuantizeError(f"{path}: output folder {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise QuantizeError(f"{path}: output folder {directory} is not writable")
    if path.is_dir():
        raise QuantizeError(f"{path}: is a folder, not a file name")


def quantize_file(request: QuantizeRequest, progress: Progress | None = None) -> dict[str, Any]:
    """Quantize ``request.model``, write the file atomically and return the report (tests and
    ``azengine bench`` call this too)."""
    set_torch_threads(request.threads)
    recipe = request.recipe
    model = request.model or default_model_path()
    try:
        weights = read_weights(model)
    except ModelFileError as exc:
        raise QuantizeError(str(exc)) from None
    if weights.kind != "fp32":
        raise QuantizeError(f"{model}: is already a {weights.kind} model; quantize its fp32 file instead")
    output = request.output or sibling_path(model, recipe.kind)
    _check_output(output)
    try:
        net = build_network(weights)
    except ModelFileError as exc:
        raise QuantizeError(str(exc)) from None

    started = time.perf_counter()
    boards = []
    source: dict[str, Any] = {"source_model": model.name}
    if recipe.calibrated:
        try:
            boards = calibration_positions(request.calibration_data, recipe.calibration_size)
        except PositionFileError as exc:
            raise QuantizeError(str(exc)) from None
        source["calibration_source"] = str(request.calibration_data or "built-in (engine/data/calibration.fen)")
    try:
        result = quantize(net, recipe, boards, source, progress)
    except (BackendUnavailableError, RecipeError) as exc:
        raise QuantizeError(str(exc)) from None
    try:
        atomic_write(output, result.data)
    except OSError as exc:
        raise QuantizeError(f"{output}: cannot write ({exc.strerror or exc})") from None
    elapsed = time.perf_counter() - started

    reference = load_model(model, "fp32", request.threads)
    converted = load_model(output, "auto", request.threads)
    accuracy = compare(reference, converted, heldout_positions())
    meta = result.metadata
    return {
        "model": str(model), "output": str(output), "type": recipe.kind, "family": weights.family,
        "blocks": weights.blocks, "filters": weights.filters, "int8_layers": meta["int8_layers"],
        "qengine": meta.get("qengine"), "calibration_positions": meta.get("calibration_positions"),
        "equalized": meta.get("equalized"), "activation_caps": meta.get("activation_caps", False),
        "weight_rounding": meta.get("weight_rounding"), "bias_correction": meta.get("bias_correction"),
        "fp32_bytes": model.stat().st_size, "output_bytes": output.stat().st_size,
        "size_ratio": output.stat().st_size / model.stat().st_size,
        "seconds": elapsed, "accuracy": accuracy.to_dict(),
    }


def format_report(r: dict[str, Any]) -> str:
    """The human-readable report printed after quantizing."""
    a = r["accuracy"]
    lines = [
        f"wrote {r['output']} ({r['type']}, {r['family']} {r['blocks']}x{r['filters']}) in {r['seconds']:.1f} s",
        f"  layers: {r['int8_layers']}",
        f"  size on disk: fp32 {r['fp32_bytes'] / 1e6:.2f} MB -> {r['type']} {r['output_bytes'] / 1e6:.2f} MB "
        f"({100 * r['size_ratio']:.1f}% of fp32)",
    ]
    if r.get("calibration_positions"):
        engine_used = f", qengine {r['qengine']}" if r.get("qengine") else ""
        lines.append(f"  calibration: {r['calibration_positions']} positions{engine_used}")
    if r.get("equalized") is not None:
        parts = [f"weights rounded by {r['weight_rounding']}"] if r.get("weight_rounding") else []
        parts.append("residual stream equalized" if r["equalized"] else
                     "residual stream not equalized (activations capped)" if r.get("activation_caps") else
                     "residual stream not equalized")
        lines.append(f"  {', '.join(parts)}")
    correction = r.get("bias_correction")
    if correction:
        before, after = correction["calibration_value_rmse"]
        logits_before, logits_after = correction["calibration_logits_rmse"]
        outcome = "kept" if correction["kept"] else "undone (it moved an output further from fp32)"
        lines.append(f"  bias correction of {correction['layers']} layers: {outcome}; on the calibration positions "
                     f"value RMSE {before:.4f} -> {after:.4f}, logits RMSE {logits_before:.4f} -> {logits_after:.4f}")
    elif r["type"] in ("static-int8", "onnx-int8"):
        lines.append("  bias correction: off (--no-bias-correction)")
    lines += [
        f"  accuracy vs fp32 on {a['positions']} held-out positions:",
        f"    value RMSE {a['value_rmse']:.4f}, max error {a['value_max_error']:.4f}",
        f"    policy RMSE over legal moves {a['policy_rmse']:.4f}, KL divergence {a['policy_kl']:.4f} nats",
        f"    top-1 move agreement {100 * a['top1_agreement']:.1f}%",
    ]
    return "\n".join(lines) + "\n"


