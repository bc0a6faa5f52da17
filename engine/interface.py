"""What the search and the UCI loop see of a network (torch-free, so that ``search`` never imports torch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

#: Evaluator kinds the ``Backend`` option accepts ("auto" picks what the file is).
BACKENDS = ("auto", "fp32", "dynamic-int8", "static-int8", "onnx-fp32", "onnx-int8")
#: Network families (:mod:`engine.nets`): pytorch-alpha-zero's AlphaZeroNet, and ours (SE, convolutional
#: policy, WDL head). A file without a family in its metadata is ``alphazero``.
FAMILIES = ("alphazero", "seresnet")
DEFAULT_FAMILY = "alphazero"
#: Families whose value head gives win/draw/loss probabilities (their evaluators have ``evaluate_wdl``).
WDL_FAMILIES = frozenset({"seresnet", "lc0"})
#: What an evaluator takes and gives (its ``input_format``). ``AZ_INPUT``: azengine's 16 planes
#: ``(B, 16, 8, 8)`` in, logits over the 4608 index out (``engine.encoding``). ``LC0_INPUT``: lc0's 112
#: planes ``(B, 112, 8, 8)`` with 8 positions of history in, logits over lc0's 1858 moves out
#: (``engine.nets.lc0.encoding`` / ``.policy``). An evaluator without the attribute is ``AZ_INPUT``.
AZ_INPUT = "az16"
LC0_INPUT = "lc0-112"
INPUT_OF_FAMILY = {"lc0": LC0_INPUT}
#: Planes per position of each input format.
PLANES_OF_INPUT = {AZ_INPUT: 16, LC0_INPUT: 112}


@dataclass
class ModelInfo:
    """What is known about a loaded network: shown in ``info string`` and by ``azengine bench``."""

    path: str
    kind: str
    blocks: int
    filters: int
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    family: str = DEFAULT_FAMILY

    @property
    def has_wdl(self) -> bool:
        """Whether the network's value head gives win/draw/loss probabilities."""
        return self.family in WDL_FAMILIES

    @property
    def input_format(self) -> str:
        """``AZ_INPUT`` or ``LC0_INPUT``: the planes the network takes and the policy index it gives."""
        return INPUT_OF_FAMILY.get(self.family, AZ_INPUT)

    def describe(self) -> str:
        """One line for a user: file, family and size of the network, backend and what the file says of itself."""
        se = self.metadata.get("se_channels")
        text = f"{self.path}: {self.family} {self.blocks}x{self.filters}{' SE' if se else ''} {self.kind}"
        if desc := self.metadata.get("description"):
            text += f" ({desc})"
        return text


class Evaluator(Protocol):
    """A network backend: any batch of encoded positions in, policy logits and values out.

    ``input_format`` (optional, ``AZ_INPUT`` when absent) says which planes it takes and which policy
    index its logits follow: ``AZ_INPUT`` 16 planes -> 4608 logits, ``LC0_INPUT`` 112 planes -> 1858.
    """

    kind: str

    def evaluate(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Policy logits ``(B, 4608)`` float32 and values ``(B,)`` float32 in [-1, 1] (side to move's view)
        for float32 planes ``(B, 16, 8, 8)``; for ``LC0_INPUT`` logits ``(B, 1858)`` for planes
        ``(B, 112, 8, 8)``."""
        ...


def input_format_of(evaluator: Any) -> str:
    """The evaluator's ``input_format`` (``AZ_INPUT`` for one that declares none)."""
    return str(getattr(evaluator, "input_format", AZ_INPUT))


class WdlEvaluator(Evaluator, Protocol):
    """An evaluator of a network with a WDL value head (``has_wdl`` True): it also gives W/D/L."""

    has_wdl: bool

    def evaluate_wdl(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Policy logits ``(B, 4608)`` float32 and win/draw/loss probabilities ``(B, 3)`` float32 (side to
        move; each row sums to 1) for float32 planes ``(B, 16, 8, 8)`` (``LC0_INPUT``: as ``evaluate``)."""
        ...


def values_of_wdl(wdl: np.ndarray) -> np.ndarray:
    """Q = W - L of win/draw/loss probabilities ``(B, 3)``, as float32 ``(B,)``."""
    return (wdl[:, 0] - wdl[:, 2]).astype(np.float32)


def wdl_per_mille(wdl: np.ndarray) -> tuple[int, int, int]:
    """One position's win/draw/loss probabilities as per mille integers that sum to exactly 1000 (each
    rounded down, then the largest remainders rounded up), as UCI's ``info ... wdl`` shows them."""
    scaled = np.asarray(wdl, dtype=np.float64).reshape(3) * 1000.0 / max(float(np.sum(wdl)), 1e-12)
    floors = np.floor(scaled).astype(np.int64)
    for i in np.argsort(floors - scaled)[: 1000 - int(floors.sum())]:  # largest remainders first
        floors[i] += 1
    return int(floors[0]), int(floors[1]), int(floors[2])


class NetworkEvaluator:
    """What the backends share: ``_run`` gives a network's two outputs, (logits, value) or (logits, W/D/L
    probabilities) by family (``has_wdl``); :meth:`evaluate` and :meth:`evaluate_wdl` build on it."""

    info: ModelInfo
    has_wdl: bool

    @property
    def input_format(self) -> str:
        """The planes this network takes and its policy index (``AZ_INPUT`` / ``LC0_INPUT``, by family)."""
        return self.info.input_format

    def _run(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _checked(self, planes: np.ndarray) -> np.ndarray:
        expected = PLANES_OF_INPUT[self.input_format]
        if planes.ndim != 4 or planes.shape[1:] != (expected, 8, 8):
            raise ValueError(f"{self.info.path}: a {self.info.family} network takes planes (B, {expected}, 8, 8) "
                             f"({self.input_format}), not {tuple(planes.shape)}")
        return planes

    def evaluate(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Policy logits ``(B, 4608)`` and values ``(B,)`` (W - L for a WDL network) for float32 planes
        ``(B, 16, 8, 8)``; for ``LC0_INPUT`` logits ``(B, 1858)`` for planes ``(B, 112, 8, 8)``."""
        logits, second = self._run(self._checked(planes))
        return logits, values_of_wdl(second) if self.has_wdl else second.reshape(-1)

    def evaluate_wdl(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Policy logits ``(B, 4608)`` and win/draw/loss probabilities ``(B, 3)``; ``TypeError`` for a network
        without a WDL head (``has_wdl`` False)."""
        if not self.has_wdl:
            raise TypeError(f"{self.info.path}: a {self.info.family} network has no WDL head")
        return self._run(self._checked(planes))


class UniformEvaluator:
    """Equal logits and a zero value for every position: no network work (tests, tree-speed benchmark)."""

    kind = "uniform"
    has_wdl = False
    input_format = AZ_INPUT

    def evaluate(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Zero logits ``(B, 4608)`` and zero values ``(B,)``."""
        n = len(planes)
        return np.zeros((n, 4608), dtype=np.float32), np.zeros(n, dtype=np.float32)
