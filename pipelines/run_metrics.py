"""Each batch run's outcome as Prometheus metrics, pushed to a Pushgateway when the run ends.

``cre ingest`` and ``cre deliver`` are batch jobs: nothing is left to scrape once they exit, so
a run collects what it learnt (the Beam metrics of its pipelines, the vacation's summary and
ledger row, its error) and pushes it as one fresh registry (``--pushgateway``). The gateway keeps
one group per job and slot (``job=cre_ingest, slot=3``): a run replaces its slot's previous run
and never another slot's, so slots ingested at the same time do not clobber each other, and a
slot's history is kept by Prometheus, not by the gateway.

Vacation metrics carry ``vacation_id``, ``business_date`` and ``slot``; run metrics carry none
of them, so that each slot's series goes on from one run to the next (``avg_over_time``).
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import dataclasses
import datetime
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, Optional

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from pipelines.ledger import Ledger, State, VacationRecord
from transforms.contract import Outcome, VacationName
from transforms.quality import SEVERITIES

_LOG = logging.getLogger(__name__)

INGEST, DELIVER = "cre_ingest", "cre_deliver"
STATES = (State.RECEIVED, State.LANDED, State.VALIDATED, State.LOADED, State.DELIVERED,
          State.REJECTED, State.FAILED, State.ROLLED_BACK)
# without a structured zone there is no ledger: the summary's status says where it ended
_STATE_OF_STATUS = {Outcome.ACCEPTED: State.LOADED, Outcome.ACCEPTED_WITH_REJECTS: State.LOADED,
                    Outcome.REJECTED: State.REJECTED}
# Beam counters of io_connectors.cassandra (namespace cassandra.<table>): their own metrics
_CASSANDRA_COUNTERS = {"rows_written": "cre_cassandra_rows_written",
                       "retries": "cre_cassandra_write_retries",
                       "failed_rows": "cre_cassandra_failed_rows",
                       "rows_read": "cre_cassandra_rows_read"}
_VACATION = ("vacation_id", "business_date", "slot")

_CURRENT: contextvars.ContextVar[Optional[RunMetrics]] = contextvars.ContextVar(
    "cre_run_metrics", default=None)


@dataclasses.dataclass
class _Latency:
    """A Beam distribution of milliseconds, summed over steps and pipelines."""

    total_ms: float = 0
    count: int = 0
    max_ms: float = 0


@dataclasses.dataclass
class RunMetrics:
    """What one run of ``job`` learnt about one vacation; ``registry`` makes metrics of it."""

    job: str
    vacation_id: str
    started_at: float = dataclasses.field(default_factory=time.time)
    finished_at: Optional[float] = None
    summary: Optional[dict] = None  # the ingest's outcome (spec 2.4)
    ledger_row: Optional[VacationRecord] = None  # Ledger.get after the run
    error: Optional[BaseException] = None
    counters: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    latencies: dict[str, _Latency] = dataclasses.field(default_factory=dict)
    pipelines: int = 0

    @property
    def name(self) -> Optional[VacationName]:
        return VacationName.parse(f"{self.vacation_id}.tar.bz2")

    def grouping_key(self) -> dict[str, str]:
        """The Pushgateway group of this run besides its job: its slot, when the name has one."""
        return {"slot": str(self.name.slot)} if self.name else {}

    def add_pipeline(self, result: Any) -> None:
        """Adds a finished pipeline's Beam metrics (committed, else attempted) to the run's."""
        self.pipelines += 1
        query = result.metrics().query()
        for counter in query["counters"]:
            metric = counter.key.metric
            self.counters[metric.namespace, metric.name] += _value(counter)
        for distribution in query["distributions"]:
            metric, data = distribution.key.metric, _value(distribution)
            if metric.namespace.startswith("cassandra.") and metric.name == "write_latency_ms":
                latency = self.latencies.setdefault(metric.namespace.partition(".")[2],
                                                    _Latency())
                latency.total_ms += data.sum
                latency.count += data.count
                latency.max_ms = max(latency.max_ms, data.max)

    def state(self) -> Optional[State]:
        """The ledger's state; else the summary's outcome; else FAILED for an ingest that
        raised before either could say (a deliver's failure leaves the vacation as it was)."""
        if self.ledger_row is not None:
            return self.ledger_row.state
        if self.summary is not None:
            return _STATE_OF_STATUS.get(self.summary["status"])  # DUPLICATE changes nothing
        return State.FAILED if self.error is not None and self.job == INGEST else None

    def registry(self) -> CollectorRegistry:
        registry = CollectorRegistry()
        self._vacation_metrics(registry)
        self._run_metrics(registry)
        return registry

    def _vacation_metrics(self, registry: CollectorRegistry) -> None:
        name = self.name
        vacation = {"vacation_id": self.vacation_id,
                    "business_date": name.business_date if name else "",
                    "slot": str(name.slot) if name else ""}

        def gauge(metric: str, text: str, *labels: str) -> Gauge:
            return Gauge(metric, text, (*_VACATION, *labels), registry=registry)

        if name:
            gauge("cre_vacation_business_date_timestamp_seconds",
                  "The vacation's business date, 00:00 UTC (the schedule's reference).").labels(
                **vacation).set(_timestamp(datetime.date.fromisoformat(name.business_date)))
        row = self.ledger_row.view("state_changed_at", "received_at", "delivered_at",
                                   "delivery") if self.ledger_row else {}
        summary, current = self.summary or {}, self.state()
        if current:
            states = gauge("cre_vacation_state", "1 for the vacation's state, 0 for the others.",
                           "state")
            for state in STATES:
                states.labels(**vacation, state=state).set(state == current)
        if row.get("state_changed_at"):  # without a ledger nothing moves on (no delivery)
            entered = gauge("cre_vacation_state_timestamp_seconds",
                            "When the vacation entered each state it went through.", "state")
            for state, at in row["state_changed_at"].items():
                entered.labels(**vacation, state=state).set(_timestamp(at))
        received = summary.get("received_at") or row.get("received_at")
        if received:
            gauge("cre_vacation_received_timestamp_seconds",
                  "When the vacation's archive was received.").labels(**vacation).set(
                _timestamp(received))
        if summary:
            records = gauge("cre_vacation_records", "Data records of the vacation, loaded or "
                            "rejected, by type (CRE, GESPARAM).", "type", "outcome")
            by_type: dict[tuple[str, str], int] = collections.Counter()
            for member in summary["members"]:
                for outcome in ("loaded", "rejected"):
                    by_type[member["type"], outcome] += member[outcome]
            for (kind, outcome), count in by_type.items():
                records.labels(**vacation, type=kind, outcome=outcome).set(count)
            rejects = gauge("cre_vacation_rejected_records", "Rejected records by reject code.",
                            "code")
            for code, count in summary["reject_codes"].items():
                rejects.labels(**vacation, code=code).set(count)
            errors = gauge("cre_vacation_errors", "Fatal errors (spec 2.1) by code, "
                           "reconciliation failures (RECON_*) among them.", "code")
            for code, count in collections.Counter(
                    error["code"] for error in summary["errors"]).items():
                errors.labels(**vacation, code=code).set(count)
            if "quality" in summary:
                self._quality_metrics(summary["quality"], vacation, gauge)
        if row.get("delivered_at"):
            gauge("cre_vacation_delivered_timestamp_seconds",
                  "When the vacation's Arkea ABS package was delivered.").labels(
                **vacation).set(_timestamp(row["delivered_at"]))
            gauge("cre_vacation_delivered_bytes", "Size of the delivered package.").labels(
                **vacation).set(row["delivery"]["bytes"])

    @staticmethod
    def _quality_metrics(judged: dict, vacation: dict[str, str],
                         gauge: Callable[..., Gauge]) -> None:
        """The data-quality findings: a count per severity (0s included, so an alert clears
        when the slot's next vacation is normal) and one series per finding's metric."""
        counts = collections.Counter(finding["severity"] for finding in judged["findings"])
        by_severity = gauge("cre_vacation_quality_findings", "Data-quality findings of the "
                            "vacation against its slot's history, by severity.", "severity")
        for severity in SEVERITIES:
            by_severity.labels(**vacation, severity=severity).set(counts[severity])
        gauge("cre_vacation_quality_history", "Earlier vacations of the slot the vacation was "
              "judged against (0: not judged).").labels(**vacation).set(judged["history"])
        found = gauge("cre_vacation_quality_finding", "1 for each metric found outside its "
                      "expected range, with the finding's severity.", "quality_metric", "severity")
        for finding in judged["findings"]:
            found.labels(**vacation, quality_metric=finding["metric"],
                         severity=finding["severity"]).set(1)

    def _run_metrics(self, registry: CollectorRegistry) -> None:
        finished = self.finished_at or time.time()  # a run still going: so far
        duration = finished - self.started_at
        Gauge("cre_run_duration_seconds", "Wall time of the run.",
              registry=registry).set(duration)
        Gauge("cre_run_finished_timestamp_seconds", "When the run ended.",
              registry=registry).set(finished)
        if self.error is not None:
            Gauge("cre_run_errors", "1 when the run failed, by the kind of error.", ["kind"],
                  registry=registry).labels(kind=type(self.error).__name__).set(1)
        if self.summary is not None and self.pipelines:  # a DUPLICATE runs no pipeline
            rows = self.summary["totals"]["records"]
            Gauge("cre_run_rows", "Records the ingest read.", registry=registry).set(rows)
            Gauge("cre_run_rows_per_second", "Records read per second of the run.",
                  registry=registry).set(rows / duration if duration > 0 else 0)
        cassandra = {metric: Gauge(metric, f"Beam counter {beam_name} of the run's writes "
                                   "and reads, by table.", ["table"], registry=registry)
                     for beam_name, metric in _CASSANDRA_COUNTERS.items()}
        others = Gauge("cre_beam_counter", "The run's other Beam counters.",
                       ["namespace", "name"], registry=registry)
        for (namespace, name), value in sorted(self.counters.items()):
            if namespace.startswith("cassandra.") and name in _CASSANDRA_COUNTERS:
                cassandra[_CASSANDRA_COUNTERS[name]].labels(
                    table=namespace.partition(".")[2]).set(value)
            else:
                others.labels(namespace=namespace, name=name).set(value)
        mean = Gauge("cre_cassandra_write_latency_mean_seconds", "Mean latency of the run's "
                     "write requests, by table.", ["table"], registry=registry)
        worst = Gauge("cre_cassandra_write_latency_max_seconds", "Longest write request of "
                      "the run, by table.", ["table"], registry=registry)
        for table, latency in sorted(self.latencies.items()):
            if latency.count:
                mean.labels(table=table).set(latency.total_ms / latency.count / 1000)
                worst.labels(table=table).set(latency.max_ms / 1000)


def _value(result: Any) -> Any:
    return result.committed if result.committed is not None else result.attempted


def _timestamp(value: str | datetime.date) -> float:
    """Unix seconds of an ISO text, a datetime or a date (00:00); UTC unless it says otherwise."""
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if not isinstance(value, datetime.datetime):
        value = datetime.datetime.combine(value, datetime.time())
    return (value if value.tzinfo else value.replace(tzinfo=datetime.UTC)).timestamp()


def push(run: RunMetrics, gateway: str) -> None:
    """Pushes the run's registry, replacing its job and slot's group; a gateway that cannot be
    reached is logged, never the run's failure."""
    try:
        push_to_gateway(gateway, job=run.job, registry=run.registry(),
                        grouping_key=run.grouping_key(), timeout=10)
    except Exception as error:  # noqa: BLE001 - monitoring must not fail the run it observes
        _LOG.warning("could not push the run's metrics to %s: %s", gateway, error)


@contextlib.contextmanager
def observed(job: str, vacation_id: str, gateway: Optional[str]) -> Iterator[RunMetrics]:
    """Observes the run of the block (the pipelines and the ledger report to it, see
    ``record_pipeline`` and ``record_ledger``) and pushes its metrics when it ends, failed or
    not. Without a gateway nothing is collected."""
    run = RunMetrics(job, vacation_id)
    if not gateway:
        yield run
        return
    token = _CURRENT.set(run)
    try:
        yield run
    except Exception as error:
        run.error = error
        raise
    finally:
        _CURRENT.reset(token)
        run.finished_at = time.time()
        push(run, gateway)


def record_pipeline(result: Any) -> None:
    """Adds a finished pipeline's Beam metrics to the run being observed, if any."""
    run = _CURRENT.get()
    if run is not None:
        run.add_pipeline(result)


def record_ledger(session: Any, vacation_id: str) -> None:
    """Reads the vacation's ledger row for the run being observed, if any; best effort: the
    database may be what failed."""
    run = _CURRENT.get()
    if run is None:
        return
    try:
        run.ledger_row = Ledger(session).get(vacation_id)
    except Exception as error:  # noqa: BLE001 - the run's own error is the one to report
        _LOG.warning("could not read %s in the ledger for the run's metrics: %s", vacation_id,
                     error)
