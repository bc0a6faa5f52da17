"""Reading lc0 weight files (``.pb.gz``): gzip, protobuf per lc0's ``proto/net.proto``, layer decoding.

What :func:`read_lc0` accepts is what :class:`~engine.nets.lc0.network.Lc0Net` runs: a residual tower
(with or without squeeze-excitation), the 112-plane classical input, a convolutional policy head and a
WDL value head, ReLU activations — the networks Maia publishes. Anything else (attention bodies, ONNX
inside the file, other inputs or heads, Mish) is a :class:`~engine.errors.ModelFileError` that names
the format. BatchNorm is folded into each convolution as lc0's loader does (``bn_stddivs`` holds
variances; epsilon 1e-5), so every convolution comes out as a weight and a bias. A moves-left head,
where a file has one, is not read (the search has no use for it).
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import ModelFileError
from .encoding import NUM_PLANES
from .wire import Message, WireFormatError, parse_message

#: ``Net.magic`` of every lc0 weight file.
WEIGHT_MAGIC = 0x1C0
GZIP_MAGIC = b"\x1f\x8b"
BN_EPSILON = 1e-5
EXPECTED = "an lc0 network (.pb.gz) with a residual body, convolutional policy and WDL value head"

INPUT_FORMATS = {0: "INPUT_UNKNOWN", 1: "INPUT_CLASSICAL_112_PLANE", 2: "INPUT_112_WITH_CASTLING_PLANE",
                 3: "INPUT_112_WITH_CANONICALIZATION", 4: "INPUT_112_WITH_CANONICALIZATION_HECTOPLIES",
                 132: "INPUT_112_WITH_CANONICALIZATION_HECTOPLIES_ARMAGEDDON",
                 5: "INPUT_112_WITH_CANONICALIZATION_V2", 133: "INPUT_112_WITH_CANONICALIZATION_V2_ARMAGEDDON"}
NETWORKS = {0: "NETWORK_UNKNOWN", 1: "NETWORK_CLASSICAL", 2: "NETWORK_SE", 3: "NETWORK_CLASSICAL_WITH_HEADFORMAT",
            4: "NETWORK_SE_WITH_HEADFORMAT", 5: "NETWORK_ONNX", 6: "NETWORK_ATTENTIONBODY_WITH_HEADFORMAT",
            7: "NETWORK_ATTENTIONBODY_WITH_MULTIHEADFORMAT", 134: "NETWORK_AB_LEGACY_WITH_MULTIHEADFORMAT"}
POLICY_FORMATS = {0: "POLICY_UNKNOWN", 1: "POLICY_CLASSICAL", 2: "POLICY_CONVOLUTION", 3: "POLICY_ATTENTION"}
VALUE_FORMATS = {0: "VALUE_UNKNOWN", 1: "VALUE_CLASSICAL", 2: "VALUE_WDL", 3: "VALUE_PARAM"}
ACTIVATIONS = {0: "DEFAULT_ACTIVATION_RELU", 1: "DEFAULT_ACTIVATION_MISH"}
ENCODINGS = {0: "UNKNOWN_ENCODING", 1: "LINEAR16", 2: "FLOAT16", 3: "BFLOAT16", 4: "FLOAT32"}

# NetworkFormat enum values this reader supports
INPUT_CLASSICAL_112_PLANE = 1
NETWORK_CLASSICAL, NETWORK_SE, NETWORK_CLASSICAL_WITH_HEADFORMAT, NETWORK_SE_WITH_HEADFORMAT = 1, 2, 3, 4
POLICY_CLASSICAL, POLICY_CONVOLUTION = 1, 2
VALUE_CLASSICAL, VALUE_WDL = 1, 2


@dataclass
class Conv:
    """One convolution with BatchNorm folded in: weight ``(out, in, k, k)`` and bias ``(out,)``."""

    weight: np.ndarray
    bias: np.ndarray


@dataclass
class SqueezeExcitation:
    """lc0's SE unit: ``w1 (hidden, C)``, ``b1``, ``w2 (2C, hidden)``, ``b2`` (scale half, then bias half)."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray


@dataclass
class ResidualBlock:
    """conv1 -> ReLU -> conv2 (-> SE) + input -> ReLU."""

    conv1: Conv
    conv2: Conv
    se: SqueezeExcitation | None


@dataclass
class Lc0Weights:
    """The tensors and format of one lc0 network file, decoded to float32."""

    path: Path
    input: Conv
    blocks: list[ResidualBlock]
    policy1: Conv
    policy: Conv
    value: Conv
    value_fc1: tuple[np.ndarray, np.ndarray]  # (out, in) weight, bias
    value_fc2: tuple[np.ndarray, np.ndarray]
    formats: dict[str, str] = field(default_factory=dict)
    license: str = ""

    @property
    def filters(self) -> int:
        """Channels of the residual tower."""
        return int(self.input.bias.shape[0])

    @property
    def has_se(self) -> bool:
        """Whether the blocks have squeeze-excitation units."""
        return any(b.se is not None for b in self.blocks)


