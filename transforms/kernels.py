"""The compiled kernels of the per-record hot path, called with Arrow and numpy arrays.

They are the ``cre_native`` extension, built from ``native/`` (Rust, PyO3) by ``make setup``.
Each is the twin of a reference written with numpy and Arrow in the module that calls it
(``csv_records``, ``keys``, ``rules``, ``io_connectors.avro_blocks``), named in its Rust doc
comment. ``--hot-path python`` runs the references instead, and ``tests/test_kernels.py``
holds the two paths equal. The kernels read the arrays' buffers in place and release the GIL,
so the bzip2 decoder threads and the pipeline share the cores.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HOT_PATHS = ("native", "python")


class KernelsMissing(RuntimeError):
    """``--hot-path native`` where the extension was not built."""


@functools.cache
def _native() -> ModuleType:
    try:
        import cre_native
    except ImportError as error:
        raise KernelsMissing(
            f"the compiled kernels (cre_native) are not installed here ({error}): make setup "
            "builds them from native/; --hot-path python runs without them") from None
    return cre_native


def native(hot_path: str) -> bool:
    """Whether ``hot_path`` runs the compiled kernels, checking they are there if so."""
    if hot_path not in HOT_PATHS:
        raise ValueError(f"hot_path must be one of {HOT_PATHS}, not {hot_path!r}")
    if hot_path == "native":
        _native()
    return hot_path == "native"


def _array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if not isinstance(column, pa.ChunkedArray):
        return column
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _u8(buffer: Optional[pa.Buffer]) -> np.ndarray:
    """An Arrow buffer as the unsigned bytes the kernels take (Arrow's are signed: 'b')."""
    return np.frombuffer(buffer, dtype=np.uint8) if buffer is not None else _EMPTY


_EMPTY = np.zeros(0, dtype=np.uint8)


def _strings(column: pa.Array | pa.ChunkedArray) -> tuple[Any, Any, int, int]:
    array = _array(column)
    _, offsets, data = array.buffers()
    return _u8(offsets), _u8(data), array.offset, len(array)


def _int64s(values: np.ndarray) -> np.ndarray:
    """int64 values as the bytes the kernels read (they take byte buffers)."""
    return np.ascontiguousarray(values, np.int64).view(np.uint8)


def _mask(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype=np.bool_)


# records and fields (transforms.csv_records)

def record_ends(buffer: bytes) -> np.ndarray:
    return np.frombuffer(_native().record_ends(buffer), dtype=np.int64)


def line_feeds_before(data: bytes, starts: np.ndarray) -> tuple[np.ndarray, int]:
    before, total = _native().line_feeds_before(data, _int64s(starts))
    return np.frombuffer(before, dtype=np.int64), total


def record_codes(data: bytes, starts: np.ndarray, columns: int) -> np.ndarray:
    codes = _native().record_codes(data, _int64s(starts), columns)
    return np.frombuffer(codes, dtype=np.int8).copy()  # the caller marks more records


def split_fields(data: bytes, starts: np.ndarray, good: np.ndarray,
                 names: Sequence[str]) -> Optional[pa.Table]:
    """The fields of the records ``good`` as string columns; None when the batch must be
    parsed the reference's way (stray quotes or carriage returns)."""
    columns = _native().split_fields(data, _int64s(starts),
                                     _int64s(good), len(names))
    if columns is None:
        return None
    return pa.table({
        name: pa.Array.from_buffers(pa.string(), len(good),
                                    [None, pa.py_buffer(offsets), pa.py_buffer(data)])
        for name, (offsets, data) in zip(names, columns)})


# duplicate keys (transforms.keys)

class KeyIndex:
    """The keys seen so far in one vacation, for one record type, as the compiled kernel
    keeps them (``transforms.keys.KeyIndex`` is the reference)."""

    def __init__(self) -> None:
        self._index = _native().KeyIndex()

    def mark(self, columns: Sequence[pa.ChunkedArray]) -> np.ndarray:
        return _mask(self._index.mark([_strings(column) for column in columns]))

    def __len__(self) -> int:
        return len(self._index)


# record rules (transforms.rules)

def outside_charset(column: pa.ChunkedArray, allowed: bytes, least: int, most: int
                    ) -> np.ndarray:
    table = bytearray(256)
    for byte in allowed:
        table[byte] = 1
    return _mask(_native().outside_charset(_strings(column), bytes(table), least, most))


def not_decimal(column: pa.ChunkedArray) -> np.ndarray:
    return _mask(_native().not_decimal(_strings(column)))


def longer_than(column: pa.ChunkedArray, most: int) -> np.ndarray:
    return _mask(_native().longer_than(_strings(column), most))


def bad_iban(column: pa.ChunkedArray) -> np.ndarray:
    return _mask(_native().bad_iban(_strings(column)))


def parse_date(column: pa.ChunkedArray) -> pa.Array:
    days, valid = _native().parse_date(_strings(column))
    return pa.array(np.frombuffer(days, dtype=np.int32), pa.date32(), mask=~_mask(valid))


def parse_timestamp(column: pa.ChunkedArray) -> pa.Array:
    micros, valid = _native().parse_timestamp(_strings(column))
    return pa.array(np.frombuffer(micros, dtype=np.int64), pa.int64(), mask=~_mask(valid))


# Avro blocks (io_connectors.avro_blocks)

def avro_field(avro_type: Any, column: pa.Array | pa.ChunkedArray) -> tuple:
    """One field of ``encode_block``: how the kernel writes the column as ``avro_type``."""
    nullable = isinstance(avro_type, list)  # ["null", T]
    value_type = avro_type[1] if nullable else avro_type
    kind = value_type["type"] if isinstance(value_type, dict) else value_type
    array = _array(column)
    if kind == "enum":  # its symbol's index, as an int
        array = pc.index_in(array, value_set=pa.array(value_type["symbols"]))
        array, kind = (array if nullable else pc.fill_null(array, 0)), "int"
    validity = _u8(array.buffers()[0]) if nullable and array.null_count else None
    if kind in ("string", "bytes"):
        offsets, data, offset, _ = _strings(array)
        return "text", nullable, validity, offset, offsets, data, 0
    if kind == "fixed":
        return "fixed", nullable, validity, array.offset, _u8(array.buffers()[1]), None, \
            value_type["size"]
    if kind in ("long", "int"):
        width = pa.types.is_date32(array.type) or pa.types.is_int32(array.type)
        return ("long32" if width else "long64"), nullable, validity, array.offset, \
            _u8(array.buffers()[1]), None, 0
    raise TypeError(f"no compiled encoding for Avro type {avro_type!r}")


def constant_field(encoded: bytes) -> tuple:
    """A field of ``encode_block`` whose encoded bytes are the same in every row."""
    return "constant", False, None, 0, encoded, None, 0


def encode_block(fields: Sequence[tuple], rows: int) -> bytes:
    return _native().encode_block(list(fields), rows)

