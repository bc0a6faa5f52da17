"""What to make of an fp32 network: the output kind and the steps of its conversion."""

from __future__ import annotations

from dataclasses import dataclass

from .calibration import DEFAULT_CALIBRATION_SIZE
from .torch_int8 import DEFAULT_QENGINE, WEIGHT_ROUNDINGS

#: Kinds ``quantize`` makes, and which layers end up int8 in each (also written into the file's metadata).
LAYERS = {
    "dynamic-int8": "int8: Linear layers (policyHead.fc1, valueHead.fc1, valueHead.fc2; per-channel weights), "
                    "their inputs quantized per batch at run time; fp32: all convolutions",
    "static-int8": "int8: every convolution (BatchNorm folded, ReLU fused; with fp32_input_conv all but the "
                   "input one), the skip additions, the value head's Linear layers and the activations between "
                   "them; dynamic int8: the policy Linear (policyHead.fc1, per-channel weights); fp32: the input "
                   "and the two outputs",
    "onnx-fp32": "none: every layer fp32 (BatchNorm folded)",
    "onnx-int8": "int8 (QDQ): every convolution but the input one (BatchNorm folded), the skip additions, the "
                 "Linear layers and the activations between them; fp32: the input convolution, the input, the "
                 "Linear layers' outputs (the policy logits among them), the value tanh and the two outputs",
}
#: The same for the ``seresnet`` family (squeeze-excitation, convolutional policy, WDL head).
SERESNET_LAYERS = {
    "dynamic-int8": "int8: Linear layers (squeeze-excitation fc1/fc2, value.fc1, value.fc2; per-channel weights), "
                    "their inputs quantized per batch at run time; fp32: all convolutions and the WDL softmax",
    "static-int8": "int8: every convolution but the policy's last (BatchNorm folded, ReLU fused; with "
                   "fp32_input_conv also not the input one), the skip additions, value.fc1 and the activations "
                   "between them; fp32: the input, each block's squeeze-excitation (pool, Linear layers, sigmoid, "
                   "multiply, add), the policy's last 1x1 convolution (the logits), value.fc2 (the WDL logits) "
                   "and the softmax",
    "onnx-fp32": "none: every layer fp32 (BatchNorm folded)",
    "onnx-int8": "int8 (QDQ): every convolution but the input one and the policy's last (BatchNorm folded), the "
                 "skip additions, the value head's Linear layers and the activations between them; fp32: the "
                 "input and policy's last convolutions, each block's squeeze-excitation, the Linear layers' "
                 "outputs, the WDL softmax and the two outputs",
}
#: The same for ``lc0`` networks (:class:`engine.nets.lc0.adapter.Lc0Evaluation`: lc0's 112 planes in, its
#: 1858 move logits and W/D/L out; the WDL softmax after the network is fp32 in every kind).
LC0_LAYERS = {
    "dynamic-int8": "int8: Linear layers (squeeze-excitation fc1/fc2, value_fc1, value_fc2; per-channel weights), "
                    "their inputs quantized per batch at run time; fp32: all convolutions, the gather of the 1858 "
                    "move logits and the WDL softmax",
    "static-int8": "int8: every convolution but the policy's last (ReLU fused; with fp32_input_conv also not the "
                   "input one), the skip additions, value_fc1 and the activations between them; fp32: each block's "
                   "squeeze-excitation (pool, Linear layers, sigmoid, multiply, add), the policy's last 3x3 "
                   "convolution (the logits) and the gather of its 1858 moves, value_fc2 (the WDL logits) and the "
                   "softmax",
    "onnx-fp32": "none: every layer fp32",
    "onnx-int8": "int8 (QDQ): every convolution but the input one and the policy's last, the skip additions, the "
                 "value head's Linear layers and the activations between them; fp32: the input and policy's last "
                 "convolutions, each block's squeeze-excitation, the gather of the 1858 move logits, the Linear "
                 "layers' outputs, the WDL softmax and the two outputs",
}
LAYERS_OF_FAMILY = {"alphazero": LAYERS, "seresnet": SERESNET_LAYERS, "lc0": LC0_LAYERS}
#: Kinds calibrated on positions (the others need none).
CALIBRATED = ("static-int8", "onnx-int8")
QENGINES = ("x86", "fbgemm", "onednn", "qnnpack")


class RecipeError(ValueError):
    """A recipe whose settings do not go together (the message says which and why)."""


@dataclass(frozen=True)
class Recipe:
    """How to convert an fp32 network: the output ``kind`` (a key of :data:`LAYERS`) and its steps.

    ``equalize`` and ``bias_correction`` apply to both static kinds; ``weight_rounding``,
    ``fp32_input_conv`` and ``qengine`` to TorchScript static int8 only.
    """

    kind: str
    calibration_size: int = DEFAULT_CALIBRATION_SIZE
    qengine: str = DEFAULT_QENGINE
    fp32_input_conv: bool = False
    bias_correction: bool = True
    equalize: bool = True
    weight_rounding: str = WEIGHT_ROUNDINGS[0]

    def check(self) -> None:
        """:class:`RecipeError` for settings that do not apply to ``kind`` or are out of range."""
        if self.kind not in LAYERS:
            raise RecipeError(f"unknown kind {self.kind!r}; expected one of {', '.join(LAYERS)}")
        if self.qengine not in QENGINES:
            raise RecipeError(f"unknown quantized engine {self.qengine!r}; expected one of {', '.join(QENGINES)}")
        if self.weight_rounding not in WEIGHT_ROUNDINGS:
            raise RecipeError(f"weight rounding {self.weight_rounding!r}: expected one of "
                              f"{', '.join(WEIGHT_ROUNDINGS)}")
        if self.fp32_input_conv and self.kind != "static-int8":
            raise RecipeError("fp32_input_conv applies to TorchScript static int8 only (ONNX int8 always keeps the "
                              "input convolution fp32)")
        if self.kind in CALIBRATED and self.calibration_size < 1:
            raise RecipeError(f"the calibration size must be at least 1, not {self.calibration_size}")

    @property
    def calibrated(self) -> bool:
        """Whether this kind needs calibration positions."""
        return self.kind in CALIBRATED
