"""Experiment: quantization-aware training distilled from the fp32 network, against the shipped static recipe.

The student is the static-int8 network simulated with fake quantization (the shipped qconfigs: per-channel
int8 weights, uint8 min/max activation ranges calibrated first and then frozen, batch norm folded with frozen
statistics, the policy Linear dynamic per-channel). It is trained for ``--steps`` SGD steps (10% warm-up,
cosine decay) to match the fp32 network's outputs on the training positions (KL divergence over the legal
moves plus ``--value-weight`` x value MSE): no labels are needed, the fp32 network is the teacher. Every
quarter of the run it is converted to int8 and compared with fp32 on the built-in held-out positions, like
``azengine quantize``'s report.

    python -m benchmarks.experiments.qat_distill [--model M] [--shards data/sf --count 20000] [--steps 400]
"""

from __future__ import annotations

import argparse
import copy
import math
import random
import time
from pathlib import Path

import chess
import numpy as np
import torch
import torch.ao.nn.intrinsic.qat as nniqat
import torch.nn.functional as F
from torch import nn
from torch.ao.quantization import (
    FakeQuantize,
    MinMaxObserver,
    PerChannelMinMaxObserver,
    QConfig,
    QConfigMapping,
    per_channel_dynamic_qconfig,
)
from torch.ao.quantization.quantize_fx import convert_fx, prepare_qat_fx

import engine
from benchmarks.experiments.quant_recipes import as_evaluator
from engine.encoding import POLICY_SIZE, encode_batch
from engine.nets.files import read_weights
from engine.nets.torch_files import build_network
from engine.priors import legal_move_indices
from engine.quant import torch_int8 as quantization
from engine.quant.accuracy import compare
from engine.quant.calibration import calibration_positions, heldout_positions


def shard_positions(directory: Path, count: int, seed: int = 1) -> list[chess.Board]:
    """A random sample of ``count`` positions from ``engine.training.datagen`` shards."""
    files = sorted(directory.glob("*.npz"))
    random.Random(seed).shuffle(files)
    fens: list[str] = []
    for path in files:
        with np.load(path) as shard:
            fens += [f.decode() if isinstance(f, bytes) else str(f) for f in shard["fen"]]
        if len(fens) >= 3 * count:
            break
    return [chess.Board(fen) for fen in random.Random(seed).sample(fens, min(count, len(fens)))]


def qat_mapping() -> QConfigMapping:
    """Fake-quantized counterpart of :func:`engine.quant.torch_int8.static_qconfig_mapping` (onednn)."""
    activation = FakeQuantize.with_args(observer=MinMaxObserver, quant_min=0, quant_max=255, dtype=torch.quint8)
    weight = FakeQuantize.with_args(observer=PerChannelMinMaxObserver, quant_min=-128, quant_max=127,
                                    dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=0)
    mapping = QConfigMapping().set_global(QConfig(activation=activation, weight=weight))
    for name in quantization.DYNAMIC_MODULES:
        mapping.set_module_name(name, per_channel_dynamic_qconfig)
    return mapping


def legal_masks(boards: list[chess.Board]) -> torch.Tensor:
    """0 at each position's legal move indices, -inf elsewhere."""
    mask = torch.full((len(boards), POLICY_SIZE), float("-inf"))
    for row, board in enumerate(boards):
        mask[row, torch.from_numpy(np.unique(legal_move_indices(board)[1]).astype(np.int64))] = 0.0
    return mask


def prepare_student(net: nn.Module, planes: torch.Tensor, calibration: int) -> nn.Module:
    """The fake-quantized network, activation ranges calibrated on the first ``calibration`` positions."""
    with quantization.quiet():
        student = prepare_qat_fx(copy.deepcopy(net).train(), qat_mapping(), (planes[:1],))
    student.apply(nniqat.freeze_bn_stats)
    student.apply(torch.ao.quantization.disable_fake_quant)
    with torch.no_grad():
        for start in range(0, calibration, 256):
            student(planes[start:min(start + 256, calibration)])
    student.apply(torch.ao.quantization.enable_fake_quant)
    for name, module in student.named_modules():
        if isinstance(module, FakeQuantize) and not name.endswith("weight_fake_quant"):
            module.disable_observer()  # activation ranges stay as calibrated; weight ranges follow the weights
    return student


def main() -> None:
    """Train the student and print its accuracy against fp32 next to the shipped recipe's."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=engine.default_model_path())
    parser.add_argument("--shards", type=Path, help="datagen shards to draw positions from (default: the built-in "
                        "calibration positions)")
    parser.add_argument("--count", type=int, default=20000, help="positions drawn from --shards")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=5e-5, help="peak learning rate of SGD with momentum 0.9 "
                        "(1e-3 diverged on v3; Adam's equal-size steps moved the small weights too far: three "
                        "steps at 1e-5 took v3's float value RMSE from 0 to 0.008)")
    parser.add_argument("--value-weight", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    quantization.set_qengine(quantization.DEFAULT_QENGINE)
    net = build_network(read_weights(args.model)).eval()
    boards = shard_positions(args.shards, args.count) if args.shards else calibration_positions(None, 1200)
    planes = torch.from_numpy(encode_batch(boards))
    masks = legal_masks(boards)
    with torch.inference_mode():
        teacher_logits, teacher_values = (t.clone() for t in net(planes))
    heldout = heldout_positions(512)
    reference = as_evaluator(net, "fp32")
    calibration = min(1024, len(boards))

    def report(label: str, module: nn.Module) -> None:
        acc = compare(reference, as_evaluator(module, label), heldout)
        print(f"{label:44s} {acc.value_rmse:10.4f} {acc.value_max_error:8.3f} {acc.policy_kl:8.4f} "
              f"{100 * acc.top1_agreement:6.1f}%", flush=True)

    print(f"{args.model}: {len(boards)} training positions, {len(heldout)} held-out, lr {args.lr}, "
          f"value weight {args.value_weight}, batch {args.batch_size}")
    print(f"{'network':44s} {'value RMSE':>10s} {'max err':>8s} {'KL':>8s} {'top-1':>7s}")
    shipped = quantization.quantize_static(net, [planes[:calibration].numpy()])
    report("static, shipped recipe (bias corrected)", shipped)
    student = prepare_student(net, planes, calibration)
    optimizer = torch.optim.SGD([p for p in student.parameters() if p.requires_grad], lr=args.lr, momentum=0.9)
    warmup = max(1, args.steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(
        (step + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(1.0, step / args.steps)))))
    start = time.monotonic()
    for step in range(args.steps + 1):
        if step % max(1, args.steps // 4) == 0:
            with quantization.quiet():
                converted = convert_fx(copy.deepcopy(student).eval())
            report(f"distilled QAT, step {step} ({time.monotonic() - start:.0f} s)", converted)
        if step == args.steps:
            break
        rows = torch.randint(0, len(boards), (args.batch_size,))
        logits, values = student(planes[rows])
        mask = masks[rows]
        target = F.softmax(teacher_logits[rows] + mask, dim=1)
        log_q = F.log_softmax(logits + mask, dim=1)
        kl = (target * (torch.log(target.clamp_min(1e-12)) - log_q)).masked_fill(mask.isinf(), 0.0).sum(1).mean()
        loss = kl + args.value_weight * F.mse_loss(values, teacher_values[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()


if __name__ == "__main__":
    main()
