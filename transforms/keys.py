"""Which records repeat a key seen earlier in the vacation (DUPLICATE_KEY, spec 2.2).

Keys are kept as 64-bit hashes in sorted numpy runs merged like a binary counter, so 5 million
keys take 40 MB and each batch costs a few vector searches. Two distinct keys sharing a 64-bit
hash (about one chance in 10^6 for a 5-million-key vacation) would reject the second as a
duplicate; that is the price of flat memory, and it can only ever reject, never lose, a record.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _hashes(columns: Sequence[pa.ChunkedArray]) -> np.ndarray:
    if len(columns) == 1:
        values = columns[0].to_pylist()
    else:
        values = list(zip(*(column.to_pylist() for column in columns)))
    return np.fromiter(map(hash, values), dtype=np.int64, count=len(values))


class KeyIndex:
    """The keys seen so far in one vacation, for one record type."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def mark(self, columns: Sequence[pa.ChunkedArray]) -> np.ndarray:
        """Marks, in record order, each record whose key was seen before; null keys never are."""
        present = np.ones(len(columns[0]), dtype=bool)
        for column in columns:
            present &= pc.fill_null(pc.greater(pc.binary_length(column), 0), False).to_numpy(
                zero_copy_only=False)
        hashes = _hashes(columns)
        duplicate = np.zeros(len(hashes), dtype=bool)
        candidates = np.flatnonzero(present)
        keys = hashes[candidates]
        repeated = np.ones(len(keys), dtype=bool)
        repeated[np.unique(keys, return_index=True)[1]] = False
        for run in self._runs:
            position = np.searchsorted(run, keys)
            repeated |= run[np.minimum(position, len(run) - 1)] == keys
        duplicate[candidates] = repeated
        self._add(np.sort(keys[~repeated]))
        return duplicate

    def _add(self, run: np.ndarray) -> None:
        if not len(run):
            return
        self._runs.append(run)
        while len(self._runs) > 1 and len(self._runs[-2]) <= len(self._runs[-1]):
            merged = np.concatenate((self._runs.pop(), self._runs.pop()))
            merged.sort(kind="stable")
            self._runs.append(merged)

    def __len__(self) -> int:
        return sum(len(run) for run in self._runs)
