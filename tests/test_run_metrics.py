"""A run's facts (Beam metrics, summary, ledger row, error) to Prometheus samples, and the push."""

from __future__ import annotations

import datetime
import http.server
import threading
from collections.abc import Iterator

import apache_beam as beam
import pytest
from helpers import free_port

from pipelines import run_metrics
from pipelines.ledger import State, VacationRecord
from pipelines.run_metrics import DELIVER, INGEST, STATES, RunMetrics
from transforms.pivot_package import Delivery

VACATION = {"vacation_id": "BAF_20261122_03", "business_date": "2026-11-22", "slot": "3"}
UTC = datetime.UTC


def _summary(status: str = "ACCEPTED_WITH_REJECTS", errors: tuple[str, ...] = ()) -> dict:
    return {"vacation_id": "BAF_20261122_03", "status": status,
            "received_at": "2026-11-22T10:00:00.000+00:00",
            "processed_at": "2026-11-22T10:01:00.000+00:00",
            "errors": [{"code": code, "message": "..."} for code in errors],
            "members": [{"name": "CRE_0001.csv", "type": "CRE", "records": 60, "loaded": 57,
                         "rejected": 3},
                        {"name": "CRE_0002.csv", "type": "CRE", "records": 40, "loaded": 40,
                         "rejected": 0},
                        {"name": "GESPARAM_0001.csv", "type": "GESPARAM", "records": 10,
                         "loaded": 9, "rejected": 1}],
            "totals": {"records": 110, "loaded": 106, "rejected": 4},
            "reject_codes": {"BAD_DATE": 3, "DUPLICATE_KEY": 1}}


