"""The project's own local Cassandra: fetched with Maven, started and stopped by ``cre``."""

from __future__ import annotations

from conftest import free_port

from pipelines.cassandra_server import cql_answers


def test_start_status_stop(cre, tmp_path):
    native, storage = free_port(), free_port()
    args = ["--home", str(tmp_path / "cassandra"), "--native-port", str(native),
            "--storage-port", str(storage)]
    try:
        started = cre("cassandra", "start", *args)
        assert started.code == 0, started.stderr
        assert cql_answers("127.0.0.1", native)
        again = cre("cassandra", "start", *args)  # a second start is harmless
        assert again.code == 0 and cql_answers("127.0.0.1", native)
        status = cre("cassandra", "status", *args)
        assert status.code == 0 and "answers CQL" in status.stdout
    finally:
        stopped = cre("cassandra", "stop", *args)
    assert stopped.code == 0
    assert not cql_answers("127.0.0.1", native)
    assert cre("cassandra", "status", *args).code == 3
