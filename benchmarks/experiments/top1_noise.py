"""How much logit error top-1 move agreement tolerates, and how much each int8 network has.

Top-1 agreement with fp32 is decided by the positions whose two best moves are nearly tied. This script
measures, on the built-in held-out positions:

- the fp32 network's gap between its best and second-best legal logit;
- the top-1 agreement that Gaussian noise of a given standard deviation on fp32's logits leaves (the mean
  of ``--draws`` draws): the logit error a network may have for a given agreement;
- for each int8 network, its logit error (legal moves only, each position's mean error removed, since a
  shift common to all moves changes no probability) and its top-1 agreement, evaluated at batch 1 and
  128 (the policy Linear quantizes its input per batch, so its error depends on the batch);
- the same for the fp32 network with only the policy Linear's weights rounded to int8 (per channel, to
  nearest or by GPTQ, its input float), with only the policy Linear in dynamic int8 (its input rounded
  too), and for the static recipe (in memory) with its policy Linear put back to fp32 afterwards: the
  share of the error that comes from the trunk's int8 activations and weights.

    python -m benchmarks.experiments.top1_noise [--model engine/models/azengine_default.pt] [--int8 FILE ...]
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

import engine
from benchmarks.experiments.quant_recipes import POLICY_FC, as_evaluator, weight_only_int8
from engine.encoding import encode_batch
from engine.interface import Evaluator
from engine.loader import load_model
from engine.nets.files import read_weights, sibling_path
from engine.nets.torch_files import build_network
from engine.priors import legal_move_indices
from engine.quant import torch_int8 as quantization
from engine.quant.accuracy import evaluate_all as evaluate
from engine.quant.calibration import builtin_calibration_planes, heldout_positions
from engine.quant.gptq import gptq_round, gram

CALIBRATION_POSITIONS = 1024
NOISE_LEVELS = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1)
GAPS = (0.01, 0.02, 0.05, 0.1)


def top1_agreement(reference: np.ndarray, other: np.ndarray, legal: list[np.ndarray]) -> float:
    """Share of positions whose best legal move is the same in both logit arrays."""
    return float(np.mean([np.argmax(reference[i][ix]) == np.argmax(other[i][ix]) for i, ix in enumerate(legal)]))


def centred_logit_error(reference: np.ndarray, other: np.ndarray, legal: list[np.ndarray]) -> float:
    """Root mean square of the legal logits' error, each position's mean error removed."""
    errors = []
    for i, ix in enumerate(legal):
        error = other[i][ix].astype(np.float64) - reference[i][ix]
        errors.append(error - error.mean())
    return float(np.sqrt(np.mean(np.concatenate(errors) ** 2)))


def policy_weights_gptq(net: nn.Module, calibration: np.ndarray) -> nn.Module:
    """fp32 network whose policy Linear has per-channel int8 weights rounded by GPTQ on the Gram matrix of
    its float inputs over ``calibration`` (no activation quantization)."""
    net = copy.deepcopy(net)
    layer = net.get_submodule(POLICY_FC)
    inputs: list[torch.Tensor] = []
    handle = layer.register_forward_pre_hook(lambda _module, args: inputs.append(args[0]))
    with torch.inference_mode():
        net(torch.from_numpy(calibration))
    handle.remove()
    weight = layer.weight.detach()
    scales = weight.abs().amax(dim=1).double() / 127
    with torch.no_grad():
        layer.weight.copy_(gptq_round(weight, gram(inputs[0], layer), scales))
    return net


def static_trunk_only(net: nn.Module, calibration: np.ndarray) -> nn.Module:
    """The shipped static recipe on ``calibration``, then its policy Linear replaced by the fp32 one (the
    dynamic int8 layer takes float input, so the fp32 layer fits in its place)."""
    quantized = quantization.quantize_static(net, [calibration[i:i + 64] for i in range(0, len(calibration), 64)])
    quantized.get_submodule("policyHead").fc1 = net.get_submodule(POLICY_FC)
    return quantized


def main() -> None:
    """Print the gap distribution, the noise sweep and each int8 network's logit error."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=engine.default_model_path())
    parser.add_argument("--int8", type=Path, nargs="*", default=None,
                        help="int8 files of --model (default: its static-int8 TorchScript and ONNX files, if present)")
    parser.add_argument("--draws", type=int, default=5, help="noise draws per level")
    args = parser.parse_args()
    torch.set_num_threads(1)
    files = args.int8 if args.int8 is not None else [
        path for path in (sibling_path(args.model, "static-int8"), sibling_path(args.model, "onnx-int8"))
        if path.is_file()]

    boards = heldout_positions()
    planes = encode_batch(boards)
    legal = [np.unique(legal_move_indices(board)[1]) for board in boards]
    net = build_network(read_weights(args.model)).eval()
    reference, _ = evaluate(as_evaluator(net, "fp32"), planes, 128)
    print(f"{args.model}, {len(boards)} held-out positions")

    gaps = np.array([np.diff(np.sort(reference[i][ix])[-2:])[0] if len(ix) > 1 else np.inf
                     for i, ix in enumerate(legal)])
    print("fp32's best legal logit ahead of its second by less than: "
          + ", ".join(f"{g:g} in {100 * np.mean(gaps < g):.1f}%" for g in GAPS))

    rng = np.random.default_rng(0)
    print("\nGaussian noise on fp32's logits -> top-1 agreement")
    for sd in NOISE_LEVELS:
        agreement = np.mean([top1_agreement(reference, reference + rng.normal(0, sd, reference.shape), legal)
                             for _ in range(args.draws)])
        print(f"  sd {sd:5.3f}: {100 * agreement:5.1f}%")

    policy_only = quantization.quantize_dynamic_linear(net)
    policy_only.valueHead = net.valueHead  # the value head's Linear layers stay fp32
    calibration = builtin_calibration_planes()[:CALIBRATION_POSITIONS]
    networks: dict[str, Evaluator] = {
        f"fp32, {POLICY_FC} weights int8 (nearest)": as_evaluator(weight_only_int8(net, POLICY_FC), "nearest"),
        f"fp32, {POLICY_FC} weights int8 (GPTQ)": as_evaluator(policy_weights_gptq(net, calibration), "gptq"),
        f"fp32, only {POLICY_FC} dynamic int8": as_evaluator(policy_only, "policy"),
        f"static recipe, {POLICY_FC} fp32": as_evaluator(static_trunk_only(net, calibration), "trunk"),
    }
    networks.update({path.name: load_model(path, "auto", 1) for path in files})
    print(f"\n{'network':48s} {'batch':>5s} {'logit error':>11s} {'top-1':>7s}")
    for label, evaluator in networks.items():
        for batch in (1, 128):
            logits, _ = evaluate(evaluator, planes, batch)
            print(f"{label:48s} {batch:5d} {centred_logit_error(reference, logits, legal):11.4f} "
                  f"{100 * top1_agreement(reference, logits, legal):6.1f}%", flush=True)


if __name__ == "__main__":
    main()
