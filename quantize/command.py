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
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from engine.quantization import DEFAULT_QENGINE, WEIGHT_ROUNDINGS

DEFAULT_CALIBRATION_SIZE = 1024
#: Held-out positions the report compares on: all 1,200 built-in ones. (On the first 512, v5's static int8
#: agreed on the top move in 92.2% to 95.1% of them as the calibration size went from 256 to 1,200.)
HELDOUT_SIZE = None
QENGINES = ("x86", "fbgemm", "onednn", "qnnpack")
FORMATS = ("torchscript", "onnx")
LAYERS = {
    "dynamic-int8": "int8: Linear layers (policyHead.fc1, valueHead.fc1, valueHead.fc2; per-channel weights), "
                    "their inputs quantized per batch at run time; fp32: all convolutions",
    "static-int8": "int8: every convolution (BatchNorm folded, ReLU fused; with --fp32-input-conv all but the "
                   "input one), the skip additions, the value head's Linear layers and the activations between "
                   "them; dynamic int8: the policy Linear (policyHead.fc1, per-channel weights); fp32: the input "
                   "and the two outputs",
    "onnx-fp32": "none: every layer fp32 (BatchNorm folded)",
    "onnx-int8": "int8 (QDQ): every convolution but the input one (BatchNorm folded), the skip additions, the "
                 "Linear layers and the activations between them; fp32: the input convolution, the input, the "
                 "Linear layers' outputs (the policy logits among them), the value tanh and the two outputs",
}


