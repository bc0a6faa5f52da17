"""Where static int8's error comes from, and whether error-compensating weight rounding (GPTQ) helps.

    python -m benchmarks.experiments.weight_rounding [--model M] [--positions 512]

Rows, each compared with the fp32 network (BatchNorm folded) on held-out positions (value RMSE, maximum
value error, top-1 move agreement over the legal moves):

1. weight rounding only, float activations: every conv/Linear weight rounded to per-channel symmetric
   int8 to nearest (RTN), or by GPTQ (Frantar et al., 2022): columns rounded one at a time, each
   rounding error spread over the columns not yet rounded in proportion to the inverse of the layer's
   input Gram matrix, which is collected on the built-in calibration positions with the earlier layers
   already rounded;
2. static int8 (int8 activations too) without the residual stream's equalization, with round-to-nearest
   or GPTQ weights (the same scales, computed in one forward pass over the calibration positions through
   the int8 network itself), each with and without bias correction;
3. the shipped recipe (``engine.quant.torch_int8.quantize_static``: equalized, GPTQ on the first 512
   calibration positions, bias corrected) and the same with round-to-nearest weights.

GPTQ itself is ``engine.quant.gptq``.
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch
from torch import nn

from benchmarks.common import header
from engine import default_model_path, encode_batch
from engine.nets.files import read_weights
from engine.nets.torch_files import build_network
from engine.priors import legal_move_indices
from engine.quant.calibration import builtin_calibration_planes
from engine.quant.calibration import heldout_positions as builtin_heldout_boards
from engine.quant.gptq import gptq_round, gram, round_weights_gptq
from engine.quant.torch_int8 import (
    DEFAULT_QENGINE,
    correct_bias,
    fold_batchnorm,
    quantize_static,
    quiet,
    set_qengine,
    static_qconfig_mapping,
)


def nearest(weight: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric int8 round-to-nearest (scale = max |w| / 127.5, as torch's observer)."""
    rows = weight.reshape(weight.shape[0], -1)
    step = rows.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127.5
    return (torch.clamp(torch.round(rows / step), -128, 127) * step).reshape(weight.shape)


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """The float conv and Linear layers, in definition order (which is graph order here)."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def gptq_float(model: nn.Module, calibration: torch.Tensor) -> nn.Module:
    """A copy of the float ``model`` with every weight GPTQ-rounded, layer by layer."""
    model = copy.deepcopy(model)
    with torch.inference_mode():
        for layer in weight_layers(model):
            grams: list[torch.Tensor] = []
            handle = layer.register_forward_pre_hook(lambda m, inputs, g=grams: g.append(gram(inputs[0], m)))
            model(calibration)
            handle.remove()
            scales = layer.weight.reshape(len(layer.weight), -1).abs().amax(1).clamp_min(1e-12) / 127.5
            layer.weight.copy_(gptq_round(layer.weight, grams[0], scales))
    return model


def static_int8(net: nn.Module, calibration: torch.Tensor) -> tuple[nn.Module, nn.Module]:
    """The shipped static recipe without bias correction: (the calibrated float model, the int8 model)."""
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    set_qengine(DEFAULT_QENGINE)
    with quiet(), torch.inference_mode():
        prepared = prepare_fx(copy.deepcopy(net).eval(), static_qconfig_mapping(DEFAULT_QENGINE), (calibration[:1],))
        for start in range(0, len(calibration), 256):
            prepared(calibration[start:start + 256])
        return copy.deepcopy(prepared), convert_fx(prepared)


def main() -> None:
    """Print the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="fp32 model file (default: the bundled network)")
    parser.add_argument("--positions", type=int, default=512, help="held-out positions compared")
    parser.add_argument("--calibration", type=int, default=1024, help="built-in calibration positions used")
    args = parser.parse_args()
    header("weight rounding: round-to-nearest vs GPTQ")
    torch.set_num_threads(1)
    net = build_network(read_weights(args.model or default_model_path())).eval()
    reference = fold_batchnorm(net)
    boards = builtin_heldout_boards()[: args.positions]
    planes = torch.from_numpy(encode_batch(boards))
    legal = [legal_move_indices(board)[1] for board in boards]
    calibration_np = builtin_calibration_planes()[: args.calibration]
    calibration = torch.from_numpy(calibration_np)
    with torch.inference_mode():
        ref_logits, ref_values = (t.numpy() for t in reference(planes))

    def row(name: str, model: nn.Module) -> None:
        with torch.inference_mode():
            logits, values = (t.numpy() for t in model(planes))
        error = values - ref_values
        agree = np.mean([np.argmax(logits[i][ix]) == np.argmax(ref_logits[i][ix]) for i, ix in enumerate(legal)])
        print(f"{name:60s} {np.sqrt(np.mean(error ** 2)):>10.4f} {np.abs(error).max():>9.3f} {agree:>7.1%}",
              flush=True)

    print(f"{'':60s} {'value RMSE':>10} {'max error':>9} {'top-1':>7}")
    rtn = copy.deepcopy(reference)
    with torch.no_grad():
        for layer in weight_layers(rtn):
            layer.weight.copy_(nearest(layer.weight))
    row("weights only, round to nearest", rtn)
    row("weights only, GPTQ", gptq_float(reference, calibration))

    for gptq in (False, True):
        for bias_correction in (False, True):
            calibrated, quantized = static_int8(net, calibration)
            if gptq:
                round_weights_gptq(calibrated, quantized, [calibration_np])
            if bias_correction:
                with quiet():
                    correct_bias(calibrated, quantized, [calibration_np])
            rounding = "GPTQ" if gptq else "round to nearest"
            row(f"static int8, {rounding}, {'with' if bias_correction else 'no'} bias correction", quantized)
    batches = [calibration_np[i:i + 64] for i in range(0, len(calibration_np), 64)]
    row("shipped recipe with nearest rounding (equalized, corrected)",
        quantize_static(net, batches, weight_rounding="nearest"))
    row("shipped recipe (equalized, GPTQ, corrected)", quantize_static(net, batches))


if __name__ == "__main__":
    main()
