"""Supervised training of :class:`engine.nets.alphazero.AlphaZeroNet` on Stockfish-labelled shards.

``python -m engine.training.train --data data/sf --blocks 6 --filters 64 --out runs/r1``

Loss = MSE(value) + cross-entropy(policy) against a soft target over the stored MultiPV moves
(softmax of centipawns / ``--policy-temperature-cp``; 0 gives the hard best-move target). AdamW or
SGD with momentum, one-cycle learning rate (warm-up then cosine decay). A checkpoint with everything
needed to continue (model, optimizer, scheduler, position in the epoch, RNG, the shard list) is written
atomically every few minutes and after every epoch; rerunning the command continues from it. The
validation split is a fixed hash of each position's game id, so it does not change between runs.
At the end the fp32 ``state_dict`` goes to ``<out>/model.pt`` and the metrics to ``<out>/metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chess
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import ModelFileError
from ..nets.alphazero import AlphaZeroNet
from ..nets.files import read_weights
from ..nets.torch_files import build_network
from ..priors import legal_move_indices
from .shards import TRAIN_KEYS, expand_planes, list_shards, load_shards, soft_policy, validation_mask
from .stopping import interrupt_on_sigterm

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
METRICS = "metrics.json"
#: Share of games held out for validation by default (chosen by a hash of the game id, see ``validation_mask``).
VALIDATION_FRACTION = 0.02
#: Arguments that define a run; on resume the checkpoint's values win over the command line's.
RUN_KEYS = ("blocks", "filters", "epochs", "batch_size", "lr", "weight_decay", "optimizer", "warmup",
            "val_fraction", "policy_temperature_cp", "result_weight", "seed", "max_positions", "init")


@dataclass
class Dataset:
    """Positions in RAM, compact: planes are expanded per batch."""

    bitboards: np.ndarray  # (N, 16) uint64
    black: np.ndarray  # (N,) bool
    value: np.ndarray  # (N,) float32 target in [-1, 1]
    policy_index: np.ndarray  # (N, K) int64, padding -1
    policy_prob: np.ndarray  # (N, K) float32
    legal: np.ndarray | None = None  # (N, L) int64 legal policy indices, padding -1 (validation only)

    def __len__(self) -> int:
        return len(self.value)

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Planes, value targets, policy indices (padding -> 0) and probabilities of ``rows``."""
        planes = torch.from_numpy(expand_planes(self.bitboards[rows], self.black[rows]))
        index = torch.from_numpy(np.maximum(self.policy_index[rows], 0))
        return planes, torch.from_numpy(self.value[rows]), index, torch.from_numpy(self.policy_prob[rows])


def legal_table(fens: np.ndarray) -> np.ndarray:
    """Legal-move policy indices of each FEN, padded with -1 to a rectangle ``(N, max legal moves)``."""
    lists = [legal_move_indices(chess.Board(fen.decode()))[1] for fen in fens]
    table = np.full((len(lists), max((len(x) for x in lists), default=1)), -1, dtype=np.int64)
    for row, indices in enumerate(lists):
        table[row, : len(indices)] = indices
    return table


def load_dataset(shards: list[Path], val_fraction: float, policy_temperature_cp: float, result_weight: float,
                 max_positions: int | None = None) -> tuple[Dataset, Dataset]:
    """Training and validation sets from ``shards`` (value target = (1-w) * Stockfish + w * game result)."""
    data = load_shards(shards, TRAIN_KEYS + ("fen",))
    if max_positions is not None:
        data = {key: array[:max_positions] for key, array in data.items()}
    value = ((1.0 - result_weight) * data["value"] + result_weight * data["result"]).astype(np.float32)
    prob = soft_policy(data["policy_index"], data["policy_cp"], policy_temperature_cp)
    val = validation_mask(data["game"], val_fraction)

    def subset(mask: np.ndarray, with_legal: bool) -> Dataset:
        return Dataset(data["bitboards"][mask], data["black"][mask], value[mask],
                       data["policy_index"][mask].astype(np.int64), prob[mask],
                       legal_table(data["fen"][mask]) if with_legal else None)

    return subset(~val, False), subset(val, True)


