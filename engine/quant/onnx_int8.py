"""ONNX export of a network and its static int8 (QDQ) conversion with ONNX Runtime's quantizer.

Export uses torch's ``torch.export``-based ONNX exporter; int8 uses ONNX Runtime's static quantization
in QDQ format (per-channel int8 weights, uint8 activations calibrated on real positions), then the same
empirical bias correction as the torch path.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..backends.onnx_backend import INPUT_NAME, METADATA_KEY, OUTPUT_NAMES_OF_FAMILY, make_session, require
from ..backends.torch_backend import quiet
from .bias_correction import BIAS_CORRECTION_POSITIONS, BiasCorrection, FirstPositions, output_errors


def export_fp32(module: Any, family: str = "alphazero") -> Any:
    """ONNX ``ModelProto`` of a torch module mapping planes ``(B, 16, 8, 8)`` (``(B, module.input_planes, 8,
    8)`` for a module that has the attribute, e.g. lc0's 112) to (logits, values), or for the ``seresnet``
    and ``lc0`` families to (logits, wdl): the outputs are named as ``OUTPUT_NAMES_OF_FAMILY`` says.

    Pass the BatchNorm-folded fp32 module; the batch dimension stays dynamic.
    """
    require("onnx")
    require("onnxscript")
    example = (torch.zeros(2, getattr(module, "input_planes", 16), 8, 8),)
    batch = torch.export.Dim("batch", min=1, max=65536)
    exporter_log = logging.getLogger("torch.onnx")  # it warns that torchvision's ops are not registered
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with quiet(), torch.inference_mode(False):
            program = torch.onnx.export(module.eval(), example, input_names=[INPUT_NAME],
                                        output_names=list(OUTPUT_NAMES_OF_FAMILY[family]), dynamic_shapes=({0: batch},),
                                        dynamo=True, verbose=False, optimize=True)
    finally:
        exporter_log.setLevel(level)
    return program.model_proto


class _Batches:
    """ONNX Runtime's CalibrationDataReader protocol over float32 plane batches."""

    def __init__(self, batches: Iterable[np.ndarray], progress: Any = None, keep: int = 0) -> None:
        self._batches = iter(batches)
        self._progress = progress
        #: the first ``keep`` positions, for the bias correction
        self.kept = FirstPositions(keep)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        if batch is None:
            return None
        if self._progress is not None:
            self._progress(len(batch))
        planes = np.ascontiguousarray(batch, dtype=np.float32)
        self.kept.add(planes)
        return {INPUT_NAME: planes}


def quantize_int8(fp32_model: Any, calibration_batches: Iterable[np.ndarray], progress: Any = None,
                  bias_correction: bool = True, layer_progress: Any = None, on_correction: Any = None,
                  family: str = "alphazero") -> Any:
    """Static int8 QDQ ``ModelProto`` of an fp32 ONNX model, activation ranges calibrated on the batches.

    Weights: per-channel symmetric int8. Activations: uint8 (int8 activations ran much slower),
    MinMax-calibrated. Every Conv but the input one, the skip Adds and the Gemms run in int8 (ReLUs fold
    into the quantization ranges); the Gemms' outputs (the policy logits among them), the input Conv
    (see ``engine.quant.torch_int8.INPUT_CONV``), the final Tanh, the
    reshapes and the outputs stay fp32; so do (``seresnet``) the convolution that makes the policy logits
    and the WDL Softmax; (``lc0``) the policy's last convolution and the gather of its 1858 moves after it,
    and each block's squeeze-excitation. With ``bias_correction`` the int8 layers' biases are then
    corrected on the first calibration positions (:func:`correct_bias`; ``on_correction`` gets its
    ``BiasCorrection``).
    """
    onnx = require("onnx")
    quantization = require("onnxruntime.quantization")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs advice through the root logger
    try:
        with tempfile.TemporaryDirectory(prefix="azengine-onnx-") as tmp:
            source, prepared, target = (Path(tmp) / name for name in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
            onnx.save_model(fp32_model, str(source))
            # shape inference and graph optimisation first: faster int8 inference
            # (lc0 networks: ONNX's own shape inference, not ONNX Runtime's symbolic one)
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=family == "lc0")
            batches = _Batches(calibration_batches, progress, BIAS_CORRECTION_POSITIONS if bias_correction else 0)
            quantization.quantize_static(
                str(prepared), str(target), batches,
                nodes_to_exclude=_fp32_nodes(onnx.load_model(str(prepared)), family),
                quant_format=quantization.QuantFormat.QDQ, per_channel=True,
                activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
                calibrate_method=quantization.CalibrationMethod.MinMax,
                # fp32 Gemm outputs: int8 logits reorder near-equal moves
                extra_options={"OpTypesToExcludeOutputQuantization": ["Gemm"]},
            )
            model = onnx.load_model(str(target))
            if bias_correction:
                correction = correct_bias(onnx.load_model(str(prepared)), model,
                                          np.concatenate(batches.kept.batches), layer_progress)
                if on_correction is not None:
                    on_correction(correction)
            return model
    finally:
        root.setLevel(level)


def _output_means(model: Any, names: list[str], planes: np.ndarray) -> list[np.ndarray]:
    """Per channel (axis 1), the mean of each named tensor of ``model`` over ``planes``."""
    import onnx

    probed = onnx.ModelProto()
    probed.CopyFrom(model)
    probed.graph.output.extend(onnx.ValueInfoProto(name=name) for name in names)
    session = make_session(probed.SerializeToString(), threads=None)
    sums: list[np.ndarray] = []
    for start in range(0, len(planes), 256):
        outputs = session.run(names, {INPUT_NAME: planes[start:start + 256]})
        batch_sums = [o.sum(axis=tuple(d for d in range(o.ndim) if d != 1), dtype=np.float64) for o in outputs]
        sums = [a + b for a, b in zip(sums, batch_sums, strict=True)] if sums else batch_sums
    per_position = [o.size // (o.shape[0] * o.shape[1]) for o in outputs]  # values per channel and position
    return [total / (len(planes) * count) for total, count in zip(sums, per_position, strict=True)]


def correct_bias(reference: Any, quantized: Any, planes: np.ndarray, layer_progress: Any = None) -> Any:
    """Empirical bias correction of a QDQ model, in place (see :func:`engine.quant.bias_correction.correct_bias`);
    returns its ``BiasCorrection``, and undoes it unless neither output got further from fp32.

    For each Conv and Gemm with an int32 bias, in graph order, the mean per channel of what the next layer
    sees (the output after its QuantizeLinear/DequantizeLinear pair, or the fp32 output of a Gemm) is
    compared with the same tensor of ``reference`` (the fp32 model the quantizer started from, whose tensor
    names the QDQ model keeps), and the difference, in units of the bias scale, is taken off the bias.
    One session per layer, so each correction sees the earlier ones. ``layer_progress(done, total)``.
    """
    from onnx import numpy_helper

    producers = {output: node for node in quantized.graph.node for output in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in quantized.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    initializers = {tensor.name: tensor for tensor in quantized.graph.initializer}

    def seen_by_next_layer(tensor: str) -> str:
        after = consumers.get(tensor, [])
        if len(after) == 1 and after[0].op_type == "QuantizeLinear":
            dequantized = consumers.get(after[0].output[0], [])
            if len(dequantized) == 1 and dequantized[0].op_type == "DequantizeLinear":
                return str(dequantized[0].output[0])
        return tensor

    layers = []  # (bias initializer, its scale, tensor to measure in `quantized`, same tensor in `reference`)
    for node in quantized.graph.node:
        bias = producers.get(node.input[2]) if node.op_type in ("Conv", "Gemm") and len(node.input) > 2 else None
        if bias is not None and bias.op_type == "DequantizeLinear" and bias.input[0] in initializers:
            layers.append((bias.input[0], bias.input[1], seen_by_next_layer(node.output[0]), node.output[0]))
    original = {layer[0]: numpy_helper.to_array(initializers[layer[0]]) for layer in layers}
    fp32 = _outputs(reference, planes)
    before = output_errors(fp32, _outputs(quantized, planes))
    targets = _output_means(reference, [layer[3] for layer in layers], planes)
    for done, ((bias, scale, measured, _), target) in enumerate(zip(layers, targets, strict=True), start=1):
        error = _output_means(quantized, [measured], planes)[0] - target
        steps = np.round(error / numpy_helper.to_array(initializers[scale]))
        corrected = np.clip(numpy_helper.to_array(initializers[bias]) - steps, -(2**31), 2**31 - 1)
        initializers[bias].CopyFrom(numpy_helper.from_array(corrected.astype(np.int32), bias))
        if layer_progress is not None:
            layer_progress(done, len(layers))
    after = output_errors(fp32, _outputs(quantized, planes))
    result = BiasCorrection(len(layers), (before[0], after[0]), (before[1], after[1]))
    if not result.kept:
        for name, values in original.items():
            initializers[name].CopyFrom(numpy_helper.from_array(values, name))
    return result


def _outputs(model: Any, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A model's (logits, values or wdl) for ``planes``, in batches of 256."""
    session = make_session(model.SerializeToString(), threads=None)
    parts = [session.run(None, {INPUT_NAME: planes[start:start + 256]}) for start in range(0, len(planes), 256)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]).reshape(-1)


def _input_conv(model: Any) -> str:
    """The name of the Conv node that reads the graph's input planes."""
    planes = model.graph.input[0].name
    return next(node.name for node in model.graph.node if node.op_type == "Conv" and planes in node.input)


def _fp32_nodes(model: Any, family: str = "alphazero") -> list[str]:
    """Nodes the int8 conversion leaves fp32: the input Conv, every Softmax (WDL probabilities), a Conv
    that makes the policy logits (through reshapes only: the ``seresnet`` family's last policy layer) and
    for ``seresnet`` each block's squeeze-excitation (as in torch static int8,
    ``engine.quant.torch_int8.fp32_modules_of``); for ``lc0``, :func:`_lc0_fp32_nodes`."""
    if family == "lc0":
        return _lc0_fp32_nodes(model)
    producers = {output: node for node in model.graph.node for output in node.output}
    names = [_input_conv(model)] + [node.name for node in model.graph.node if node.op_type == "Softmax"]
    node = producers.get(model.graph.output[0].name)
    while node is not None and node.op_type in ("Reshape", "Flatten", "Identity"):
        node = producers.get(node.input[0])
    if node is not None and node.op_type == "Conv":
        names.append(node.name)
    if family == "seresnet":
        nodes = list(model.graph.node)
        names.extend(sorted(_squeeze_excitation_nodes(nodes, {node.name for node in nodes})))
    return names


def _lc0_fp32_nodes(model: Any) -> list[str]:
    """The nodes of an lc0 network's graph that stay fp32: every node not downstream of the input Conv
    (the first Conv; constants), the input Conv itself, the last Conv
    that feeds only the policy output and every node after it (the policy gather), every Softmax, and each
    block's squeeze-excitation (as in torch static int8: ``engine.quant.torch_int8.LC0_FP32_MODULES``)."""
    nodes = list(model.graph.node)  # topologically sorted
    consumers: dict[str, list[Any]] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def downstream(start: Any) -> set[str]:
        seen, stack = set(), [start]
        while stack:
            node = stack.pop()
            if node.name in seen:
                continue
            seen.add(node.name)
            stack.extend(c for output in node.output for c in consumers.get(output, []))
        return seen

    convs = [node for node in nodes if node.op_type == "Conv"]
    body = downstream(convs[0])
    producers = {output: node.name for node in nodes for output in node.output}
    policy_output = producers[model.graph.output[0].name]
    value_output = producers[model.graph.output[1].name]
    policy_conv = next(conv for conv in reversed(convs)
                       if policy_output in (after := downstream(conv)) and value_output not in after)
    excluded = {node.name for node in nodes if node.name not in body} | downstream(policy_conv) | {convs[0].name}
    excluded |= {node.name for node in nodes if node.op_type == "Softmax"}
    excluded |= _squeeze_excitation_nodes(nodes, body)
    return [node.name for node in nodes if node.name in excluded]


#: Where a walk back from a squeeze-excitation's multiply stops: the block's convolution (its input, not
#: part of the SE) and the pooling that starts the SE (included).
_SE_POOLS = ("GlobalAveragePool", "ReduceMean", "AveragePool")


def _squeeze_excitation_nodes(nodes: list[Any], body: set[str]) -> set[str]:
    """The nodes of every squeeze-excitation in a network's graph: each Mul of the network's body, the
    Add that takes its output (the SE's bias), and what feeds them back to the pooling, not the Conv."""
    producers = {output: node for node in nodes for output in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found: set[str] = set()

    def walk_back(start: Any) -> None:
        stack = [start]
        while stack:
            node = stack.pop()
            if node.name in found or node.op_type == "Conv" or node.name not in body:
                continue
            found.add(node.name)
            if node.op_type not in _SE_POOLS:
                stack.extend(producers[name] for name in node.input if name in producers)

    for mul in (node for node in nodes if node.op_type == "Mul" and node.name in body):
        walk_back(mul)
        for add in consumers.get(mul.output[0], []):
            if add.op_type == "Add":
                walk_back(add)
    return found


def model_bytes(model: Any, metadata: dict[str, Any]) -> bytes:
    """Serialise an ONNX model with ``metadata`` (JSON) as its ``azengine`` metadata entry."""
    import onnx

    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(metadata, sort_keys=True)})
    return model.SerializeToString()
