"""The reliability campaign's harness: senders pushing vacations with ``cre fetchdata`` to
``cre serve`` replicas over TLS, and the check, once everything settled, that nothing was lost,
duplicated or reordered on the way to Arkea.

A ``Campaign`` is one service (its replicas, their zones, tenants file and certificate) over
one keyspace; a scenario runs ``push`` with its fault on the side, waits for ``settled`` and
takes the ``verdict``. ``tests/test_reliability.py`` runs the quick scenarios in ``make test``;
``bench/reliability.py`` the whole campaign, which prints the table of docs/reliability.md.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import datetime
import io
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from helpers.cre import run_cre, start_cre, wait_until
from helpers.service import Service
from helpers.zones import config_of
from pipelines.ledger import Ledger, State
from pipelines.local.certificates import Authority
from pipelines.local.generator import generate_vacation
from service.uploads import Uploads
from transforms import pivot_package

# a vacation's ledger history may only move along these edges (a state may repeat: a note);
# LANDED follows anything a run may take over or run again
_NEXT = {
    State.LANDED: {State.VALIDATED, State.REJECTED, State.FAILED},
    State.VALIDATED: {State.LOADED, State.FAILED},
    State.LOADED: {State.DELIVERED, State.ROLLED_BACK},
    State.DELIVERED: {State.ROLLED_BACK},
    State.REJECTED: set(), State.FAILED: set(), State.ROLLED_BACK: set(),
}


@dataclasses.dataclass(frozen=True)
class Sent:
    """A vacation a tenant sends: its archive and the CRE records it holds (all valid)."""

    tenant: str
    archive: Path
    cre_records: int

    @property
    def vacation_id(self) -> str:
        return self.archive.name.removesuffix(".tar.bz2")


@dataclasses.dataclass
class Verdict:
    """What came out of a scenario, one line of the campaign's table."""

    scenario: str
    load: str
    fault: str
    accepted: int = 0
    ingested: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    p50_seconds: float = 0.0
    p99_seconds: float = 0.0
    uploads_per_second: float = 0.0
    to_delivered_seconds: float = 0.0  # the slowest upload's time to DELIVERED
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (self.lost or self.duplicated or self.out_of_order or self.problems)