def policy_loss(logits: torch.Tensor, index: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy between the softmax of ``logits`` and the sparse target ``(index, prob)``."""
    logp = F.log_softmax(logits.float(), dim=1)
    return -(logp.gather(1, index) * prob).sum(dim=1).mean()


@torch.no_grad()
def evaluate(model: AlphaZeroNet, data: Dataset, batch_size: int = 1024, bf16: bool = False) -> dict[str, float]:
    """Validation metrics: value MSE, policy loss, and top-1 agreement with Stockfish's best move (over all
    4608 outputs, and over the legal moves when ``data.legal`` is known)."""
    if len(data) == 0:
        return {}
    model.eval()
    totals = {"value_mse": 0.0, "policy_loss": 0.0, "top1": 0.0, "top1_legal": 0.0}
    for start in range(0, len(data), batch_size):
        rows = np.arange(start, min(start + batch_size, len(data)))
        planes, value, index, prob = data.batch(rows)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, values = model(planes)
        logits = logits.float()
        n = len(rows)
        totals["value_mse"] += F.mse_loss(values.float(), value, reduction="sum").item()
        totals["policy_loss"] += policy_loss(logits, index, prob).item() * n
        totals["top1"] += (logits.argmax(dim=1) == index[:, 0]).sum().item()
        if data.legal is not None:
            legal = torch.from_numpy(data.legal[rows])
            masked = logits.gather(1, legal.clamp(min=0)).masked_fill(legal < 0, -math.inf)
            best = legal.gather(1, masked.argmax(dim=1, keepdim=True)).squeeze(1)
            totals["top1_legal"] += (best == index[:, 0]).sum().item()
    metrics = {key: total / len(data) for key, total in totals.items()}
    if data.legal is None:
        del metrics["top1_legal"]
    metrics["value_var"] = float(np.var(data.value))  # the MSE of always predicting the mean
    model.train()
    return metrics


def make_optimizer(model: AlphaZeroNet, args: argparse.Namespace, total_steps: int) -> tuple[
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


def initial_network(path: Path) -> AlphaZeroNet:
    """The fp32 network of a model file to start training from (``--init``); its size wins over --blocks/--filters."""
    try:
        net = build_network(read_weights(path))
    except ModelFileError as exc:
        raise SystemExit(f"--init: {exc}") from None
    log.info("starting from the weights of %s (%dx%d)", path, net.num_blocks, net.num_filters)
    return net


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename over ``path`` (the temporary file is removed if
    the save is interrupted)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def train_step(model: AlphaZeroNet, opt: torch.optim.Optimizer, batch: tuple[torch.Tensor, ...],
               bf16: bool) -> tuple[float, float]:
    """One optimizer step; returns (value MSE, policy loss)."""
    planes, value, index, prob = batch
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits, values = model(planes)
    loss_v = F.mse_loss(values.float(), value)
    loss_p = policy_loss(logits, index, prob)
    opt.zero_grad(set_to_none=True)
    (loss_v + loss_p).backward()
    opt.step()
    return loss_v.item(), loss_p.item()


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train (or continue training) the run in ``args.out``; returns the metrics written to metrics.json."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CHECKPOINT
    ckpt = None
    if ckpt_path.exists() and not args.no_resume:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        for key in RUN_KEYS:
            if getattr(args, key) != ckpt["args"][key]:
                log.warning("resuming: %s = %r from the checkpoint (command line: %r)", key, ckpt["args"][key],
                            getattr(args, key))
            setattr(args, key, ckpt["args"][key])
        shards = [Path(p) for p in ckpt["shards"]]
        log.info("resuming %s at epoch %d step %d", ckpt_path, ckpt["epoch"], ckpt["step"])
    else:
        shards = list_shards(args.data)
        if not shards:
            raise SystemExit(f"no shards in {args.data}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    t0 = time.perf_counter()
    train_set, val_set = load_dataset(shards, args.val_fraction, args.policy_temperature_cp, args.result_weight,
                                      args.max_positions)
    log.info("loaded %d training and %d validation positions from %d shards in %.1f s", len(train_set),
             len(val_set), len(shards), time.perf_counter() - t0)
    if len(train_set) == 0:
        raise SystemExit("no training positions (is --val-fraction too large?)")

    batch_size = min(args.batch_size, len(train_set))
    steps_per_epoch = len(train_set) // batch_size
    if args.init is not None and ckpt is None:
        model = initial_network(Path(args.init))
        args.blocks, args.filters = model.num_blocks, model.num_filters
    else:
        model = AlphaZeroNet(args.blocks, args.filters)
    opt, sched = make_optimizer(model, args, args.epochs * steps_per_epoch)
    epoch, step, history = 0, 0, []
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["torch_rng"])
        epoch, step, history = ckpt["epoch"], ckpt["step"], ckpt["history"]
    run_args = {key: (str(v) if isinstance(v, Path) else v) for key, v in vars(args).items()}

    def save_checkpoint(epoch: int, step: int) -> None:
        atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
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
        record = {"epoch": epoch + 1, "train_value_mse": float(sums[0] / done),
                  "train_policy_loss": float(sums[1] / done),
                  "samples_per_s": done * batch_size / max(seconds, 1e-9), "seconds": seconds}
        record.update({f"val_{key}": v for key, v in evaluate(model, val_set, bf16=args.bf16).items()})
        history.append(record)
        log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "epoch"))
        epoch, step = epoch + 1, 0
        save_checkpoint(epoch, step)
        last_save = time.monotonic()

    model.eval()
    atomic_save(model.state_dict(), out / MODEL)
    metrics = {"args": run_args, "shards": len(shards), "train_positions": len(train_set),
               "val_positions": len(val_set), "history": history, "final": history[-1] if history else {}}
    tmp = out / (METRICS + ".tmp")
    tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    os.replace(tmp, out / METRICS)
    log.info("wrote %s and %s", out / MODEL, out / METRICS)
    return metrics


def benchmark(args: argparse.Namespace) -> float:
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
    data, _ = load_dataset(shards, 0.0, args.policy_temperature_cp, args.result_weight)
    model = AlphaZeroNet(args.blocks, args.filters)
    opt, _ = make_optimizer(model, args, 1000)
    rng = np.random.default_rng(0)
    for i in range(args.bench_steps + 3):
        if i == 3:
            start = time.perf_counter()
        train_step(model, opt, data.batch(rng.integers(0, len(data), args.batch_size)), args.bf16)
    return args.bench_steps * args.batch_size / (time.perf_counter() - start)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of ``python -m engine.training.train``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="directory of datagen shards")
    parser.add_argument("--out", type=Path, default=Path("runs/r1"), help="run directory")
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--init", default=None,
                        help="start from the weights of this fp32 model file (fine-tuning; a fresh optimizer "
                             "and schedule); its blocks and filters override --blocks/--filters")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--warmup", type=float, default=0.05, help="fraction of the steps spent warming up")
    parser.add_argument("--val-fraction", type=float, default=VALIDATION_FRACTION, help="share of games held out")
    parser.add_argument("--policy-temperature-cp", type=float, default=50.0,
                        help="soft policy target temperature in centipawns (0: best move only)")
    parser.add_argument("--result-weight", type=float, default=0.0,
                        help="weight of the game result in the value target (the rest is Stockfish's WDL)")
    parser.add_argument("--max-positions", type=int, default=None, help="use only the first N positions")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--bf16", action="store_true",
                        help="bfloat16 autocast (exported weights stay fp32): 1.8x faster where the CPU has "
                             "AVX512-BF16 or AMX, 16x slower on AVX2 (docs/MODEL.md)")
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint (the default)")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if a checkpoint exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--bench-steps", type=int, default=0,
                        help="only measure training samples/s over this many steps; writes nothing")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Command line: train a network, or with ``--bench-steps`` measure training speed."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    if args.bench_steps:
        speed = benchmark(args)
        sys.stdout.write(f"{args.blocks}x{args.filters} batch {args.batch_size} threads {torch.get_num_threads()} "
                         f"{'bf16' if args.bf16 else 'fp32'}: {speed:.0f} samples/s\n")
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
