"""Arrow columns to CQL wire values, a column at a time.

The driver binds one Python value at a time (several microseconds per value); writing millions
of rows, that would cost more than Cassandra itself. These serializers turn a whole Arrow column
into the bytes the native protocol carries, with numpy where the encoding is fixed-width.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Values = list[Optional[bytes]]

_DATE_EPOCH = 1 << 31  # a CQL date is an unsigned day count centred on 1970-01-01


def _with_nulls(column: pa.ChunkedArray, values: Values) -> Values:
    if column.null_count:
        for index in np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False)).tolist():
            values[index] = None
    return values


def _fixed(array: np.ndarray, dtype: str) -> Values:
    raw = array.astype(dtype).tobytes()
    size = np.dtype(dtype).itemsize
    return [raw[start:start + size] for start in range(0, len(raw), size)]


def _numbers(dtype: str, arrow_type: pa.DataType) -> Callable[[pa.ChunkedArray], Values]:
    def serialize(column: pa.ChunkedArray) -> Values:
        filled = pc.fill_null(pc.cast(column, arrow_type), 0)
        return _with_nulls(column, _fixed(filled.to_numpy(), dtype))
    return serialize


def _text(column: pa.ChunkedArray) -> Values:
    return pc.cast(column, pa.binary()).to_pylist()


def _date(column: pa.ChunkedArray) -> Values:
    days = pc.fill_null(pc.cast(column, pa.date32()), 0).cast(pa.int32()).to_numpy()
    return _with_nulls(column, _fixed(days.astype(np.int64) + _DATE_EPOCH, ">u4"))


def _timestamp(column: pa.ChunkedArray) -> Values:
    unit = column.type.unit
    per_ms = {"s": None, "ms": 1, "us": 1000, "ns": 1_000_000}[unit]
    ticks = pc.fill_null(column.cast(pa.int64()), 0).to_numpy()
    millis = ticks * 1000 if per_ms is None else np.floor_divide(ticks, per_ms)
    return _with_nulls(column, _fixed(millis, ">i8"))


def _unscaled(column: pa.ChunkedArray) -> np.ndarray:
    """The int64 unscaled values of a decimal128 column (precision 18 at most)."""
    parts = []
    for chunk in column.chunks:
        words = np.frombuffer(chunk.buffers()[1], dtype="<i8")
        parts.append(words[2 * chunk.offset:2 * (chunk.offset + len(chunk)):2])
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _decimal(column: pa.ChunkedArray) -> Values:
    if not pa.types.is_decimal(column.type) or column.type.precision > 18:
        column = pc.cast(column, pa.decimal128(18, getattr(column.type, "scale", 0)))
    unscaled = _unscaled(column)
    scale = struct.pack(">i", column.type.scale)
    # a varint is the shortest big-endian two's complement: count the bytes it needs
    magnitude = np.where(unscaled < 0, ~unscaled, unscaled)
    lengths = np.ones(len(unscaled), np.int64)
    for size in range(1, 8):
        lengths += magnitude >= (1 << (8 * size - 1))
    raw = unscaled.astype(">i8").tobytes()
    values = [scale + raw[8 * index + 8 - length:8 * index + 8]
              for index, length in enumerate(lengths.tolist())]
    return _with_nulls(column, values)


def _boolean(column: pa.ChunkedArray) -> Values:
    flags = pc.fill_null(column, False).to_numpy(zero_copy_only=False)
    return _with_nulls(column, [b"\x01" if flag else b"\x00" for flag in flags.tolist()])


def _uuid(column: pa.ChunkedArray) -> Values:
    """A uuid or timeuuid column (Arrow's ``arrow.uuid``, or ``uuid.UUID`` objects)."""
    return [None if value is None else value.bytes for value in column.to_pylist()]


def _map(key_type: str, item_type: str) -> Callable[[pa.ChunkedArray], Values]:
    """A ``map<K, V>`` column: per row, the entry count, then each key and value as [bytes]."""
    def serialize(column: pa.ChunkedArray) -> Values:
        values: Values = []
        for chunk in column.chunks:
            keys = SERIALIZERS[key_type](pa.chunked_array([chunk.keys]))
            items = SERIALIZERS[item_type](pa.chunked_array([chunk.items]))
            offsets = chunk.offsets.to_pylist()
            for row, valid in enumerate(chunk.is_valid().to_pylist()):
                if not valid:
                    values.append(None)
                    continue
                entries = range(offsets[row], offsets[row + 1])
                values.append(struct.pack(">i", len(entries)) + b"".join(
                    _framed(keys[entry]) + _framed(items[entry]) for entry in entries))
        return values
    return serialize


def _framed(value: Optional[bytes]) -> bytes:
    return struct.pack(">i", -1) if value is None else struct.pack(">i", len(value)) + value


SERIALIZERS: dict[str, Callable[[pa.ChunkedArray], Values]] = {
    "text": _text, "varchar": _text, "ascii": _text,
    "int": _numbers(">i4", pa.int32()), "bigint": _numbers(">i8", pa.int64()),
    "smallint": _numbers(">i2", pa.int16()), "tinyint": _numbers(">i1", pa.int8()),
    "double": _numbers(">f8", pa.float64()), "float": _numbers(">f4", pa.float32()),
    "date": _date, "timestamp": _timestamp, "decimal": _decimal, "boolean": _boolean,
    "uuid": _uuid, "timeuuid": _uuid,
}


def map_types(cql_type: str) -> Optional[tuple[str, str]]:
    """The key and value type names of a ``map<K, V>`` type name; None for another type."""
    if cql_type.startswith("map<") and cql_type.endswith(">"):
        key_type, _, item_type = cql_type[4:-1].partition(",")
        return key_type.strip(), item_type.strip()
    return None


def serializer(cql_type: str) -> Optional[Callable[[pa.ChunkedArray], Values]]:
    """The serializer of a CQL type name (``map<K, V>`` of serializable K and V too)."""
    if types := map_types(cql_type):
        return _map(*types) if all(name in SERIALIZERS for name in types) else None
    return SERIALIZERS.get(cql_type)


def serialize_columns(table: pa.Table, columns: Sequence[tuple[str, str]]) -> list[Values]:
    """The wire values of ``columns`` (name, CQL type name) of ``table``, column by column."""
    return [serializer(cql_type)(table[name]) for name, cql_type in columns]


def routing_keys(partition_values: Sequence[Values]) -> list[bytes]:
    """Each row's routing key: the partition key's value, or its components, framed."""
    if len(partition_values) == 1:
        return [part or b"" for part in partition_values[0]]
    return [b"".join(struct.pack(">H", len(part or b"")) + (part or b"") + b"\x00"
                     for part in parts)
            for parts in zip(*partition_values)]