class Campaign:
    """``replicas`` of ``cre serve`` over HTTPS on ``env``'s keyspace, with ``tenants``, each
    sending its own business date (vacation ids are global)."""

    def __init__(self, folder: Path, env: dict, tenants: Sequence[str], *,
                 replicas: int = 2, hosts: Sequence[str | None] = (), options: Sequence[str] = ()):
        self.folder, self.env, self.tenants = folder, env, list(tenants)
        folder.mkdir(parents=True, exist_ok=True)
        self.authority = Authority(folder)
        certificate = self.authority.issue("server")
        for tenant in self.tenants:
            added = run_cre("tenants", "add", tenant, "--tenants", str(folder / "tenants.json"),
                            "--password-stdin", input=self.password(tenant) + "\n")
            assert added.code == 0, added.stderr
        self.replicas: list[Service] = []
        for index in range(replicas):
            host = hosts[index] if index < len(hosts) else None
            self.replicas.append(Service(folder, env, *options, tls=certificate, host=host))
        self.sent: list[Sent] = []

    @staticmethod
    def password(tenant: str) -> str:
        return f"the long secret of {tenant}"

    def generate(self, vacations: int, rows: int, *, first_day: int = 1) -> None:
        """Each tenant's day of ``vacations`` slots of ``rows`` CRE records, in its inbox."""
        for number, tenant in enumerate(self.tenants):
            day = datetime.date(2026, 10, first_day + number).isoformat()
            for slot in range(1, vacations + 1):
                archive = generate_vacation(self.inbox(tenant), day, slot, rows, 5,
                                            seed=1000 * first_day + 10 * number + slot)
                self.sent.append(Sent(tenant, archive, rows))

    def inbox(self, tenant: str) -> Path:
        return self.folder / "inboxes" / tenant

    def push(self, servers: Sequence[Service] | None = None, *, senders: int = 1,
             check: bool = True) -> float:
        """Every tenant's ``cre fetchdata`` of its inbox at once (``senders`` of them per
        tenant: resends racing the first sends), to ``servers`` (default: every replica, each
        tenant starting at another); the seconds it took. ``check``: each run must exit 0."""
        servers = list(servers or self.replicas)
        started = time.monotonic()
        runs = []
        for number, tenant in enumerate(self.tenants * senders):
            order = servers[number % len(servers):] + servers[:number % len(servers)]
            runs.append(start_cre(
                "fetchdata", "-u", tenant, "-d", str(self.inbox(tenant)),
                "--ca-file", str(self.authority.path),
                *(argument for server in order for argument in ("--server", server.url)),
                env={**self.env, "CRE_PASSWORD": self.password(tenant)}))
        for run in runs:
            stdout, stderr = run.communicate(timeout=1800)
            assert run.returncode == 0 or not check, stdout + stderr[-3000:]
        return time.monotonic() - started

    def metric(self, name: str, **labels: str) -> float:
        """A counter's value summed over the replicas that run."""
        total = 0.0
        for replica in self.replicas:
            if replica.process.poll() is None:
                text = httpx.get(f"{replica.url}/metrics", verify=str(self.authority.path)).text
                total += sum(sample.value for family in text_string_to_metric_families(text)
                             for sample in family.samples if sample.name == name
                             and all(sample.labels.get(k) == v for k, v in labels.items()))
        return total

    def ledger(self) -> tuple[Ledger, object]:
        session = _connect(self.env)
        return Ledger(session), session

    def settled(self, timeout: float) -> None:
        """Waits until every sent vacation is DELIVERED (or REJECTED and delivered)."""
        ledger, session = self.ledger()
        wanted = [sent.vacation_id for sent in self.sent]

        def pending() -> list[str]:
            rows = ledger.get_many(wanted)
            return [vacation_id for vacation_id in wanted
                    if vacation_id not in rows or rows[vacation_id].delivered_at is None]

        try:
            wait_until(pending, lambda left: not left, timeout=timeout, interval=2,
                       what="every vacation delivered", detail=self.logs)
        finally:
            session.cluster.shutdown()

    def logs(self) -> str:
        return "\n".join(replica.log.read_text()[-2000:] for replica in self.replicas)

    def upload_seconds(self) -> list[tuple[float, float]]:
        """The replicas' ``cre_upload_seconds`` histogram, summed: (upper bound, count)."""
        buckets: collections.Counter = collections.Counter()
        for replica in self.replicas:
            if replica.process.poll() is not None:
                continue
            text = httpx.get(f"{replica.url}/metrics", verify=str(self.authority.path)).text
            for family in text_string_to_metric_families(text):
                if family.name == "cre_upload_seconds":
                    for sample in family.samples:
                        if sample.name.endswith("_bucket"):
                            buckets[float(sample.labels["le"])] += sample.value
        return sorted(buckets.items())

    def verdict(self, scenario: str, load: str, fault: str, pushed_seconds: float) -> Verdict:
        """The scenario's line: every sent vacation accepted, ingested and delivered exactly
        once, with all its records in the structured zone and in Arkea's package, its ledger
        history in order."""
        verdict = Verdict(scenario, load, fault)
        buckets = self.upload_seconds()
        verdict.p50_seconds, verdict.p99_seconds = (quantile(buckets, q) for q in (0.5, 0.99))
        verdict.uploads_per_second = len(self.sent) / pushed_seconds if pushed_seconds else 0
        ledger, session = self.ledger()
        try:
            _judge(verdict, self.sent, ledger, Uploads(session), _rows_by_vacation(session),
                   self.packages())
        finally:
            session.cluster.shutdown()
        return verdict

    def packages(self) -> dict[str, list[Path]]:
        found = collections.defaultdict(list)
        for path in (self.folder / "zones" / "outbound").rglob("MMG_ABS_*.tar.bz2"):
            found[path.name].append(path)
        return found

    def stop(self) -> None:
        for replica in self.replicas:
            replica.kill()


