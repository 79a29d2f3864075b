"""Aligned plain-text tables, for the commands that print rows to people."""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any, Optional


def plain(value: Any) -> Any:
    """Dates as ISO text, decimals as written; what JSON output uses too."""
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def text_table(rows: Sequence[dict], columns: Sequence[str],
               headers: Optional[Sequence[str]] = None) -> Iterator[str]:
    """A header line, then one line per row; None shows as nothing."""
    cells = [["" if row.get(c) is None else str(plain(row.get(c))) for c in columns]
             for row in rows]
    titles = list(headers or columns)
    widths = [max([len(t), *(len(line[i]) for line in cells)]) for i, t in enumerate(titles)]
    yield "  ".join(t.ljust(w) for t, w in zip(titles, widths)).rstrip()
    for line in cells:
        yield "  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip()
