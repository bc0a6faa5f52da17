"""Torch evaluators of model files: int8 files as they are, fp32 files as fp32 or converted in memory."""

from __future__ import annotations

from torch import nn

from .backends import onnx_backend
from .backends.torch_backend import TorchEvaluator, set_torch_threads
from .errors import ModelFileError
from .interface import PLANES_OF_INPUT, Evaluator, ModelInfo
from .nets.alphazero import AlphaZeroNet
from .nets.lc0.adapter import Lc0Evaluation
from .nets.seresnet import SEResNet
from .nets.torch_files import build_network, summary
from .nets.weights_file import WeightsFile
from .quant import onnx_int8, torch_int8
from .quant.calibration import builtin_calibration_planes


def fp32_module(net: AlphaZeroNet | SEResNet | Lc0Evaluation) -> nn.Module:
    """The fastest fp32 form: BatchNorm folded into the convolutions, run eagerly (docs/PERFORMANCE.md)."""
    return torch_int8.fold_batchnorm(net)


def int8_evaluator(weights: WeightsFile, threads: int | None) -> Evaluator:
    """The evaluator of an int8 file: a TorchScript archive, or pytorch-alpha-zero's dynamic-int8 state_dict."""
    set_torch_threads(threads)
    module = weights.module if weights.module is not None else _dynamic_state_dict_module(weights)
    return TorchEvaluator(module, weights.kind, weights.info(), threads)


def converted_evaluator(weights: WeightsFile, backend: str, threads: int | None) -> Evaluator:
    """An fp32 file run as ``backend``: fp32 as it is, any other kind converted in memory now."""
    set_torch_threads(threads)
    net = build_network(weights)
    info = weights.info(backend)
    if backend in onnx_backend.ONNX_KINDS:
        return _onnx_in_memory(net, backend, info, threads)
    if backend == "fp32":
        module = net if isinstance(net, Lc0Evaluation) else fp32_module(net)
    elif backend == "dynamic-int8":
        module = torch_int8.to_torchscript(torch_int8.quantize_dynamic_linear(torch_int8.fold_batchnorm(net)),
                                           PLANES_OF_INPUT[info.input_format])
        info.notes.append("dynamic-int8 quantized in memory (Linear layers int8, convolutions fp32)")
        if isinstance(net, SEResNet | Lc0Evaluation):
            info.notes.append(f"the {net.family} family's policy head has no Linear layer: only its "
                              f"squeeze-excitation and value Linear layers are int8")
    else:
        planes = builtin_calibration_planes(info.input_format)
        # weights rounded to nearest: GPTQ would make a large network's load take minutes
        module = torch_int8.to_torchscript(torch_int8.quantize_static(net, [planes], weight_rounding="nearest"),
                                           planes.shape[1])
        info.notes.append(f"static-int8 quantized in memory, calibrated on {len(planes)} built-in positions, "
                          f"weights rounded to nearest; 'azengine quantize' saves a more accurate file (GPTQ)")
    return TorchEvaluator(module, backend, info, threads)


def _dynamic_state_dict_module(weights: WeightsFile) -> nn.Module:
    """pytorch-alpha-zero's dynamic-quantized state_dict loaded into a dynamic-quantized network."""
    reference = AlphaZeroNet(weights.blocks, weights.filters)
    module = torch_int8.quantize_dynamic_linear(reference)
    try:
        module.load_state_dict(weights.state_dict, strict=True)  # type: ignore[arg-type]
    except (RuntimeError, KeyError) as exc:
        raise ModelFileError(weights.path, f"dynamic-int8 tensors do not fit a {weights.blocks}x"
                                           f"{weights.filters} AlphaZeroNet ({summary(exc)})") from None
    # load_state_dict does not check the shapes of packed int8 weights: compare them here
    for name in ("valueHead.fc1", "valueHead.fc2", "policyHead.fc1"):
        expected = list(reference.get_submodule(name).weight.shape)
        got = list(module.get_submodule(name).weight().shape)
        if got != expected:
            raise ModelFileError(weights.path, f"dynamic-int8 weight {name} has shape {got}, expected {expected} "
                                               f"for a {weights.blocks}x{weights.filters} AlphaZeroNet")
    return module.eval()


def _onnx_in_memory(net: AlphaZeroNet | SEResNet | Lc0Evaluation, backend: str, info: ModelInfo,
                    threads: int | None) -> Evaluator:
    """An ONNX evaluator of an fp32 network, exported (and for int8, quantized) now."""
    model = onnx_int8.export_fp32(fp32_module(net), net.family)
    if backend == "onnx-int8":
        planes = builtin_calibration_planes(info.input_format)
        model = onnx_int8.quantize_int8(model, [planes[i:i + 64] for i in range(0, len(planes), 64)],
                                        family=net.family)
        info.notes.append(f"onnx-int8 quantized in memory, calibrated on {len(planes)} built-in positions; "
                          f"run 'azengine quantize --format onnx --type static' to save it")
    else:
        info.notes.append("exported to ONNX in memory; run 'azengine quantize --format onnx --type fp32' to save it")
    data = onnx_int8.model_bytes(model, {"kind": backend, "family": net.family, "blocks": info.blocks,
                                         "filters": info.filters})
    return onnx_backend.OnnxEvaluator(data, backend, info, threads)

