"""One entry point for every conversion: :func:`quantize` turns an fp32 network into the bytes of a model
file of the recipe's kind (TorchScript int8 archive or ONNX), with the metadata the loader reads."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import chess
import numpy as np
import torch

from ..backends import onnx_backend
from ..inputs import encode_for_format
from ..interface import AZ_INPUT, INPUT_OF_FAMILY
from ..nets.alphazero import AlphaZeroNet
from ..nets.lc0.adapter import Lc0Evaluation, evaluation_metadata
from ..nets.seresnet import SEResNet
from . import onnx_int8, torch_int8
from .bias_correction import BiasCorrection
from .equalization import equalizable, equalize_stream
from .recipe import LAYERS_OF_FAMILY, Recipe

#: Positions encoded and fed to the observers at a time.
CALIBRATION_BATCH = 64


@dataclass
class Progress:
    """Callbacks for progress bars: positions calibrated, and ``(stage, layers done, layers in all)``."""

    positions: Callable[[int], None] | None = None
    layers: Callable[[str, int, int], None] | None = None

    def stage(self, name: str) -> Callable[[int, int], None] | None:
        """A ``(done, total)`` callback for one stage, or None."""
        if self.layers is None:
            return None
        report = self.layers
        return lambda done, total: report(name, done, total)


@dataclass
class Quantized:
    """The result of :func:`quantize`: the file's bytes, its metadata and what the bias correction did."""

    data: bytes
    metadata: dict[str, Any]
    bias_correction: BiasCorrection | None = None
    notes: list[str] = field(default_factory=list)


def quantize(net: AlphaZeroNet | SEResNet | Lc0Evaluation, recipe: Recipe, positions: list[chess.Board],
             source: dict[str, Any] | None = None,
             progress: Progress | None = None) -> Quantized:
    """Convert ``net`` as ``recipe`` says, calibrating static kinds on ``positions`` (encoded as at inference).

    Any network family (the metadata's ``family`` says which; its ``int8_layers`` what is int8); an lc0
    network (:class:`Lc0Evaluation`) is calibrated on lc0's 112 planes of each position with its move stack,
    and its file takes those planes (metadata ``input_planes``).
    ``source`` goes into the metadata as it is (e.g. the fp32 file's name and where the positions came from).
    """
    recipe.check()
    progress = progress or Progress()
    metadata: dict[str, Any] = {"kind": recipe.kind, "family": net.family, "blocks": net.num_blocks,
                                "filters": net.num_filters, "int8_layers": LAYERS_OF_FAMILY[net.family][recipe.kind],
                                **(source or {})}
    if isinstance(net, SEResNet):
        metadata["se_channels"] = net.se_channels
        if net.capped:
            metadata["activation_caps"] = True
    if isinstance(net, Lc0Evaluation):
        metadata.update(evaluation_metadata(net))
    input_format = INPUT_OF_FAMILY.get(net.family, AZ_INPUT)
    if recipe.calibrated:
        if not positions:
            raise ValueError("static quantization needs at least one calibration position")
        metadata["calibration_positions"] = len(positions)
    corrections: list[BiasCorrection] = []
    equalize = recipe.equalize and equalizable(net)
    if recipe.kind == "dynamic-int8":
        module = torch_int8.quantize_dynamic_linear(torch_int8.fold_batchnorm(net))
        data = torch_int8.archive_bytes(module, metadata)
    elif recipe.kind == "static-int8":
        module = torch_int8.quantize_static(
            net, _batches(positions, progress, input_format), recipe.qengine, fp32_input_conv=recipe.fp32_input_conv,
            bias_correction=recipe.bias_correction, layer_progress=progress.stage("correcting biases"),
            on_correction=corrections.append, equalize=equalize, weight_rounding=recipe.weight_rounding,
            rounding_progress=progress.stage("rounding weights (GPTQ)"))
        metadata.update(qengine=recipe.qengine, fp32_input_conv=recipe.fp32_input_conv, equalized=equalize,
                        weight_rounding=recipe.weight_rounding, bias_correction=_summary(corrections))
        data = torch_int8.archive_bytes(module, metadata)
    else:
        if recipe.kind == "onnx-int8" and equalize:
            net = equalize_stream(net, [encode_for_format(input_format, positions)])
        model = onnx_int8.export_fp32(torch_int8.fold_batchnorm(net), net.family)
        if recipe.kind == "onnx-int8":
            model = onnx_int8.quantize_int8(model, _batches(positions, progress, input_format), family=net.family,
                                            bias_correction=recipe.bias_correction,
                                            layer_progress=progress.stage("correcting biases"),
                                            on_correction=corrections.append)
            metadata.update(bias_correction=_summary(corrections), equalized=equalize)
        metadata.update(format_version=1, torch_version=torch.__version__,
                        onnxruntime_version=onnx_backend.runtime_version())
        data = onnx_int8.model_bytes(model, metadata)
    return Quantized(data, metadata, corrections[0] if corrections else None)


def _batches(positions: list[chess.Board], progress: Progress, input_format: str) -> Iterator[np.ndarray]:
    """``positions`` encoded in ``input_format`` in batches, reporting each batch's size to
    ``progress.positions``."""
    for start in range(0, len(positions), CALIBRATION_BATCH):
        batch = encode_for_format(input_format, positions[start:start + CALIBRATION_BATCH])
        if progress.positions is not None:
            progress.positions(len(batch))
        yield batch


def _summary(corrections: list[BiasCorrection]) -> dict[str, Any] | None:
    """The bias correction's outcome for the metadata and the report (None: it was not asked for)."""
    if not corrections:
        return None
    c = corrections[0]
    return {"kept": c.kept, "layers": c.layers, "calibration_value_rmse": list(c.value_rmse),
            "calibration_logits_rmse": list(c.logits_rmse)}
