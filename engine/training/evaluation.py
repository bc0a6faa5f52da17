"""Losses and validation metrics of both network families on a :class:`~engine.training.dataset.Dataset`."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..nets.seresnet import SEResNet
from .dataset import Dataset


def policy_loss(logits: torch.Tensor, index: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy between the softmax of ``logits`` and the sparse target ``(index, prob)``."""
    logp = F.log_softmax(logits.float(), dim=1)
    return -(logp.gather(1, index) * prob).sum(dim=1).mean()


def wdl_loss(wdl_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy between the softmax of the WDL logits ``(B, 3)`` and target probabilities."""
    return -(F.log_softmax(wdl_logits.float(), dim=1) * target).sum(dim=1).mean()


def network_outputs(model: nn.Module, planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Policy logits, values in [-1, 1] (W - L for a WDL network) and the WDL logits (None without a WDL head)."""
    if isinstance(model, SEResNet):
        logits, wdl_logits = model.wdl_logits(planes)
        wdl = torch.softmax(wdl_logits.float(), dim=1)
        return logits, wdl[:, 0] - wdl[:, 2], wdl_logits
    logits, values = model(planes)
    return logits, values, None


def value_loss(values: torch.Tensor, wdl_logits: torch.Tensor | None, value: torch.Tensor,
               wdl: torch.Tensor | None) -> torch.Tensor:
    """The value head's training loss: WDL cross-entropy for a WDL network, else MSE of the value."""
    if wdl_logits is not None:
        if wdl is None:
            raise ValueError("a network with a WDL head needs WDL targets")
        return wdl_loss(wdl_logits, wdl)
    return F.mse_loss(values.float(), value)


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, batch_size: int = 1024, bf16: bool = False) -> dict[str, float]:
    """Validation metrics: value MSE (of W - L for a WDL network), WDL loss (WDL networks, sets with WDL
    targets), policy loss, and top-1 agreement with Stockfish's best move (over all 4608 outputs, and over
    the legal moves when ``data.legal`` is known)."""
    if len(data) == 0:
        return {}
    model.eval()
    totals = {"value_mse": 0.0, "policy_loss": 0.0, "top1": 0.0, "top1_legal": 0.0, "wdl_loss": 0.0}
    for start in range(0, len(data), batch_size):
        rows = np.arange(start, min(start + batch_size, len(data)))
        planes, value, index, prob, wdl = data.batch(rows)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, values, wdl_logits = network_outputs(model, planes)
        logits = logits.float()
        n = len(rows)
        totals["value_mse"] += F.mse_loss(values.float(), value, reduction="sum").item()
        if wdl_logits is not None and wdl is not None:
            totals["wdl_loss"] += wdl_loss(wdl_logits, wdl).item() * n
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
    if not (isinstance(model, SEResNet) and data.wdl is not None):
        del metrics["wdl_loss"]
    metrics["value_var"] = float(np.var(data.value))  # the MSE of always predicting the mean
    model.train()
    return metrics
