"""Int8 conversion of fp32 networks, as one pipeline with one entry point::

    from engine.quant import Recipe, quantize, calibration_positions, compare
    result = quantize(net, Recipe("static-int8"), calibration_positions())
    # result.data: the model file's bytes; compare(fp32_evaluator, int8_evaluator, boards): accuracy

Steps (modules): calibration positions (:mod:`.calibration`), channel equalization (:mod:`.equalization`),
GPTQ weight rounding (:mod:`.gptq`), torch dynamic/static int8 and archives (:mod:`.torch_int8`), ONNX
export and int8 (:mod:`.onnx_int8`), bias correction (:mod:`.bias_correction`), accuracy (:mod:`.accuracy`).
"""

from __future__ import annotations

from .accuracy import Accuracy, compare
from .calibration import DEFAULT_CALIBRATION_SIZE, calibration_positions, heldout_positions, read_positions
from .pipeline import Progress, Quantized, quantize
from .recipe import LAYERS, QENGINES, Recipe, RecipeError

__all__ = [
    "DEFAULT_CALIBRATION_SIZE",
    "LAYERS",
    "QENGINES",
    "Accuracy",
    "Progress",
    "Quantized",
    "Recipe",
    "RecipeError",
    "calibration_positions",
    "compare",
    "heldout_positions",
    "quantize",
    "read_positions",
]
