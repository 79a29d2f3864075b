"""The public transforms refuse bad arguments when built, and show their settings as display
data; none of this needs a server."""

from __future__ import annotations

import pytest
from apache_beam.transforms.display import DisplayData

from io_connectors.arkea_abs import WriteArkeaPackage
from io_connectors.cassandra import ReadAllFromCassandra, ReadFromCassandra, WriteToCassandra
from io_connectors.cassandra_client import CassandraConfig
from io_connectors.proxy_zone import PublishVacation, WriteStagedAvro
from transforms.contract import Limits, VacationName
from transforms.outcome import RunContext
from transforms.read_vacation import ReadVacation

CONFIG = CassandraConfig(("127.0.0.1",), "cre")
NAME = VacationName.parse("BAF_20261122_03.tar.bz2")
CONTEXT = RunContext("BAF_20261122_03", "2026-11-22", 3, "0" * 64, "t0")


@pytest.mark.parametrize("build, error, match", [
    (lambda: ReadVacation("BAF_20261122_03"), TypeError, "VacationName"),
    (lambda: ReadVacation(NAME, {"max_members": 3}), TypeError, "Limits"),
    (lambda: ReadVacation(NAME, chunk_bytes=512), ValueError, "chunk_bytes"),
    (lambda: ReadVacation(NAME, progress="a bar"), TypeError, "ProgressBar"),
    (lambda: WriteToCassandra("127.0.0.1", "cre_events"), TypeError, "CassandraConfig"),
    (lambda: WriteToCassandra(CONFIG, "x; DROP TABLE y"), ValueError, "invalid table"),
    (lambda: WriteToCassandra(CONFIG, "cre_events", "cre_id"), TypeError, "columns"),
    (lambda: WriteToCassandra(CONFIG, "cre_events", max_in_flight=0), ValueError,
     "max_in_flight must be a positive int"),
    (lambda: WriteToCassandra(CONFIG, "cre_events", batch_rows=2.5), ValueError, "batch_rows"),
    (lambda: WriteToCassandra(CONFIG, "cre_events", backoff_seconds=-1), ValueError,
     "backoff_seconds"),
    (lambda: ReadFromCassandra(CONFIG, "cre_events", page_rows=0), ValueError, "page_rows"),
    (lambda: ReadFromCassandra(CONFIG, "cre_events", where="vacation_id = ?"), ValueError,
     "one value per"),
    (lambda: ReadAllFromCassandra(CONFIG, "cre_events", ()), ValueError, "key_columns"),
    (lambda: ReadAllFromCassandra(CONFIG, "cre_events", ("account_id",), concurrency=0),
     ValueError, "concurrency"),
    (lambda: ReadAllFromCassandra(CONFIG, "cre_events", ("account_id",),
                                  in_column="account_id"), ValueError, "in_column"),
    (lambda: WriteStagedAvro("staging", "BAF_20261122_03", codec="lz4"), ValueError, "codec"),
    (lambda: WriteStagedAvro("staging", ""), ValueError, "vacation_id"),
    (lambda: PublishVacation("", CONTEXT, "staging"), ValueError, "zones_root"),
    (lambda: PublishVacation("zones", "BAF_20261122_03", "staging"), TypeError, "RunContext"),
    (lambda: PublishVacation("zones", CONTEXT, ""), ValueError, "staging_dir"),
    (lambda: WriteArkeaPackage(None), TypeError, "outbound_root"),
    (lambda: WriteArkeaPackage(""), ValueError, "outbound_root"),
])
def test_bad_arguments_are_refused_when_the_transform_is_built(build, error, match):
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize("transform, shown", [
    (ReadVacation(NAME, Limits()), {"vacation_id": "BAF_20261122_03", "chunk_bytes": 2 << 20}),
    (WriteToCassandra(CONFIG, "cre_events", ("cre_id", "amount"), batch_rows=16),
     {"hosts": "127.0.0.1", "table": "cre_events", "columns": "cre_id,amount",
      "batch_rows": 16}),
    (ReadFromCassandra(CONFIG, "cre_rejects", where="vacation_id = ?", values=("V",)),
     {"keyspace": "cre", "columns": "(all)", "where": "vacation_id = ?"}),
    (PublishVacation("zones", CONTEXT, "zones/staging/x"),
     {"zones_root": "zones", "staging_dir": "zones/staging/x"}),
    (WriteArkeaPackage("outbound"), {"outbound_root": "outbound"}),
])
def test_settings_are_shown_as_display_data(transform, shown):
    items = {item.key: item.value for item in DisplayData.create_from(transform).items}
    assert shown.items() <= items.items()