def decode_layer(layer: Message | None, path: Path, name: str) -> np.ndarray:
    """A ``Weights.Layer``'s values as float32 (empty when the layer is absent), decoded as lc0 does."""
    if layer is None:
        return np.zeros(0, dtype=np.float32)
    encoding = layer.uint(4, default=1)  # a layer without an encoding is LINEAR16
    raw = bytes(layer.bytes_(3))
    width = 4 if encoding == 4 else 2
    if encoding not in ENCODINGS or encoding == 0:
        raise ModelFileError(path, f"layer {name} has unsupported encoding {ENCODINGS.get(encoding, encoding)}")
    if len(raw) % width:
        raise ModelFileError(path, f"layer {name}: {len(raw)} bytes is not a whole number of "
                                   f"{ENCODINGS[encoding]} values (truncated?)")
    if encoding == 1:  # LINEAR16: uint16 scaled into [min_val, max_val], in float32 like lc0
        theta = np.frombuffer(raw, dtype="<u2").astype(np.float32) / np.float32(0xFFFF)
        low, high = np.float32(layer.float32(1)), np.float32(layer.float32(2))
        return (low * (np.float32(1) - theta) + high * theta).astype(np.float32)
    if encoding == 2:
        return np.frombuffer(raw, dtype="<f2").astype(np.float32)
    if encoding == 3:  # bfloat16: the high half of a float32
        return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def _conv(block: Message | None, path: Path, name: str, in_channels: int, kernel: int) -> Conv:
    """A ``Weights.ConvBlock`` as one convolution, BatchNorm folded the way lc0's loader folds it."""
    if block is None:
        raise ModelFileError(path, f"has no {name} convolution; expected {EXPECTED}")
    weights = decode_layer(block.message(1), path, f"{name}.weights")
    biases, means, variances, gammas, betas = (decode_layer(block.message(i), path, f"{name}.{n}") for i, n in
                                               ((2, "biases"), (3, "bn_means"), (4, "bn_stddivs"),
                                                (5, "bn_gammas"), (6, "bn_betas")))
    outputs = len(biases) or len(means)
    if outputs == 0 or weights.size != outputs * in_channels * kernel * kernel:
        raise ModelFileError(path, f"{name}: {weights.size} weights do not fit a {kernel}x{kernel} convolution "
                                   f"from {in_channels} channels to {outputs}")
    weight = weights.reshape(outputs, in_channels, kernel, kernel).copy()
    bias = biases.copy() if len(biases) else np.zeros(outputs, dtype=np.float32)
    if len(means):
        if not len(betas):
            gammas, betas = np.ones(outputs, np.float32), np.zeros(outputs, np.float32)
        if not (len(means) == len(variances) == len(gammas) == len(betas) == outputs):
            raise ModelFileError(path, f"{name}: batch-norm vectors do not have {outputs} entries")
        scale = (gammas / np.sqrt(variances + np.float32(BN_EPSILON))).astype(np.float32)
        weight *= scale[:, None, None, None]
        bias = (scale * (bias - means) + betas).astype(np.float32)
    return Conv(weight, bias.astype(np.float32))


def _dense(weights: Message, w_field: int, b_field: int, path: Path, name: str,
           inputs: int) -> tuple[np.ndarray, np.ndarray]:
    """A fully connected layer's weight ``(outputs, inputs)`` (lc0 stores it row-major, like torch) and bias."""
    w = decode_layer(weights.message(w_field), path, f"{name}_w")
    b = decode_layer(weights.message(b_field), path, f"{name}_b")
    if len(b) == 0 or w.size != len(b) * inputs:
        raise ModelFileError(path, f"{name}: {w.size} weights do not fit a layer from {inputs} inputs "
                                   f"to {len(b)} outputs")
    return w.reshape(len(b), inputs), b


def _se(unit: Message | None, path: Path, name: str, channels: int) -> SqueezeExcitation | None:
    if unit is None:
        return None
    w1, b1, w2, b2 = (decode_layer(unit.message(i), path, f"{name}.{n}")
                      for i, n in ((1, "w1"), (2, "b1"), (3, "w2"), (4, "b2")))
    hidden = len(b1)
    if hidden == 0 or w1.size != hidden * channels or len(b2) != 2 * channels or w2.size != 2 * channels * hidden:
        raise ModelFileError(path, f"{name}: squeeze-excitation shapes do not fit {channels} channels")
    return SqueezeExcitation(w1.reshape(hidden, channels), b1, w2.reshape(2 * channels, hidden), b2)


