"""Reading the torch model formats: ``state_dict`` files (fp32, pytorch-alpha-zero's dynamic int8) and
azengine's TorchScript int8 archives. Plain tensors are read with ``torch.load(..., weights_only=True)``:
nothing untrusted is unpickled."""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..backends.torch_backend import METADATA_FILE, quiet, set_qengine
from ..encoding import POLICY_SIZE
from ..errors import ModelFileError
from ..interface import AZ_INPUT, INPUT_OF_FAMILY, PLANES_OF_INPUT, WDL_FAMILIES
from . import seresnet
from .alphazero import AlphaZeroNet, architecture_of
from .lc0.adapter import FAMILY as LC0_FAMILY
from .lc0.adapter import Lc0Evaluation
from .lc0.policy import NUM_MOVES as LC0_MOVES
from .seresnet import SEResNet
from .weights_file import EXPECTED, WeightsFile, family_of_metadata

log = logging.getLogger(__name__)


def _sidecar_metadata(path: Path) -> dict[str, Any]:
    """Metadata from ``<file>.json`` beside a state_dict file (the bundled model's model card), if any."""
    card = path.with_name(path.name + ".json")
    if card.is_file():
        try:
            return dict(json.loads(card.read_text()))
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable model card %s: %s", card, exc)
    return {}


def _is_torchscript(path: Path) -> bool:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any("/code/" in n for n in names) or any(n.endswith("constants.pkl") for n in names)


def _read_archive(path: Path) -> WeightsFile:
    extra = {METADATA_FILE: ""}
    with quiet():
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    try:
        metadata = json.loads(extra[METADATA_FILE] or "{}")
    except ValueError as exc:
        raise ModelFileError(path, f"archive metadata is not JSON ({exc})") from exc
    kind = metadata.get("kind")
    if kind not in ("dynamic-int8", "static-int8"):  # fp32 models are state_dicts, never archives
        raise ModelFileError(path, f"TorchScript archive without azengine metadata; expected {EXPECTED}")
    engine = metadata.get("qengine")
    if engine:
        try:
            set_qengine(engine)
        except ValueError as exc:
            raise ModelFileError(path, str(exc)) from exc
    family = family_of_metadata(path, metadata)
    module.eval()
    planes = PLANES_OF_INPUT[INPUT_OF_FAMILY.get(family, AZ_INPUT)]
    moves = LC0_MOVES if family == LC0_FAMILY else POLICY_SIZE
    with torch.inference_mode():  # one probe: an archive of some other module must not pass as a network
        out = module(torch.zeros(1, planes, 8, 8))
    second, size = ("wdl", 3) if family in WDL_FAMILIES else ("value", 1)
    if not (isinstance(out, tuple) and len(out) == 2 and tuple(out[0].shape) == (1, moves)
            and out[1].numel() == size):
        raise ModelFileError(path, f"TorchScript archive does not map planes (1, {planes}, 8, 8) to (logits "
                                   f"(1, {moves}), {second}) as a {family} network does; expected {EXPECTED}")
    return WeightsFile(path, kind, int(metadata.get("blocks", 0)), int(metadata.get("filters", 0)),
                       module=module, metadata=metadata, family=family)


def _read_state_dict(path: Path) -> WeightsFile:
    try:
        with quiet():
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError / UnpicklingError / EOFError for bad files
        raise ModelFileError(path, f"cannot be read as a model file ({_first_line(exc)}); expected {EXPECTED}") from exc
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) for k in obj):
        raise ModelFileError(path, f"holds a {type(obj).__name__}, not a state_dict; expected {EXPECTED}")
    if seresnet.is_seresnet(obj):
        return _read_seresnet_state_dict(path, obj)
    try:
        blocks, filters = architecture_of(obj)
    except KeyError:
        raise ModelFileError(path, f"has neither a 'convBlock1.conv1.weight' (alphazero) nor an "
                                   f"'{seresnet.MARKER_KEY}' (seresnet) tensor; expected {EXPECTED}") from None
    except ValueError as exc:
        raise ModelFileError(path, f"{exc}; expected {EXPECTED}") from None
    quantized = any("_packed_params" in k for k in obj)
    kind = "dynamic-int8" if quantized else "fp32"
    return WeightsFile(path, kind, blocks, filters, state_dict=obj, metadata=_sidecar_metadata(path))


def _read_seresnet_state_dict(path: Path, state_dict: Mapping[str, Any]) -> WeightsFile:
    """An fp32 state_dict of the ``seresnet`` family (its sizes in the metadata as well)."""
    try:
        shape = seresnet.architecture_of(state_dict)
    except ValueError as exc:
        raise ModelFileError(path, f"{exc}; expected {EXPECTED}") from None
    if any("_packed_params" in k for k in state_dict):
        raise ModelFileError(path, "a quantized seresnet state_dict; azengine writes int8 networks of this family "
                                   "as TorchScript archives ('azengine quantize')")
    metadata = {"family": seresnet.FAMILY, "se_channels": shape.se_channels, **_sidecar_metadata(path)}
    return WeightsFile(path, "fp32", shape.blocks, shape.filters, state_dict=state_dict, metadata=metadata,
                       family=seresnet.FAMILY)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def summary(exc: BaseException) -> str:
    """The first two lines of ``load_state_dict``'s error (its first line alone names no key)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return " ".join(lines[:2])[:300] if lines else type(exc).__name__


def read_torch_weights(path: Path) -> WeightsFile:
    """A state_dict file or TorchScript archive (``path`` is known to be a non-empty file)."""
    try:
        archive = zipfile.is_zipfile(path) and _is_torchscript(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(path, f"truncated or damaged archive ({exc}); expected {EXPECTED}") from exc
    if archive:
        try:
            return _read_archive(path)
        except ModelFileError:
            raise
        except Exception as exc:
            raise ModelFileError(path, f"damaged TorchScript archive ({_first_line(exc)})") from exc
    return _read_state_dict(path)


def build_network(weights: WeightsFile) -> AlphaZeroNet | SEResNet | Lc0Evaluation:
    """The fp32 network of an fp32 file, of the file's family: a state_dict's (strict key and shape check),
    or an lc0 file's (:class:`Lc0Evaluation`: lc0's 112 planes in, its 1858 move logits and W/D/L out)."""
    if weights.family == LC0_FAMILY:
        if not isinstance(weights.module, Lc0Evaluation):
            raise ModelFileError(weights.path, f"is a {weights.kind} lc0 file; its .pb.gz network was expected")
        return weights.module
    if weights.state_dict is None or weights.kind != "fp32":
        raise ModelFileError(weights.path, f"is a {weights.kind} file; an fp32 state_dict was expected")
    net: AlphaZeroNet | SEResNet
    if weights.family == seresnet.FAMILY:
        shape = seresnet.architecture_of(weights.state_dict)
        net, name = SEResNet(shape.blocks, shape.filters, shape.se_channels, shape.capped), "seresnet"
    else:
        net, name = AlphaZeroNet(weights.blocks, weights.filters), "AlphaZeroNet"
    try:
        net.load_state_dict(weights.state_dict, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(weights.path, f"tensors do not fit a {weights.blocks}x{weights.filters} "
                                           f"{name} ({summary(exc)})") from None
    return net.eval()


