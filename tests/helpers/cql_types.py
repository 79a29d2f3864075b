"""Values of every CQL type the product writes (``io_connectors.cql_values.serializer``: its
scalars and the maps the tables use), as the driver returns them, and the driver's own reading of
a table of them: the type round-trips (test_cassandra_io, test_backup) compare what a plain
``SELECT`` reads back with these, never what the product's reader makes of the rows."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from cassandra.util import Date

# two values of each type, at its edges where it has some; a third row holds only nulls
SAMPLES: dict[str, tuple[Any, Any]] = {
    "text": ("é;\"x\" €", ""), "varchar": ("v", "ligne\nsuivante"), "ascii": ("a", "~!"),
    "int": (-(2**31), 2**31 - 1), "smallint": (-(2**15), 300), "tinyint": (-128, 127),
    "bigint": (-(2**63), 1 << 40), "boolean": (True, False),
    "float": (1.5, -3.4028234663852886e38), "double": (-2.25, 1e300),
    "date": (Date(datetime.date(2026, 11, 22)), Date(datetime.date(1900, 1, 1))),
    "timestamp": (datetime.datetime(2026, 11, 22, 23, 59, 58, 123000),
                  datetime.datetime(1969, 12, 31, 23, 59, 59, 999000)),
    "uuid": (uuid.UUID("cc5ed4ad-504d-40fc-96a2-80c69bd146ad"), uuid.uuid4()),
    "timeuuid": (uuid.uuid1(), uuid.UUID("5e0dc0de-d3c1-11ef-8000-0242ac120002")),
    "decimal": (Decimal("-1234.56"), Decimal("9999999999999999.99")),
    "map<text, timestamp>": ({"LANDED": datetime.datetime(2026, 1, 2, 3, 4, 5, 6000),
                              "LOADED": datetime.datetime(1969, 12, 31, 23, 0)},
                             {"x": datetime.datetime(2000, 1, 1)}),
    "map<text, bigint>": ({"a": 1, "b": -(2**63)}, {"z": 0}),
}
COLUMNS = {f"c{index}": cql_type for index, cql_type in enumerate(SAMPLES)}  # name: type
ROWS = [(1, *(values[0] for values in SAMPLES.values())),
        (2, *(values[1] for values in SAMPLES.values())),
        (3, *[None] * len(SAMPLES))]  # id, then a value per column


def create_table(session, table: str) -> None:
    """``table`` with an int key ``id`` and one column of each type (``COLUMNS``)."""
    columns = ", ".join(f"{name} {cql_type}" for name, cql_type in COLUMNS.items())
    session.execute(f"CREATE TABLE IF NOT EXISTS {table} (id int PRIMARY KEY, {columns})",
                    timeout=60)


def insert(session, table: str) -> None:
    """``ROWS`` into ``table``, bound by the driver."""
    statement = session.prepare(f"INSERT INTO {table} (id, {', '.join(COLUMNS)}) "
                                f"VALUES ({', '.join('?' * (len(COLUMNS) + 1))})")
    for row in ROWS:
        session.execute(statement, row, timeout=60)


def _exact(value: Any) -> Any:
    """A value with its type (True is not 1, 1.5 not Decimal('1.5')), a decimal with its scale,
    a map as a dict of those."""
    if isinstance(value, Mapping):  # the driver's OrderedMapSerializedKey
        return {key: _exact(item) for key, item in value.items()}
    return type(value).__name__, str(value) if isinstance(value, Decimal) else value


def _by_cell(rows) -> dict[tuple[int, str], Any]:
    """Each value by (row id, CQL type), so that a difference names its type."""
    return {(row[0], cql_type): _exact(value)
            for row in rows for cql_type, value in zip(SAMPLES, row[1:], strict=True)}


def expected() -> dict[tuple[int, str], Any]:
    return _by_cell(ROWS)


def read_back(session, table: str) -> dict[tuple[int, str], Any]:
    """Every value of ``table``, as the driver's own ``SELECT`` reads it."""
    return _by_cell(session.execute(f"SELECT id, {', '.join(COLUMNS)} FROM {table}",
                                    timeout=60))