def _at(hour: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime(2026, 11, 22, hour, minute, tzinfo=UTC)


class _WriteFn(beam.DoFn):
    """Counts like io_connectors.cassandra's writer and another transform do."""

    def __init__(self):
        self._written = beam.metrics.Metrics.counter("cassandra.cre_events_by_account",
                                                     "rows_written")
        self._retries = beam.metrics.Metrics.counter("cassandra.cre_events_by_account",
                                                     "retries")
        self._latency = beam.metrics.Metrics.distribution("cassandra.cre_events_by_account",
                                                          "write_latency_ms")
        self._records = beam.metrics.Metrics.counter("transforms.read_vacation", "records")

    def process(self, rows: int) -> Iterator[int]:
        self._written.inc(rows)
        self._retries.inc()
        self._latency.update(rows * 10)
        self._records.inc(rows)
        yield rows


@pytest.fixture(scope="module")
def pipeline_result():
    pipeline = beam.Pipeline()
    _ = pipeline | beam.Create([5, 20]) | beam.ParDo(_WriteFn())
    result = pipeline.run()
    result.wait_until_finish()
    return result


def _sample(run: RunMetrics, metric: str, **labels: str):
    return run.registry().get_sample_value(metric, labels)


def test_an_ingest_with_the_ledger_gives_state_counts_and_technical_metrics(pipeline_result):
    run = RunMetrics(INGEST, "BAF_20261122_03", started_at=_at(10).timestamp(),
                     finished_at=_at(10, 1).timestamp(), summary=_summary())
    run.ledger_row = VacationRecord(
        "BAF_20261122_03", State.DELIVERED, received_at=_at(10),
        state_changed_at={State.LANDED: _at(10), State.LOADED: _at(10, 1),
                          State.DELIVERED: _at(10, 2)},
        delivered_at=_at(10, 2), delivery=Delivery("BAF_20261122_03", "p", "s", 2048))
    run.add_pipeline(pipeline_result)
    run.add_pipeline(pipeline_result)  # the delivery's pipeline adds to the ingest's
    assert run.grouping_key() == {"slot": "3"}
    assert {state: _sample(run, "cre_vacation_state", **VACATION, state=state)
            for state in STATES} == {state: float(state == "DELIVERED") for state in STATES}
    assert _sample(run, "cre_vacation_state_timestamp_seconds", **VACATION,
                   state="LOADED") == _at(10, 1).timestamp()
    assert _sample(run, "cre_vacation_business_date_timestamp_seconds",
                   **VACATION) == datetime.datetime(2026, 11, 22, tzinfo=UTC).timestamp()
    assert _sample(run, "cre_vacation_received_timestamp_seconds",
                   **VACATION) == _at(10).timestamp()
    records = {(kind, outcome): _sample(run, "cre_vacation_records", **VACATION, type=kind,
                                        outcome=outcome)
               for kind in ("CRE", "GESPARAM") for outcome in ("loaded", "rejected")}
    assert records == {("CRE", "loaded"): 97, ("CRE", "rejected"): 3,
                       ("GESPARAM", "loaded"): 9, ("GESPARAM", "rejected"): 1}
    assert _sample(run, "cre_vacation_rejected_records", **VACATION, code="BAD_DATE") == 3
    assert _sample(run, "cre_vacation_delivered_timestamp_seconds",
                   **VACATION) == _at(10, 2).timestamp()
    assert _sample(run, "cre_vacation_delivered_bytes", **VACATION) == 2048
    assert _sample(run, "cre_run_duration_seconds") == 60
    assert _sample(run, "cre_run_rows") == 110
    assert _sample(run, "cre_run_rows_per_second") == pytest.approx(110 / 60)
    assert _sample(run, "cre_run_errors", kind="RuntimeError") is None
    table = {"table": "cre_events_by_account"}
    assert _sample(run, "cre_cassandra_rows_written", **table) == 50
    assert _sample(run, "cre_cassandra_write_retries", **table) == 4
    assert _sample(run, "cre_cassandra_write_latency_mean_seconds", **table) == 0.125
    assert _sample(run, "cre_cassandra_write_latency_max_seconds", **table) == 0.2
    assert _sample(run, "cre_beam_counter", namespace="transforms.read_vacation",
                   name="records") == 50


def test_without_a_ledger_the_summary_says_rejected_and_why():
    run = RunMetrics(INGEST, "BAF_20261122_03", finished_at=_at(11).timestamp(),
                     summary=_summary("REJECTED", ("RECON_COUNT_MISMATCH",
                                                   "RECON_COUNT_MISMATCH", "HEADER_MISMATCH")))
    assert _sample(run, "cre_vacation_state", **VACATION, state="REJECTED") == 1
    assert _sample(run, "cre_vacation_state", **VACATION, state="LOADED") == 0
    assert _sample(run, "cre_vacation_state_timestamp_seconds", **VACATION,
                   state="REJECTED") is None  # only the ledger knows when
    assert _sample(run, "cre_vacation_errors", **VACATION, code="RECON_COUNT_MISMATCH") == 2
    assert _sample(run, "cre_vacation_errors", **VACATION, code="HEADER_MISMATCH") == 1
    assert _sample(run, "cre_run_rows") is None  # no pipeline ran in this run


def test_the_quality_findings_are_counted_by_severity_and_named_by_metric():
    finding = {"metric": "records.CRE", "value": 400.0, "expected": {"low": 900.0, "high": 1100.0},
               "severity": "critical", "check": "history", "message": "..."}
    judged = {"findings": [finding], "history": 20, "note": "", "metrics": {}}
    run = RunMetrics(INGEST, "BAF_20261122_03", summary={**_summary(), "quality": judged})
    assert _sample(run, "cre_vacation_quality_findings", **VACATION, severity="critical") == 1
    assert _sample(run, "cre_vacation_quality_findings", **VACATION, severity="warning") == 0
    assert _sample(run, "cre_vacation_quality_finding", **VACATION, quality_metric="records.CRE",
                   severity="critical") == 1
    assert _sample(run, "cre_vacation_quality_history", **VACATION) == 20
    plain = RunMetrics(INGEST, "BAF_20261122_03", summary=_summary())  # --quality off
    assert _sample(plain, "cre_vacation_quality_history", **VACATION) is None


def test_a_duplicate_changes_no_state():
    run = RunMetrics(INGEST, "BAF_20261122_03", summary=_summary("DUPLICATE"))
    assert all(_sample(run, "cre_vacation_state", **VACATION, state=state) is None
               for state in STATES)
    assert _sample(run, "cre_vacation_records", **VACATION, type="CRE", outcome="loaded") == 97


@pytest.mark.parametrize("job, state", [(INGEST, 1.0), (DELIVER, None)])
def test_a_run_that_raised_reports_its_error_and_only_an_ingest_fails_the_vacation(job, state):
    run = RunMetrics(job, "BAF_20261122_03", error=ConnectionError("gone"))
    assert _sample(run, "cre_run_errors", kind="ConnectionError") == 1
    assert _sample(run, "cre_vacation_state", **VACATION, state="FAILED") == state


def test_a_bad_name_has_no_slot_group_and_no_business_date():
    run = RunMetrics(INGEST, "baf-nonsense", summary=_summary("REJECTED", ("BAD_NAME",)))
    assert run.grouping_key() == {}
    assert _sample(run, "cre_vacation_errors", vacation_id="baf-nonsense", business_date="",
                   slot="", code="BAD_NAME") == 1
    assert run.registry().get_sample_value("cre_vacation_business_date_timestamp_seconds",
                                           {**VACATION, "vacation_id": "baf-nonsense"}) is None


class _Gateway(http.server.BaseHTTPRequestHandler):
    pushes: list[tuple[str, str, str]] = []

    def do_PUT(self) -> None:  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.pushes.append((self.command, self.path, body))
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[tuple[str, list]]:
    server = http.server.HTTPServer(("127.0.0.1", free_port()), _Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Gateway.pushes = []
    yield f"http://127.0.0.1:{server.server_port}", _Gateway.pushes
    server.shutdown()
    server.server_close()


def test_an_observed_run_that_fails_is_pushed_to_its_slot_group_and_still_raises(gateway):
    url, pushes = gateway
    with pytest.raises(ConnectionError), run_metrics.observed(INGEST, "BAF_20261122_03", url):
        raise ConnectionError("Cassandra went away")
    [(method, path, body)] = pushes
    assert (method, path) == ("PUT", "/metrics/job/cre_ingest/slot/3")
    assert 'cre_run_errors{kind="ConnectionError"} 1.0' in body
    assert ('cre_vacation_state{business_date="2026-11-22",slot="3",state="FAILED",'
            'vacation_id="BAF_20261122_03"} 1.0') in body


def test_a_gateway_that_cannot_be_reached_does_not_fail_the_run(caplog):
    with run_metrics.observed(DELIVER, "BAF_20261122_03",
                              f"http://127.0.0.1:{free_port()}") as run:
        run.summary = None
    assert "could not push the run's metrics" in caplog.text


def test_without_a_gateway_nothing_is_observed(pipeline_result):
    with run_metrics.observed(INGEST, "BAF_20261122_03", None) as run:
        run_metrics.record_pipeline(pipeline_result)
    assert run.pipelines == 0