class QuantizeError(Exception):
    """A bad request: reported as one line on stderr with exit code 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``azengine quantize``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Quantize an fp32 model (pytorch-alpha-zero state_dict) to int8, or export it to ONNX.\n\n"
        f"--format torchscript (default):\n  dynamic: {LAYERS['dynamic-int8']}.\n  static:  {LAYERS['static-int8']}."
        f"\n--format onnx (needs 'pip install azengine[onnx]'):\n  fp32:    {LAYERS['onnx-fp32']}.\n"
        f"  static:  {LAYERS['onnx-int8']}.\n\n"
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
                        help=f"quantized kernel library (default {DEFAULT_QENGINE}: fastest here at batch 32-64)")
    parser.add_argument("--fp32-input-conv", action="store_true",
                        help="static: keep the input convolution fp32 (v5: value RMSE 0.0198 -> 0.0183, 1.9%% larger "
                             "file; 10-17%% slower, measured on v2)")
    parser.add_argument("--no-bias-correction", dest="bias_correction", action="store_false",
                        help="static, both formats: skip the bias correction after calibration (each int8 layer's "
                             "mean output matched to fp32's on the calibration positions; v3 torchscript: value "
                             "RMSE 0.029 -> 0.021)")
    parser.add_argument("--no-equalization", dest="equalize", action="store_false",
                        help="static, both formats: do not rescale the residual stream's channels to use their "
                             "tensors' whole int8 range before calibrating (equalizing cut v5's value RMSE from "
                             "0.029 to 0.024 with nearest rounding)")
    parser.add_argument("--weight-rounding", choices=WEIGHT_ROUNDINGS, default=None,
                        help="static torchscript: how int8 weights are rounded (default gptq: each layer's rounding "
                             "errors compensated on 512 calibration positions; nearest: torch's own, faster)")
    parser.add_argument("--output", help="output file (default beside the model: <stem>_<type>_quantized.pt; "
                        "onnx: <stem>.onnx, <stem>_static_quantized.onnx)")
    parser.add_argument("--json", dest="json_out", help="also write the report as JSON to this file")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")


def run(args: argparse.Namespace) -> int:
    """Run the command; 0 on success, 2 on bad input (one message on stderr, no file left behind)."""
    try:
        report = quantize_file(args)
    except QuantizeError as exc:
        sys.stderr.write(f"azengine quantize: error: {exc}\n")
        return 2
    sys.stdout.write(format_report(report))
    if args.json_out:
        atomic_write(Path(args.json_out), json.dumps(report, indent=2).encode())
    return 0


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_output(path: Path) -> None:
    directory = path.parent
    if not directory.is_dir():
        raise QuantizeError(f"{path}: output folder {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise QuantizeError(f"{path}: output folder {directory} is not writable")
    if path.is_dir():
        raise QuantizeError(f"{path}: is a folder, not a file name")


def quantize_file(args: argparse.Namespace) -> dict[str, Any]:
    """Quantize ``args.model`` and return the report (also used by tests and ``azengine bench``)."""
    import engine
    from engine import quantization
    from engine.errors import BackendUnavailableError
    from engine.evaluators import set_torch_threads
    from engine.model_file import build_network, load_model, read_weights, sibling_path

    from .accuracy import compare
    from .positions import PositionFileError, calibration_positions, heldout_positions

    set_torch_threads(args.threads)
    model = Path(args.model) if args.model else engine.default_model_path()
    kind = _output_kind(args.type, args.format)
    try:
        weights = read_weights(model)
    except engine.ModelFileError as exc:
        raise QuantizeError(str(exc)) from None
    if weights.kind != "fp32":
        raise QuantizeError(f"{model}: is already a {weights.kind} model; quantize its fp32 file instead")
    if args.fp32_input_conv and kind != "static-int8":
        raise QuantizeError("--fp32-input-conv applies to --type static with the torchscript format only (ONNX int8 "
                            "always keeps the input convolution fp32)")
    if not args.bias_correction and kind not in ("static-int8", "onnx-int8"):
        raise QuantizeError("--no-bias-correction applies to --type static only (the other types have no bias "
                            "correction)")
    if not args.equalize and kind not in ("static-int8", "onnx-int8"):
        raise QuantizeError("--no-equalization applies to --type static only")
    if args.weight_rounding is not None and kind != "static-int8":
        raise QuantizeError("--weight-rounding applies to --type static with the torchscript format only (ONNX int8 "
                            "rounds weights to nearest)")
    if args.calibration_size < 1:
        raise QuantizeError(f"--calibration-size must be at least 1, not {args.calibration_size}")
    output = Path(args.output) if args.output else sibling_path(model, kind)
    _check_output(output)
    net = build_network(weights)

    started = time.perf_counter()
    metadata: dict[str, Any] = {
        "kind": kind, "blocks": weights.blocks, "filters": weights.filters, "source_model": model.name,
        "int8_layers": LAYERS[kind],
    }
    boards = []
    if kind in ("static-int8", "onnx-int8"):
        try:
            boards = calibration_positions(args.calibration_data, args.calibration_size)
        except PositionFileError as exc:
            raise QuantizeError(str(exc)) from None
        metadata.update(calibration_positions=len(boards),
                        calibration_source=str(args.calibration_data or "built-in (engine/data/calibration.fen)"))
    try:
        if kind == "dynamic-int8":
            data = quantization.archive_bytes(quantization.quantize_dynamic_linear(quantization.fold_batchnorm(net)),
                                              metadata)
        elif kind == "static-int8":
            corrections: list[Any] = []
            rounding = args.weight_rounding or quantization.WEIGHT_ROUNDINGS[0]
            module = _calibrate(boards, lambda batches, progress: quantization.quantize_static(
                net, batches, args.qengine, progress=progress, fp32_input_conv=args.fp32_input_conv,
                bias_correction=args.bias_correction, layer_progress=_layer_bar("correcting biases"),
                on_correction=corrections.append, equalize=args.equalize, weight_rounding=rounding,
                rounding_progress=_layer_bar("rounding weights (GPTQ)")))
            metadata.update(qengine=args.qengine, fp32_input_conv=args.fp32_input_conv, equalized=args.equalize,
                            weight_rounding=rounding, bias_correction=_correction_summary(corrections))
            data = quantization.archive_bytes(module, metadata)
        else:
            data = _onnx_bytes(net, kind, boards, metadata, args.bias_correction, args.equalize)
    except BackendUnavailableError as exc:
        raise QuantizeError(str(exc)) from None
    try:
        atomic_write(output, data)
    except OSError as exc:
        raise QuantizeError(f"{output}: cannot write ({exc.strerror or exc})") from None
    elapsed = time.perf_counter() - started

    reference = load_model(model, "fp32", args.threads)
    converted = load_model(output, "auto", args.threads)
    accuracy = compare(reference, converted, heldout_positions(HELDOUT_SIZE))
    return {
        "model": str(model), "output": str(output), "type": kind, "blocks": weights.blocks,
        "filters": weights.filters, "int8_layers": LAYERS[kind],
        "qengine": metadata.get("qengine"), "calibration_positions": metadata.get("calibration_positions"),
        "equalized": metadata.get("equalized"), "weight_rounding": metadata.get("weight_rounding"),
        "bias_correction": metadata.get("bias_correction"),
        "fp32_bytes": model.stat().st_size, "output_bytes": output.stat().st_size,
        "size_ratio": output.stat().st_size / model.stat().st_size,
        "seconds": elapsed, "accuracy": accuracy.to_dict(),
    }


def _output_kind(quantization_type: str, output_format: str) -> str:
    """The evaluator kind of the file to write, or QuantizeError for a combination that is not offered."""
    if output_format == "onnx":
        if quantization_type == "dynamic":
            raise QuantizeError("--format onnx offers --type fp32 or static: ONNX Runtime's dynamic int8 "
                                "convolutions (ConvInteger) are not used here")
        return {"fp32": "onnx-fp32", "static": "onnx-int8"}[quantization_type]
    if quantization_type == "fp32":
        raise QuantizeError("--type fp32 needs --format onnx (for torch, the fp32 .pt file itself is the fp32 model)")
    return f"{quantization_type}-int8"


def _onnx_bytes(net: Any, kind: str, boards: list, metadata: dict[str, Any], bias_correction: bool,
                equalize: bool) -> bytes:
    """The ONNX file of ``net``: exported, then (for onnx-int8) QDQ-quantized on ``boards``, its residual
    stream first equalized on them if ``equalize``."""
    import torch

    from engine import onnx_backend
    from engine.encoding import encode_batch
    from engine.equalization import equalize_stream
    from engine.model_file import fp32_module

    if kind == "onnx-int8" and equalize:
        net = equalize_stream(net, [encode_batch(boards)])
    model = onnx_backend.export_fp32(fp32_module(net))
    if kind == "onnx-int8":
        corrections: list[Any] = []
        model = _calibrate(boards, lambda batches, progress: onnx_backend.quantize_int8(
            model, batches, progress, bias_correction=bias_correction, layer_progress=_layer_bar("correcting biases"),
            on_correction=corrections.append))
        metadata.update(bias_correction=_correction_summary(corrections), equalized=equalize)
    metadata.update(format_version=1, torch_version=torch.__version__,
                    onnxruntime_version=onnx_backend.runtime_version())
    return onnx_backend.model_bytes(model, metadata)


def _calibrate(boards: list, quantize: Callable[[Iterator[Any], Callable[[int], Any]], Any]) -> Any:
    """Run ``quantize(batches, progress)`` over ``boards`` encoded in batches of 64, with a progress bar."""
    from tqdm import tqdm

    from engine.encoding import encode_batch

    batches = (encode_batch(boards[i:i + 64]) for i in range(0, len(boards), 64))
    with tqdm(total=len(boards), desc="calibrating", unit="pos", file=sys.stderr, leave=False) as bar:
        return quantize(batches, bar.update)


def _correction_summary(corrections: list[Any]) -> dict[str, Any] | None:
    """The bias correction's outcome for the metadata and the report (None: it was not asked for)."""
    if not corrections:
        return None
    c = corrections[0]
    return {"kept": c.kept, "layers": c.layers, "calibration_value_rmse": list(c.value_rmse),
            "calibration_logits_rmse": list(c.logits_rmse)}


