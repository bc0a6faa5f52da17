"""Training a ``seresnet`` network whose ONNX int8 file stays close to its fp32 one.

Two things make ONNX Runtime's int8 differ from fp32 (``engine.quant.onnx_int8``): its per-tensor uint8
activation ranges, set by min/max over the calibration positions and so by rare large values, and its
per-channel int8 weights. A fine-tune can take both out of the gap:

- **Activation caps** (:func:`with_activation_caps`): each tensor that int8 quantizes is clamped to a
  quantile of its values over real positions (:class:`engine.nets.seresnet.ActivationCap`). The clamp is
  part of the fp32 network too, so calibration then finds tight ranges and both precisions clip alike;
  fine-tuning lets the network adapt to the clamps.
- **int8-grid weights** (:func:`add_int8_grid`): while training, the weights ONNX int8 rounds are used as
  rounded to their per-output-channel int8 grid (straight-through gradients), and
  :func:`plain_state_dict` saves them rounded, so that int8 reproduces them exactly. BatchNorm folding
  scales each output channel, which keeps a per-channel grid a grid.

While fine-tuning for int8 the BatchNorm statistics stay fixed (:func:`freeze_batchnorm`), so the caps keep
bounding the tensors they were measured on.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from ..nets.seresnet import ActivationCap, SEResNet

#: The largest magnitude of a symmetric int8 weight (ONNX Runtime's per-channel weights use [-127, 127]).
INT8_WEIGHT_MAX = 127
#: Sampled values per capped tensor from which its quantiles are taken.
CAP_SAMPLES = 1_000_000


def check_cap_quantile(quantile: float) -> None:
    """Raise ValueError unless ``quantile`` can bound a cap: above the median, at most 1."""
    if not 0.5 < quantile <= 1.0:
        raise ValueError(f"the activation-cap quantile must be in (0.5, 1], not {quantile}")


def freeze_batchnorm(net: nn.Module) -> None:
    """Keep every BatchNorm layer of ``net`` in inference mode whatever ``net.train()`` sets: its running
    statistics, which the caps were measured with, stay fixed while its scale and shift still train."""
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.register_forward_pre_hook(_inference_mode)


def _inference_mode(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
    module.train(False)


def with_activation_caps(net: SEResNet, planes: np.ndarray, quantile: float) -> SEResNet:
    """A capped copy of ``net`` (same weights): each cap's bounds are the ``1 - quantile`` and ``quantile``
    quantiles of the tensor it clamps, over ``planes`` (the lower bound 0 for a ReLU's output)."""
    check_cap_quantile(quantile)
    capped = SEResNet(net.num_blocks, net.num_filters, net.se_channels, capped=True)
    capped.load_state_dict(net.state_dict(), strict=False)
    capped.eval()
    seen: dict[str, list[torch.Tensor]] = {}
    hooks = [module.register_forward_hook(lambda _m, args, _out, name=name: seen.setdefault(name, []).append(
                 args[0].detach().flatten()))
             for name, module in capped.named_modules() if isinstance(module, ActivationCap)]
    try:
        with torch.no_grad():
            for start in range(0, len(planes), 256):
                capped(torch.from_numpy(np.ascontiguousarray(planes[start:start + 256], dtype=np.float32)))
    finally:
        for hook in hooks:
            hook.remove()
    for name, parts in seen.items():
        values = torch.cat(parts)
        values = values[:: max(1, len(values) // CAP_SAMPLES)].double()
        cap = capped.get_submodule(name)
        low = float(torch.quantile(values, 1.0 - quantile)) if float(values.min()) < 0 else 0.0
        cap.low.fill_(low)
        cap.high.fill_(float(torch.quantile(values, quantile)))
    return capped


class Int8Grid(nn.Module):
    """A weight rounded to its per-output-channel symmetric int8 grid (scale = max |w| / 127), with the
    gradient passed straight through."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        scale = (weight.detach().abs().flatten(1).amax(1).clamp_min(1e-12) / INT8_WEIGHT_MAX).float()
        zero = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -INT8_WEIGHT_MAX, INT8_WEIGHT_MAX)


def int8_grid_layers(net: SEResNet) -> list[str]:
    """The convolutions and Linear layers whose weights ONNX int8 rounds: all but the input convolution,
    the policy's logits convolution and the squeeze-excitations (``engine.quant.onnx_int8``)."""
    return [name for name, module in net.named_modules()
            if isinstance(module, (nn.Conv2d, nn.Linear))
            and name not in ("input.conv1", "policy.conv2") and ".se." not in name]


def add_int8_grid(net: SEResNet) -> SEResNet:
    """Register :class:`Int8Grid` on the weights of :func:`int8_grid_layers`, in place; returns ``net``."""
    for name in int8_grid_layers(net):
        parametrize.register_parametrization(net.get_submodule(name), "weight", Int8Grid())
    return net


def plain_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    """``net``'s state_dict with each parametrized weight saved as it computes (rounded to its grid), under
    its plain name (the network itself keeps its parametrizations)."""
    state = net.state_dict()
    for name, module in net.named_modules():
        if parametrize.is_parametrized(module, "weight"):
            prefix = f"{name}." if name else ""
            del state[f"{prefix}parametrizations.weight.original"]
            state[f"{prefix}weight"] = module.weight.detach().clone()
    return state
