"""A small reader of the protobuf wire format: enough to walk lc0's ``net.proto`` messages.

A message is a sequence of (field number, wire type, value) records. :func:`parse_message` groups
them by field number; the typed accessors of :class:`Message` read one field as an integer, a float,
bytes, a sub-message or a repeated list. No generated code and no ``protobuf`` dependency: lc0's files
use only varints, fixed32 floats, length-delimited bytes and sub-messages.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


class WireFormatError(ValueError):
    """The bytes are not a well-formed protobuf message (truncated, or an unknown wire type)."""


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    result = shift = 0
    while True:
        if pos >= len(data):
            raise WireFormatError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireFormatError("varint longer than 10 bytes")


def _records(data: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of each record of one message."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise WireFormatError("field number 0")
        if wire == VARINT:
            value, pos = _varint(data, pos)
            yield field, wire, value
        elif wire in (FIXED64, FIXED32):
            size = 8 if wire == FIXED64 else 4
            if pos + size > len(data):
                raise WireFormatError("truncated fixed-size field")
            yield field, wire, int.from_bytes(data[pos:pos + size], "little")
            pos += size
        elif wire == LENGTH_DELIMITED:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise WireFormatError(f"field {field} runs past the end of its message")
            yield field, wire, data[pos:pos + size]
            pos += size
        else:
            raise WireFormatError(f"unsupported wire type {wire} (field {field})")


@dataclass
class Message:
    """One parsed message: its records by field number, read through typed accessors."""

    fields: dict[int, list[tuple[int, int | memoryview]]]

    def has(self, field: int) -> bool:
        """Whether the field is present."""
        return field in self.fields

    def _last(self, field: int) -> tuple[int, int | memoryview] | None:
        values = self.fields.get(field)
        return values[-1] if values else None  # protobuf: the last occurrence of a singular field wins

    def uint(self, field: int, default: int = 0) -> int:
        """A varint or fixed-size field as an unsigned integer."""
        record = self._last(field)
        if record is None:
            return default
        wire, value = record
        if wire == LENGTH_DELIMITED:
            raise WireFormatError(f"field {field} is length-delimited, expected a number")
        return int(value)  # type: ignore[arg-type]

    def float32(self, field: int, default: float = 0.0) -> float:
        """A fixed32 field as an IEEE float."""
        record = self._last(field)
        if record is None:
            return default
        wire, value = record
        if wire != FIXED32:
            raise WireFormatError(f"field {field} is not a fixed32 float")
        return float(struct.unpack("<f", int(value).to_bytes(4, "little"))[0])  # type: ignore[arg-type]

    def bytes_(self, field: int) -> memoryview:
        """A length-delimited field's bytes (empty when absent)."""
        record = self._last(field)
        if record is None:
            return memoryview(b"")
        wire, value = record
        if wire != LENGTH_DELIMITED:
            raise WireFormatError(f"field {field} is not length-delimited")
        return value  # type: ignore[return-value]

    def message(self, field: int) -> Message | None:
        """A sub-message, or None when absent."""
        return parse_message(self.bytes_(field)) if self.has(field) else None

    def messages(self, field: int) -> list[Message]:
        """A repeated sub-message field, in file order."""
        out = []
        for wire, value in self.fields.get(field, []):
            if wire != LENGTH_DELIMITED:
                raise WireFormatError(f"field {field} is not a message")
            out.append(parse_message(value))  # type: ignore[arg-type]
        return out

    def uints(self, field: int) -> list[int]:
        """A repeated integer field, packed or not."""
        out: list[int] = []
        for wire, value in self.fields.get(field, []):
            if wire == LENGTH_DELIMITED:
                packed, pos = value, 0  # type: ignore[assignment]
                while pos < len(packed):  # type: ignore[arg-type]
                    number, pos = _varint(packed, pos)  # type: ignore[arg-type]
                    out.append(number)
            else:
                out.append(int(value))  # type: ignore[arg-type]
        return out


def parse_message(data: bytes | memoryview) -> Message:
    """Parse one message's records (sub-messages are parsed when asked for)."""
    fields: dict[int, list[tuple[int, int | memoryview]]] = {}
    for field, wire, value in _records(memoryview(data)):
        fields.setdefault(field, []).append((wire, value))
    return Message(fields)