def _decompress(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError as exc:
        raise ModelFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    if head != GZIP_MAGIC:
        raise ModelFileError(path, f"is not gzip-compressed; expected {EXPECTED}")
    try:
        return gzip.decompress(path.read_bytes())
    except (EOFError, OSError, zlib.error) as exc:
        raise ModelFileError(path, f"truncated or damaged gzip data ({exc})") from None


def _check_format(path: Path, net: Message, weights: Message) -> dict[str, str]:
    """The file's network format after lc0's fix-ups of older files; ModelFileError if we cannot run it."""
    fmt = net.message(4)
    nf = fmt.message(2) if fmt is not None else None
    if nf is None:  # files older than the format fields: classical body and heads
        input_format, network, policy, value, activation = 1, NETWORK_CLASSICAL_WITH_HEADFORMAT, 1, 1, 0
    else:
        input_format, network = nf.uint(1), nf.uint(3)
        policy, value, activation = nf.uint(4), nf.uint(5), nf.uint(7)
        if network in (NETWORK_CLASSICAL, NETWORK_SE):  # lc0's loader: these imply classical heads
            network = NETWORK_CLASSICAL_WITH_HEADFORMAT if network == NETWORK_CLASSICAL else NETWORK_SE_WITH_HEADFORMAT
            policy, value = POLICY_CLASSICAL, VALUE_CLASSICAL
    if weights.has(27) or network in (6, 7, 134):
        raise ModelFileError(path, "is an attention-body lc0 network (NETWORK_ATTENTIONBODY...); only "
                                   "residual convolutional bodies are supported")
    formats = {"input": INPUT_FORMATS.get(input_format, str(input_format)),
               "network": NETWORKS.get(network, str(network)),
               "policy": POLICY_FORMATS.get(policy, str(policy)),
               "value": VALUE_FORMATS.get(value, str(value)),
               "activation": ACTIVATIONS.get(activation, str(activation))}
    supported = (("input", input_format, INPUT_CLASSICAL_112_PLANE, INPUT_FORMATS),
                 ("policy", policy, POLICY_CONVOLUTION, POLICY_FORMATS),
                 ("value", value, VALUE_WDL, VALUE_FORMATS),
                 ("activation", activation, 0, ACTIVATIONS))
    for key, got, wanted, names in supported:
        if got != wanted:
            raise ModelFileError(path, f"has {key} format {formats[key]}; supported: {names[wanted]} only")
    if network not in (NETWORK_CLASSICAL_WITH_HEADFORMAT, NETWORK_SE_WITH_HEADFORMAT):
        raise ModelFileError(path, f"has network structure {formats['network']}; supported: residual bodies")
    return formats


def read_lc0(path: str | Path) -> Lc0Weights:
    """Read an lc0 ``.pb.gz`` network; :class:`ModelFileError` names the file and what is wrong or unsupported."""
    path = Path(path)
    buffer = _decompress(path)
    if buffer[:2] in (b"1\n", b"2\n"):
        raise ModelFileError(path, "is an old text-format lc0 network; only protobuf (.pb.gz) files are supported")
    if not _starts_with_magic(buffer):
        raise ModelFileError(path, f"is gzip data but not an lc0 network (no 0x1c0 magic); expected {EXPECTED}")
    try:
        net = parse_message(buffer)
        if net.has(11):
            raise ModelFileError(path, "holds an ONNX model (lc0 NETWORK_ONNX); only lc0 weight files are supported")
        weights = net.message(10)
        if weights is None:
            raise ModelFileError(path, f"has no weights; expected {EXPECTED}")
        formats = _check_format(path, net, weights)
        return _read_body(path, weights, formats, bytes(net.bytes_(2)).decode("utf-8", "replace"))
    except WireFormatError as exc:
        raise ModelFileError(path, f"damaged or truncated protobuf data ({exc})") from None


def _read_body(path: Path, weights: Message, formats: dict[str, str], license_text: str) -> Lc0Weights:
    first = _conv(weights.message(1), path, "input", NUM_PLANES, 3)
    channels = len(first.bias)
    blocks = []
    for i, res in enumerate(weights.messages(2)):
        blocks.append(ResidualBlock(_conv(res.message(1), path, f"residual[{i}].conv1", channels, 3),
                                    _conv(res.message(2), path, f"residual[{i}].conv2", channels, 3),
                                    _se(res.message(3), path, f"residual[{i}].se", channels)))
    if not blocks:
        raise ModelFileError(path, f"has no residual blocks; expected {EXPECTED}")
    policy1 = _conv(weights.message(11), path, "policy1", channels, 3)
    policy = _conv(weights.message(3), path, "policy", channels, 3)
    value = _conv(weights.message(6), path, "value", channels, 1)
    fc1 = _dense(weights, 7, 8, path, "ip1_val", len(value.bias) * 64)
    fc2 = _dense(weights, 9, 10, path, "ip2_val", len(fc1[1]))
    if len(fc2[1]) != 3:
        raise ModelFileError(path, f"WDL value head has {len(fc2[1])} outputs, expected 3")
    return Lc0Weights(path, first, blocks, policy1, policy, value, fc1, fc2, formats, license_text)


def looks_like_lc0(path: str | Path) -> bool:
    """Whether the file is gzip data that starts like an lc0 network (magic 0x1c0 in field 1)."""
    try:
        with gzip.open(path, "rb") as f:
            return _starts_with_magic(f.read(5))
    except (OSError, EOFError, zlib.error):
        return False


def _starts_with_magic(head: bytes) -> bool:
    """lc0 writes ``Net.magic`` (field 1, fixed32) first: byte 0x0d, then 0x1c0 little-endian."""
    return len(head) >= 5 and head[0] == 0x0D and int.from_bytes(head[1:5], "little") == WEIGHT_MAGIC