def _judge(verdict: Verdict, sent: Sequence[Sent], ledger: Ledger, uploads: Uploads,
           rows: dict[str, int], packages: dict[str, list[Path]]) -> None:
    by_tenant = {tenant: uploads.of(tenant) for tenant in {one.tenant for one in sent}}
    records = ledger.get_many([one.vacation_id for one in sent])
    slowest = 0.0
    for one in sent:
        vacation_id = one.vacation_id
        accepted = [row for row in by_tenant[one.tenant] if row["vacation_id"] == vacation_id]
        if not accepted:
            verdict.lost += one.cre_records
            verdict.problems.append(f"{vacation_id}: no upload accepted")
            continue
        verdict.accepted += 1
        verdict.duplicated += len(accepted) - 1
        record = records.get(vacation_id)
        if record is None or record.sha256 != accepted[0]["sha256"]:
            verdict.lost += one.cre_records
            verdict.problems.append(f"{vacation_id}: not in the ledger as uploaded")
            continue
        history = sorted(ledger.history(vacation_id), key=lambda entry: entry.at)
        loads = sum(entry.state == State.LOADED for entry in history)
        deliveries = sum(entry.message.startswith("delivered") for entry in history)
        verdict.ingested += loads == 1
        verdict.delivered += deliveries == 1 and record.delivered_at is not None
        verdict.duplicated += max(0, loads - 1) + max(0, deliveries - 1)
        if not loads or not deliveries:
            verdict.problems.append(f"{vacation_id}: {loads} loads, {deliveries} deliveries "
                                    "in its history")
        verdict.out_of_order += out_of_order(history)
        found = rows.get(vacation_id, 0)
        verdict.lost += max(0, one.cre_records - found)
        package = packages.get(pivot_package.package_name(vacation_id), [])
        if len(package) != 1:
            verdict.problems.append(f"{vacation_id}: {len(package)} packages delivered")
        elif (counted := _package_events(package[0])) != one.cre_records:
            verdict.lost += max(0, one.cre_records - counted)
            verdict.problems.append(f"{vacation_id}: the package counts {counted} events")
        if record.state != State.DELIVERED:
            verdict.problems.append(f"{vacation_id}: {record.state}, not DELIVERED")
        if record.delivered_at and record.received_at:
            slowest = max(slowest, (record.delivered_at - record.received_at).total_seconds())
    verdict.to_delivered_seconds = slowest


def out_of_order(history: Sequence) -> int:
    """The transitions of a vacation's history that no edge of ``_NEXT`` allows."""
    wrong, state = 0, None
    for entry in history:
        if state is not None and entry.state != state and entry.state != State.LANDED \
                and entry.state not in _NEXT.get(state, set()):
            wrong += 1
        state = entry.state
    return wrong


def _package_events(path: Path) -> int:
    """The CRE events the package's POSITIONS.csv accounts for."""
    members = pivot_package.read_archive(path.read_bytes())
    positions = csv.DictReader(io.StringIO(members["POSITIONS.csv"].decode()), delimiter=";")
    return sum(int(position["event_count"]) for position in positions)


def _rows_by_vacation(session) -> dict[str, int]:
    """Each vacation's rows in ``cre_event_versions``, by a scan of the campaign's keyspace."""
    return collections.Counter(row[0] for row in session.execute(
        "SELECT vacation_id FROM cre_event_versions", timeout=300))


def quantile(buckets: Sequence[tuple[float, float]], q: float) -> float:
    """``histogram_quantile`` of Prometheus over cumulative ``buckets``: linear within the
    bucket the rank falls in."""
    if not buckets or buckets[-1][1] == 0:
        return 0.0
    rank, lower, below = q * buckets[-1][1], 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = upper, count
    return lower


def _connect(env: dict):
    """A session at the scenario's own consistency: at ONE, a node back from a restart may
    not have the history written while it was away yet, and the check would miss it."""
    config = dataclasses.replace(config_of(env), consistency=env.get(
        "CRE_CASSANDRA_CONSISTENCY", "ONE"), local_dc=env.get("CRE_CASSANDRA_LOCAL_DC"))
    return config.connect(env["CRE_CASSANDRA_KEYSPACE"])


def table(verdicts: Sequence[Verdict]) -> Iterator[str]:
    """The campaign's table, in Markdown."""
    yield ("| scenario | load | fault | accepted | ingested | delivered | lost | duplicated | "
           "out of order | uploads/s | p50 upload | p99 upload | upload to DELIVERED |")
    yield "|" + "---|" * 13
    for v in verdicts:
        yield (f"| {v.scenario} | {v.load} | {v.fault} | {v.accepted} | {v.ingested} | "
               f"{v.delivered} | {v.lost} | {v.duplicated} | {v.out_of_order} | "
               f"{_measured(v.uploads_per_second, '{:.2f}')} | "
               f"{_measured(v.p50_seconds, '{:.2f} s')} | {_measured(v.p99_seconds, '{:.2f} s')} "
               f"| {_measured(v.to_delivered_seconds, '{:.0f} s')} |")


def _measured(value: float, form: str) -> str:
    """A figure, or a dash where the scenario does not measure it."""
    return form.format(value) if value else "-"


def as_json(verdicts: Sequence[Verdict]) -> str:
    return json.dumps([dataclasses.asdict(v) for v in verdicts], indent=1)

