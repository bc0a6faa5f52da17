"""Supervised training of either network family on Stockfish-labelled shards.

``python -m engine.training.train --data data/sf --family seresnet --se --blocks 6 --filters 64 --out runs/r1``

Families: ``alphazero`` (:class:`engine.nets.alphazero.AlphaZeroNet`, the default) and ``seresnet``
(:class:`engine.nets.seresnet.SEResNet`; ``--se`` for squeeze-excitation). Loss = value loss +
cross-entropy(policy) against a soft target over the stored MultiPV moves (softmax of centipawns /
``--policy-temperature-cp``; 0 gives the hard best-move target). The value loss is the MSE of the value for
``alphazero`` and the cross-entropy against Stockfish's win/draw/loss (the shards' ``wdl``) for
``seresnet``; the game result is mixed into either target with ``--result-weight``. AdamW or
SGD with momentum, one-cycle learning rate (warm-up then cosine decay). A checkpoint with everything
needed to continue (model, optimizer, scheduler, position in the epoch, RNG, the shard list) is written
atomically every few minutes and after every epoch; rerunning the command continues from it. The
validation split is a fixed hash of each position's game id, so it does not change between runs.
At the end the fp32 ``state_dict`` goes to ``<out>/model.pt`` and the metrics to ``<out>/metrics.json``.
``--activation-caps`` and ``--int8-grid`` fine-tune a ``seresnet`` network for ONNX int8
(:mod:`engine.training.int8_ready`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..files import atomic_save, atomic_write
from ..interface import DEFAULT_FAMILY, FAMILIES, WDL_FAMILIES
from ..nets.alphazero import AlphaZeroNet
from ..nets.seresnet import SEResNet
from ..quant.calibration import builtin_calibration_planes
from .dataset import Dataset, MissingWdlError, legal_table, load_dataset
from .evaluation import evaluate, network_outputs, policy_loss, value_loss
from .int8_ready import add_int8_grid, check_cap_quantile, freeze_batchnorm, plain_state_dict, with_activation_caps
from .shards import list_shards
from .stopping import interrupt_on_sigterm, interrupts_deferred
from .warmstart import initial_network, network_with_tower_of

__all__ = ["Dataset", "TrainConfig", "benchmark", "evaluate", "legal_table", "load_dataset", "policy_loss",
           "train", "train_step"]

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
METRICS = "metrics.json"
#: Share of games held out for validation by default (chosen by a hash of the game id, see ``validation_mask``).
VALIDATION_FRACTION = 0.02
#: Arguments that define a run; on resume the checkpoint's values win over the command line's.
RUN_KEYS = ("family", "se", "blocks", "filters", "epochs", "batch_size", "lr", "weight_decay", "optimizer", "warmup",
            "val_fraction", "policy_temperature_cp", "result_weight", "seed", "max_positions", "init",
            "tower_from", "grow_blocks", "activation_caps", "int8_grid")


@dataclass(frozen=True)
class TrainConfig:
    """One training run (the command line's flags, see :func:`parse_args` for their meaning)."""

    data: Path
    out: Path = Path("runs/r1")
    family: str = DEFAULT_FAMILY
    se: bool = False
    blocks: int = 6
    filters: int = 64
    init: str | None = None
    tower_from: str | None = None
    grow_blocks: int | None = None
    epochs: int = 10
    batch_size: int = 512
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: float = 0.05
    val_fraction: float = VALIDATION_FRACTION
    policy_temperature_cp: float = 50.0
    result_weight: float = 0.0
    max_positions: int | None = None
    threads: int | None = None
    bf16: bool = False
    checkpoint_minutes: float = 5.0
    seed: int = 0
    no_resume: bool = False
    no_progress: bool = False
    bench_steps: int = 0
    activation_caps: float | None = None
    int8_grid: bool = False

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown network family {self.family!r}; expected one of {', '.join(FAMILIES)}")
        if self.se and self.family != "seresnet" and self.init is None:
            raise ValueError("squeeze-excitation (se) is a seresnet option; the alphazero family has none")
        if self.tower_from is not None and (self.family != "seresnet" or self.init is not None):
            raise ValueError("--tower-from starts a seresnet network (--family seresnet) and excludes --init")
        if (self.activation_caps is not None or self.int8_grid) and self.family != "seresnet" and self.init is None:
            raise ValueError("--activation-caps and --int8-grid apply to the seresnet family")
        if self.grow_blocks is not None and self.init is None:
            raise ValueError("--grow-blocks deepens the network of --init: give it with --init")
        if self.activation_caps is not None and self.init is None:
            raise ValueError("--activation-caps measures the caps on a trained network: give it with --init")
        if self.activation_caps is not None:
            check_cap_quantile(self.activation_caps)


#: Default values of the run keys, for checkpoints written before a key existed.
_RUN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def new_network(config: TrainConfig) -> AlphaZeroNet | SEResNet:
    """A freshly initialised network of the configured family and size."""
    if config.family == "seresnet":
        return SEResNet(config.blocks, config.filters, None if config.se else 0,
                        capped=config.activation_caps is not None)
    return AlphaZeroNet(config.blocks, config.filters)


def make_optimizer(model: nn.Module, args: TrainConfig, total_steps: int) -> tuple[
        torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The optimizer and its one-cycle schedule (``args.lr`` is the peak learning rate)."""
    if args.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                                                     weight_decay=args.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=max(total_steps, 2),
                                                pct_start=args.warmup, anneal_strategy="cos", cycle_momentum=False)
    return opt, sched


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` atomically; a SIGINT or SIGTERM during the save takes effect after it."""
    with interrupts_deferred():
        atomic_save(path, lambda handle: torch.save(obj, handle))


def train_step(model: nn.Module, opt: torch.optim.Optimizer, batch: tuple[torch.Tensor | None, ...],
               bf16: bool) -> tuple[float, float]:
    """One optimizer step; returns (value loss, policy loss): value MSE, or WDL cross-entropy for a WDL network."""
    planes, value, index, prob, wdl = batch
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits, values, wdl_logits = network_outputs(model, planes)
    loss_v = value_loss(values, wdl_logits, value, wdl)
    loss_p = policy_loss(logits, index, prob)
    opt.zero_grad(set_to_none=True)
    (loss_v + loss_p).backward()
    opt.step()
    return loss_v.item(), loss_p.item()


def train(args: TrainConfig) -> dict[str, Any]:
    """Train (or continue training) the run in ``args.out``; returns the metrics written to metrics.json."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CHECKPOINT
    ckpt = None
    if ckpt_path.exists() and not args.no_resume:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        stored = {key: ckpt["args"].get(key, _RUN_DEFAULTS[key]) for key in RUN_KEYS}
        for key, value in stored.items():
            if getattr(args, key) != value:
                log.warning("resuming: %s = %r from the checkpoint (command line: %r)", key, value,
                            getattr(args, key))
        args = dataclasses.replace(args, **stored)
        shards = [Path(p) for p in ckpt["shards"]]
        log.info("resuming %s at epoch %d step %d", ckpt_path, ckpt["epoch"], ckpt["step"])
    else:
        shards = list_shards(args.data)
        if not shards:
            raise SystemExit(f"no shards in {args.data}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    if args.init is not None and ckpt is None:
        model = initial_network(Path(args.init), args.se, args.grow_blocks)
        args = dataclasses.replace(args, family=model.family, blocks=model.num_blocks, filters=model.num_filters,
                                   se=bool(getattr(model, "se_channels", 0)))
    elif args.tower_from is not None and ckpt is None:
        model = network_with_tower_of(Path(args.tower_from), args.se)
        args = dataclasses.replace(args, blocks=model.num_blocks, filters=model.num_filters)
    else:
        model = new_network(args)
    if (args.activation_caps is not None or args.int8_grid) and not isinstance(model, SEResNet):
        raise SystemExit(f"--activation-caps and --int8-grid apply to seresnet networks, not {model.family}")
    if isinstance(model, SEResNet):
        if args.activation_caps is not None and not model.capped:
            model = with_activation_caps(model, builtin_calibration_planes(), args.activation_caps)
            log.info("activations capped at their %g quantile over the built-in calibration positions",
                     args.activation_caps)
        if args.int8_grid:
            add_int8_grid(model)
        if args.activation_caps is not None or args.int8_grid:
            freeze_batchnorm(model)
    t0 = time.perf_counter()
    try:
        train_set, val_set = load_dataset(shards, args.val_fraction, args.policy_temperature_cp, args.result_weight,
                                          args.max_positions, need_wdl=args.family in WDL_FAMILIES)
    except MissingWdlError as exc:
        raise SystemExit(f"{args.data}: {exc}") from None
    log.info("loaded %d training and %d validation positions from %d shards in %.1f s", len(train_set),
             len(val_set), len(shards), time.perf_counter() - t0)
    if len(train_set) == 0:
        raise SystemExit("no training positions (is --val-fraction too large?)")

    batch_size = min(args.batch_size, len(train_set))
    steps_per_epoch = len(train_set) // batch_size
    opt, sched = make_optimizer(model, args, args.epochs * steps_per_epoch)
    epoch, step, history = 0, 0, []
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["torch_rng"])
        epoch, step, history = ckpt["epoch"], ckpt["step"], ckpt["history"]
    run_args = {key: (str(v) if isinstance(v, Path) else v) for key, v in dataclasses.asdict(args).items()}
    value_key = "train_wdl_loss" if args.family in WDL_FAMILIES else "train_value_mse"

    def save_checkpoint(epoch: int, step: int) -> None:
        atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                     "epoch": epoch, "step": step, "history": history, "args": run_args,
                     "shards": [str(p) for p in shards], "torch_rng": torch.get_rng_state()}, ckpt_path)

    model.train()
    last_save = time.monotonic()
    while epoch < args.epochs:
        order = np.random.default_rng([args.seed, epoch]).permutation(len(train_set))
        sums = np.zeros(2)
        started, first_step = time.perf_counter(), step
        bar = tqdm(range(step, steps_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch",
                   disable=args.no_progress, dynamic_ncols=True)
        completed = step
        try:
            for step in bar:
                rows = order[step * batch_size: (step + 1) * batch_size]
                sums += train_step(model, opt, train_set.batch(rows), args.bf16)
                sched.step()
                completed = step + 1
                done = completed - first_step
                if done % 10 == 0 or completed == steps_per_epoch:
                    bar.set_postfix(value=f"{sums[0] / done:.4f}", policy=f"{sums[1] / done:.3f}",
                                    lr=f"{sched.get_last_lr()[0]:.2e}")
                if time.monotonic() - last_save > args.checkpoint_minutes * 60 and completed < steps_per_epoch:
                    save_checkpoint(epoch, completed)
                    last_save = time.monotonic()
        except KeyboardInterrupt:
            bar.close()
            if completed < steps_per_epoch:
                save_checkpoint(epoch, completed)
                log.info("interrupted: saved %s at epoch %d step %d", ckpt_path, epoch, completed)
                raise SystemExit(130) from None
        seconds = time.perf_counter() - started
        done = max(steps_per_epoch - first_step, 1)
        record = {"epoch": epoch + 1, value_key: float(sums[0] / done),
                  "train_policy_loss": float(sums[1] / done),
                  "samples_per_s": done * batch_size / max(seconds, 1e-9), "seconds": seconds}
        record.update({f"val_{key}": v for key, v in evaluate(model, val_set, bf16=args.bf16).items()})
        history.append(record)
        log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "epoch"))
        epoch, step = epoch + 1, 0
        save_checkpoint(epoch, step)
        last_save = time.monotonic()

    model.eval()
    atomic_torch_save(plain_state_dict(model), out / MODEL)
    metrics = {"args": run_args, "shards": len(shards), "train_positions": len(train_set),
               "val_positions": len(val_set), "history": history, "final": history[-1] if history else {}}
    atomic_write(out / METRICS, json.dumps(metrics, indent=2) + "\n")
    log.info("wrote %s and %s", out / MODEL, out / METRICS)
    return metrics


def benchmark(args: TrainConfig) -> float:
    """Training samples/s over ``args.bench_steps`` steps (after 3 warm-up steps) on the first shards."""
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    need = args.batch_size * (args.bench_steps + 3)
    shards, have = [], 0
    for path in list_shards(args.data):
        shards.append(path)
        have += np.load(path)["value"].shape[0]
        if have >= need:
            break
    data, _ = load_dataset(shards, 0.0, args.policy_temperature_cp, args.result_weight,
                           need_wdl=args.family in WDL_FAMILIES)
    model = new_network(args)
    opt, _ = make_optimizer(model, args, 1000)
    rng = np.random.default_rng(0)
    for i in range(args.bench_steps + 3):
        if i == 3:
            start = time.perf_counter()
        train_step(model, opt, data.batch(rng.integers(0, len(data), args.batch_size)), args.bf16)
    return args.bench_steps * args.batch_size / (time.perf_counter() - start)


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """The command line of ``python -m engine.training.train``, as a :class:`TrainConfig`."""
    d = _RUN_DEFAULTS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="directory of datagen shards")
    parser.add_argument("--out", type=Path, default=d["out"], help="run directory")
    parser.add_argument("--family", choices=FAMILIES, default=d["family"],
                        help="network family: alphazero (pytorch-alpha-zero's AlphaZeroNet) or seresnet "
                             "(convolutional policy and WDL heads; needs shards with WDL labels)")
    parser.add_argument("--se", action="store_true", help="seresnet: squeeze-excitation in every residual block")
    parser.add_argument("--blocks", type=int, default=d["blocks"])
    parser.add_argument("--filters", type=int, default=d["filters"])
    parser.add_argument("--init", default=None,
                        help="start from the weights of this fp32 model file (fine-tuning; a fresh optimizer "
                             "and schedule); its family and size override --family/--blocks/--filters; with --se, a "
                             "seresnet file without squeeze-excitation gains one per block, starting neutral")
    parser.add_argument("--grow-blocks", type=int, default=None, metavar="N",
                        help="with --init (seresnet): append residual blocks up to N in all, each starting as an "
                             "identity, so training starts from the file's function with a deeper network")
    parser.add_argument("--tower-from", default=None,
                        help="seresnet: start the residual tower from this alphazero model file's (its size "
                             "wins over --blocks/--filters); the heads start fresh")
    parser.add_argument("--epochs", type=int, default=d["epochs"])
    parser.add_argument("--batch-size", type=int, default=d["batch_size"])
    parser.add_argument("--optimizer", choices=("adamw", "sgd"), default=d["optimizer"])
    parser.add_argument("--lr", type=float, default=d["lr"], help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--weight-decay", type=float, default=d["weight_decay"])
    parser.add_argument("--warmup", type=float, default=d["warmup"], help="fraction of the steps spent warming up")
    parser.add_argument("--val-fraction", type=float, default=d["val_fraction"], help="share of games held out")
    parser.add_argument("--policy-temperature-cp", type=float, default=d["policy_temperature_cp"],
                        help="soft policy target temperature in centipawns (0: best move only)")
    parser.add_argument("--result-weight", type=float, default=d["result_weight"],
                        help="weight of the game result in the value target (the rest is Stockfish's WDL)")
    parser.add_argument("--activation-caps", type=float, default=None, metavar="QUANTILE",
                        help="seresnet, with --init: clamp every tensor int8 quantizes at this quantile of its "
                             "values over the built-in calibration positions (e.g. 0.9995), in fp32 too; BatchNorm "
                             "statistics stay fixed")
    parser.add_argument("--int8-grid", action="store_true",
                        help="seresnet: train and save the weights ONNX int8 rounds on their per-channel int8 grid "
                             "(BatchNorm statistics stay fixed)")
    parser.add_argument("--max-positions", type=int, default=None, help="use only the first N positions")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--bf16", action="store_true",
                        help="bfloat16 autocast (exported weights stay fp32): faster where the CPU has "
                             "AVX512-BF16 or AMX, much slower on AVX2 only (figures in docs/MODEL.md)")
    parser.add_argument("--checkpoint-minutes", type=float, default=d["checkpoint_minutes"])
    parser.add_argument("--seed", type=int, default=d["seed"])
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint (the default)")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if a checkpoint exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--bench-steps", type=int, default=0,
                        help="only measure training samples/s over this many steps; writes nothing")
    args = vars(parser.parse_args(argv))
    del args["resume"]
    try:
        return TrainConfig(**args)
    except ValueError as exc:
        parser.error(str(exc))


def main(argv: list[str] | None = None) -> None:
    """Command line: train a network, or with ``--bench-steps`` measure training speed."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    if args.bench_steps:
        speed = benchmark(args)
        sys.stdout.write(f"{args.family} {args.blocks}x{args.filters} batch {args.batch_size} threads "
                         f"{torch.get_num_threads()} {'bf16' if args.bf16 else 'fp32'}: {speed:.0f} samples/s\n")
        return
    interrupt_on_sigterm()
    try:
        metrics = train(args)
    except KeyboardInterrupt:  # outside the training steps (loading, validation): the last checkpoint stands
        log.info("stopped; run the same command to continue from the last checkpoint")
        sys.exit(130)
    sys.stdout.write(json.dumps(metrics["final"]) + "\n")


if __name__ == "__main__":
    main()
