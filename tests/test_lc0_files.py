"""Reading lc0 .pb.gz files (engine.nets.lc0.weights): Maia, every layer encoding, BatchNorm folding, and a
clear ModelFileError for each kind of file it cannot run."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.errors import ModelFileError
from engine.nets.lc0 import looks_like_lc0, read_lc0
from engine.nets.lc0.network import build_lc0_net
from engine.nets.lc0.weights import decode_layer
from engine.nets.lc0.wire import parse_message
from tests.lc0_tools import maia_path

MAIA = maia_path("maia-1900")
needs_maia = pytest.mark.skipif(MAIA is None, reason="shared/nets/maia-1900.pb.gz is not here")


# ---- a tiny protobuf writer, to make files with known contents ------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _uint(field: int, n: int) -> bytes:
    return _varint(field << 3) + _varint(n)


def _msg(field: int, data: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _f32(field: int, x: float) -> bytes:
    return _varint(field << 3 | 5) + struct.pack("<f", x)


def _layer(values: np.ndarray, encoding: str = "FLOAT32") -> bytes:
    values = np.asarray(values, dtype=np.float32).ravel()
    if encoding == "FLOAT32":
        return _uint(4, 4) + _msg(3, values.tobytes())
    if encoding == "FLOAT16":
        return _uint(4, 2) + _msg(3, values.astype("<f2").tobytes())
    if encoding == "BFLOAT16":
        return _uint(4, 3) + _msg(3, (values.view(np.uint32) >> 16).astype("<u2").tobytes())
    low, high = float(values.min()), float(values.max())
    q = np.round((values - low) / (high - low) * 0xFFFF).astype("<u2")
    return _f32(1, low) + _f32(2, high) + _msg(3, q.tobytes())  # LINEAR16 is the default: no encoding field


def _net(weights: bytes, input_format: int = 1, network: int = 4, policy: int = 2, value: int = 2,
         extra: bytes = b"") -> bytes:
    network_format = _uint(1, input_format) + _uint(2, 2) + _uint(3, network) + _uint(4, policy) + _uint(5, value)
    magic = _varint(1 << 3 | 5) + struct.pack("<I", 0x1C0)
    return magic + _msg(4, _uint(1, 1) + _msg(2, network_format)) + _msg(10, weights) + extra


def _conv_block(rng: np.random.Generator, out: int, inp: int, k: int, encoding: str, bn: bool = True) -> bytes:
    data = _msg(1, _layer(rng.normal(0, 0.3, (out, inp, k, k)), encoding))
    if bn:
        data += _msg(2, _layer(rng.normal(0, 0.1, out), encoding))
        data += _msg(3, _layer(rng.normal(0, 0.2, out), encoding))  # means
        data += _msg(4, _layer(rng.uniform(0.5, 1.5, out), encoding))  # variances ("stddivs")
        data += _msg(5, _layer(rng.uniform(0.8, 1.2, out), encoding))  # gammas
        data += _msg(6, _layer(rng.normal(0, 0.1, out), encoding))  # betas
    else:
        data += _msg(2, _layer(rng.normal(0, 0.1, out), encoding))
    return data


def _tiny_network(encoding: str, filters: int = 8, blocks: int = 2, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    w = _msg(1, _conv_block(rng, filters, 112, 3, encoding))
    for _ in range(blocks):
        se = b"".join(_msg(i, _layer(rng.normal(0, 0.3, shape), encoding)) for i, shape in
                      ((1, (4, filters)), (2, (4,)), (3, (2 * filters, 4)), (4, (2 * filters,))))
        w += _msg(2, _msg(1, _conv_block(rng, filters, filters, 3, encoding))
                  + _msg(2, _conv_block(rng, filters, filters, 3, encoding)) + _msg(3, se))
    w += _msg(11, _conv_block(rng, filters, filters, 3, encoding))
    w += _msg(3, _conv_block(rng, 80, filters, 3, encoding, bn=False))
    w += _msg(6, _conv_block(rng, 32, filters, 1, encoding))
    for field, shape in ((7, (128, 32 * 64)), (8, (128,)), (9, (3, 128)), (10, (3,))):
        w += _msg(field, _layer(rng.normal(0, 0.05, shape), encoding))
    return _net(w)


def _write(tmp_path, name: str, data: bytes, compress: bool = True):
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


# ---- tests ---------------------------------------------------------------------------------------
@needs_maia
def test_maia_reads_as_6x64_se():
    assert looks_like_lc0(MAIA)
    weights = read_lc0(MAIA)
    assert (len(weights.blocks), weights.filters, weights.has_se) == (6, 64, True)
    assert weights.formats == {"input": "INPUT_CLASSICAL_112_PLANE", "network": "NETWORK_SE_WITH_HEADFORMAT",
                               "policy": "POLICY_CONVOLUTION", "value": "VALUE_WDL",
                               "activation": "DEFAULT_ACTIVATION_RELU"}
    assert weights.policy.weight.shape == (80, 64, 3, 3) and weights.value_fc1[0].shape == (128, 2048)
    assert all(np.isfinite(b.conv1.weight).all() for b in weights.blocks)


@pytest.mark.parametrize("encoding", ["LINEAR16", "FLOAT16", "BFLOAT16", "FLOAT32"])
def test_layer_encodings(encoding):
    values = np.array([-1.5, -0.25, 0.0, 0.3, 2.0], dtype=np.float32)
    decoded = decode_layer(parse_message(_layer(values, encoding)), MAIA or "x", "test")
    tolerance = {"LINEAR16": 3.5 / 65535, "FLOAT16": 1e-3, "BFLOAT16": 1e-2, "FLOAT32": 0}[encoding]
    np.testing.assert_allclose(decoded, values, atol=tolerance, rtol=0)


def _reference_forward(path, planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The tiny network's forward pass straight from the file's fields, BatchNorm unfolded."""
    weights = parse_message(gzip.decompress(path.read_bytes())).message(10)

    def arr(layer):
        return torch.from_numpy(decode_layer(layer, path, "ref"))

    def conv(block, x, k):
        w = arr(block.message(1))
        out = arr(block.message(2)).shape[0]
        y = F.conv2d(x, w.reshape(out, -1, k, k), arr(block.message(2)), padding=k // 2)
        if block.has(3):
            mean, var, gamma, beta = (arr(block.message(i))[None, :, None, None] for i in (3, 4, 5, 6))
            y = (y - mean) / torch.sqrt(var + 1e-5) * gamma + beta
        return y

    x = F.relu(conv(weights.message(1), planes, 3))
    for res in weights.messages(2):
        y = conv(res.message(2), F.relu(conv(res.message(1), x, 3)), 3)
        se = res.message(3)
        w1, b1, w2, b2 = (arr(se.message(i)) for i in (1, 2, 3, 4))
        s = F.linear(F.relu(F.linear(y.mean((2, 3)), w1.reshape(len(b1), -1), b1)), w2.reshape(len(b2), -1), b2)
        c = y.shape[1]
        x = F.relu(torch.sigmoid(s[:, :c])[:, :, None, None] * y + s[:, c:, None, None] + x)
    p = conv(weights.message(3), F.relu(conv(weights.message(11), x, 3)), 3).flatten(1)
    v = F.relu(conv(weights.message(6), x, 1)).flatten(1)
    v = F.relu(F.linear(v, arr(weights.message(7)).reshape(128, -1), arr(weights.message(8))))
    wdl = F.linear(v, arr(weights.message(9)).reshape(3, -1), arr(weights.message(10)))
    return p, wdl


@pytest.mark.parametrize("encoding", ["LINEAR16", "FLOAT16", "FLOAT32"])
def test_tiny_network_matches_unfolded_reference(tmp_path, encoding):
    from engine.nets.lc0.policy import CONV_POLICY_MAP

    path = _write(tmp_path, f"tiny-{encoding}.pb.gz", _tiny_network(encoding))
    assert looks_like_lc0(path)
    net = build_lc0_net(read_lc0(path))
    planes = (torch.rand(5, 112, 8, 8, generator=torch.Generator().manual_seed(1)) > 0.7).float()
    with torch.no_grad():
        policy, wdl = net(planes)
        raw_policy, raw_wdl = _reference_forward(path, planes)
    torch.testing.assert_close(wdl, raw_wdl, atol=1e-3, rtol=1e-3)  # folding reorders the float sums
    mapped = torch.zeros(5, 1858)
    used = np.nonzero(CONV_POLICY_MAP >= 0)[0]
    mapped[:, torch.from_numpy(CONV_POLICY_MAP[used].astype(np.int64))] = raw_policy[:, torch.from_numpy(used)]
    torch.testing.assert_close(policy, mapped, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("kind, expected", [
    ("text", "not gzip"),
    ("truncated gzip", "truncated or damaged gzip"),
    ("not lc0", "not an lc0 network"),
    ("attention", "attention-body"),
    ("canonical input", "INPUT_112_WITH_CANONICALIZATION"),
    ("attention policy", "POLICY_ATTENTION"),
    ("classical value", "VALUE_CLASSICAL"),
    ("onnx", "ONNX"),
    ("truncated protobuf", "truncated"),
    ("no weights", "has no weights"),
])
def test_unsupported_and_damaged_files(tmp_path, kind, expected):
    tiny = _tiny_network("FLOAT16", filters=4, blocks=1)
    data, compress = {
        "text": (b"not a network\n", False),
        "truncated gzip": (gzip.compress(tiny)[:300], False),
        "not lc0": (b"\x08\x01hello", True),
        "attention": (_net(_msg(27, b"")), True),
        "canonical input": (_net(b"", input_format=3), True),
        "attention policy": (_net(b"", policy=3), True),
        "classical value": (_net(b"", value=1), True),
        "onnx": (_net(b"") + _msg(11, b"\x08\x01"), True),
        "truncated protobuf": (tiny[:len(tiny) // 2], True),
        "no weights": (_net(b"")[:-2], True),
    }[kind]
    path = _write(tmp_path, "net.pb.gz", data, compress)
    with pytest.raises(ModelFileError) as info:
        read_lc0(path)
    assert str(path) in str(info.value) and expected in str(info.value)
