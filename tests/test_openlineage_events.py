"""The jobs' OpenLineage events as a lineage store receives them: ``cre`` sends them to a real
HTTP endpoint on loopback (the client's HTTP transport, set by ``OPENLINEAGE_URL``), and each
validates against the spec's JSON Schema. Ingest (its delivery a part of it), redelivery,
rollback, replay, restore, and a delivery that fails."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers import config_of, run_cre
from helpers.openlineage_spec import validate

from pipelines.local.generator import generate_vacation

pytestmark = pytest.mark.integration


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict]

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, json.loads(body)))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture(scope="module")
def endpoint():
    """A lineage store's HTTP endpoint on a free loopback port: what it received."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _runs(events: list[dict]) -> dict[str, list[dict]]:
    by_run = defaultdict(list)
    for event in events:
        by_run[event["run"]["runId"]].append(event)
    return by_run


def _sent(endpoint, run, code: int = 0) -> list[dict]:
    """The events of one ``cre`` run (which ended with ``code``), each checked against the
    spec; each run of a job a START and then one COMPLETE or FAIL."""
    assert run.code == code, run.stderr[-3000:]
    events = [event for path, event in endpoint.received]
    assert {path for path, _ in endpoint.received} <= {"/api/v1/lineage"}
    endpoint.received.clear()
    for event in events:
        validate(event)
    for run_events in _runs(events).values():
        assert [e["eventType"] for e in run_events][0] == "START"
        assert [e["eventType"] for e in run_events][1:] in (["COMPLETE"], ["FAIL"])
    return events


def _ended(events: list[dict], job: str) -> dict:
    [event] = [e for e in events if e["job"]["name"] == f"cre.{job}"
               and e["eventType"] != "START"]
    return event


def test_every_job_run_sends_start_then_complete_or_fail(structured, endpoint, tmp_path):
    env = {**structured, "OPENLINEAGE_URL": f"http://127.0.0.1:{endpoint.server_port}",
           "OPENLINEAGE_NAMESPACE": "cre-test"}
    zones = str(tmp_path / "zones")
    archive = generate_vacation(tmp_path / "in", "2026-10-07", 1, 200, 4, seed=61)

    events = _sent(endpoint, run_cre("ingest", "--input", str(archive), "--zones-root", zones,
                                     env=env))
    ingest, deliver = _ended(events, "ingest"), _ended(events, "deliver")
    assert ingest["eventType"] == deliver["eventType"] == "COMPLETE"
    assert ingest["job"]["namespace"] == "cre-test"
    assert deliver["run"]["facets"]["parent"]["run"]["runId"] == ingest["run"]["runId"]
    assert [i["name"] for i in ingest["inputs"]] == [str(archive)]
    outputs = {o["name"]: o for o in ingest["outputs"]}
    [landed] = [o for o in outputs.values() if "/landing/" in o["name"]]
    assert os.path.isfile(landed["name"])
    assert landed["outputFacets"]["outputStatistics"]["rowCount"] == 204
    proxy = [o for o in outputs.values() if "/proxy_producer/" in o["name"]]
    rows = defaultdict(int)
    for output in proxy:
        rows[output["name"].split("/proxy_producer/")[1].split("/")[0]] += \
            output["outputFacets"]["outputStatistics"]["rowCount"]
    assert set(rows) == {"CRE", "GESPARAM", "META", "MONITOR", "REJECT", "AUDIT"}
    assert rows["CRE"] + rows["GESPARAM"] + rows["REJECT"] == 204
    keyspace = structured["CRE_CASSANDRA_KEYSPACE"]
    assert outputs[f"{keyspace}.rejects_by_vacation"]["outputFacets"]["outputStatistics"][
        "rowCount"] == rows["REJECT"]
    assert outputs[f"{keyspace}.cre_event_versions"]["outputFacets"]["outputStatistics"][
        "rowCount"] == rows["CRE"]
    versions = outputs[f"{keyspace}.cre_event_versions"]
    assert versions["namespace"].startswith("cassandra://127.0.0.1:")
    assert {"cre_id", "member_name", "line_number"} <= {
        f["name"] for f in versions["facets"]["schema"]["fields"]}
    [package] = deliver["outputs"][:1]
    assert package["name"].endswith("MMG_ABS_20261007_01.tar.bz2")
    assert package["outputFacets"]["outputStatistics"]["size"] == os.path.getsize(
        package["name"])

    events = _sent(endpoint, run_cre("deliver", "--vacation", "BAF_20261007_01", "--zones-root",
                                     zones, "--redeliver", env=env))
    assert _ended(events, "deliver")["eventType"] == "COMPLETE"
    events = _sent(endpoint, run_cre("rollback", "BAF_20261007_01", env=env))
    rollback = _ended(events, "rollback")
    assert rollback["eventType"] == "COMPLETE"
    assert f"{keyspace}.package_positions" in {o["name"] for o in rollback["outputs"]}
    events = _sent(endpoint, run_cre("replay", "BAF_20261007_01", env=env))
    assert _ended(events, "replay")["eventType"] == "COMPLETE"
    assert _ended(events, "deliver")["eventType"] == "COMPLETE"

    events = _sent(endpoint, run_cre("deliver", "--vacation", "BAF_20261007_06",
                                     "--zones-root", zones, env=env), code=1)
    failed = _ended(events, "deliver")
    assert failed["eventType"] == "FAIL"
    assert "not in the ledger" in failed["run"]["facets"]["errorMessage"]["message"]

    backup = run_cre("backup", "--to", str(tmp_path / "backups"), "--json", env=env)
    assert backup.code == 0, backup.stderr[-2000:]
    endpoint.received.clear()
    copy = {**env, "CRE_CASSANDRA_KEYSPACE": f"restored_{uuid.uuid4().hex[:8]}"}
    try:
        events = _sent(endpoint, run_cre("restore", "--from", json.loads(
            backup.stdout.strip().splitlines()[-1])["path"], env=copy))
        restore = _ended(events, "restore")
        assert restore["eventType"] == "COMPLETE"
        restored = {o["name"]: o["outputFacets"]["outputStatistics"]["rowCount"]
                    for o in restore["outputs"]}
        assert restored[f"{copy['CRE_CASSANDRA_KEYSPACE']}.cre_event_versions"] == rows["CRE"]
    finally:
        session = config_of(copy).connect()
        session.execute(f"DROP KEYSPACE IF EXISTS {copy['CRE_CASSANDRA_KEYSPACE']}",
                        timeout=120)
        session.cluster.shutdown()
