"""Arrow tables turned into the rows fastavro writes, column by column.

Logical types are handed to fastavro already encoded (dates as days, timestamps as
microseconds, decimals as big-endian two's complement), which it passes through untouched: no
``datetime`` or ``Decimal`` object is ever made on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _decimal_bytes(column: pa.ChunkedArray | pa.Array, size: int) -> list[bytes]:
    """Unscaled values as fixed-size big-endian bytes (the Avro decimal on ``fixed``)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if isinstance(array.type, pa.Decimal128Type):
        words = np.frombuffer(array.buffers()[1], dtype="<i8")[2 * array.offset:][: 2 * len(array)]
        unscaled = words[0::2]
    else:
        unscaled = array.to_numpy()
    encoded = unscaled.astype(">i8").view(np.uint8).reshape(len(array), 8)[:, 8 - size:]
    fixed = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(size), len(array), [None, pa.py_buffer(np.ascontiguousarray(encoded))]
    )
    return fixed.to_pylist()


def _column_values(column: pa.ChunkedArray) -> list[Any]:
    kind = column.type
    if pa.types.is_decimal(kind):
        values = _decimal_bytes(column, 8)
        if column.null_count:
            mask = column.is_null().to_pylist()
            values = [None if null else value for value, null in zip(values, mask)]
        return values
    if pa.types.is_date32(kind):
        return pc.cast(column, pa.int32()).to_pylist()
    if pa.types.is_timestamp(kind):
        return pc.cast(column, pa.int64()).to_pylist()
    return column.to_pylist()


def avro_rows(table: pa.Table, constants: Mapping[str, Any] | None = None) -> Iterable[dict]:
    """The table's rows as dicts, with ``constants`` (e.g. the vacation id) in every row."""
    names = list(table.column_names)
    columns = [_column_values(table[name]) for name in names]
    extra = dict(constants or {})
    if extra:
        names = [*extra, *names]
        columns = [*([value] * table.num_rows for value in extra.values()), *columns]
    return (dict(zip(names, values)) for values in zip(*columns))