def _layer_bar(description: str) -> Callable[[int, int], None]:
    """A ``layer_progress(done, total)`` callback drawing a progress bar of the layers done."""
    from tqdm import tqdm

    bar: list[Any] = []

    def update(done: int, total: int) -> None:
        if not bar:
            bar.append(tqdm(total=total, desc=description, unit="layer", file=sys.stderr, leave=False))
        bar[0].update(done - bar[0].n)
        if done == total:
            bar[0].close()
    return update


def format_report(r: dict[str, Any]) -> str:
    """The human-readable report printed after quantizing."""
    a = r["accuracy"]
    lines = [
        f"wrote {r['output']} ({r['type']}, {r['blocks']}x{r['filters']}) in {r['seconds']:.1f} s",
        f"  layers: {r['int8_layers']}",
        f"  size on disk: fp32 {r['fp32_bytes'] / 1e6:.2f} MB -> {r['type']} {r['output_bytes'] / 1e6:.2f} MB "
        f"({100 * r['size_ratio']:.1f}% of fp32)",
    ]
    if r.get("calibration_positions"):
        engine_used = f", qengine {r['qengine']}" if r.get("qengine") else ""
        lines.append(f"  calibration: {r['calibration_positions']} positions{engine_used}")
    if r.get("equalized") is not None:
        parts = [f"weights rounded by {r['weight_rounding']}"] if r.get("weight_rounding") else []
        parts.append("residual stream equalized" if r["equalized"] else "residual stream not equalized")
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


