"""The reliability campaign (``make test-reliability``): the whole path, senders to service to
ingest to Arkea, under load while things fail, and what came out the other end counted.

Every scenario runs on the loopback, bounded in size and time, and ends by checking that every
accepted upload is in the ledger once, ingested once and delivered once, with every record in
the structured zone and in the package, and no transition of ``vacation_history`` out of order
(``helpers.campaign``). On a three-node cluster, two ``cre serve`` replicas under two host names
over TLS: the load (four tenants, a day of six vacations each, sent twice at once), a node
stopped and started, a replica SIGKILLed mid-upload, an ingest SIGKILLed mid-load. On one node
behind a TCP proxy: Cassandra unreachable for a minute, the zones' file system full, a landed
archive changed before its ingest. Then the hostile clients' module, and a soak of one replica.
It prints the table, writes it to docs/reliability.md and exits 1 if a scenario missed its bar.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))  # the tests' helpers, as pytest.ini's pythonpath does

from helpers import cluster_keyspace, free_port, run_cre, wait_until  # noqa: E402
from helpers.campaign import Campaign, Verdict, table  # noqa: E402
from helpers.service import Service  # noqa: E402
from helpers.tcp_proxy import TcpProxy  # noqa: E402

from pipelines.ledger import IN_PROGRESS, State  # noqa: E402
from pipelines.local.cassandra_cluster import Cluster  # noqa: E402
from pipelines.local.cassandra_server import DEFAULT_PASSWORD, DEFAULT_USER, Server  # noqa: E402
from pipelines.local.generator import generate_vacation  # noqa: E402

TENANTS = ("north", "south", "east", "west")
HOSTS = ("host-a", "host-b")  # the two replicas play two machines (unshare -u)
LEASE = "20"  # seconds: a killed ingest is taken over within a minute
SCENARIOS = ("load", "node restart", "replica killed", "ingest killed", "disk full",
             "changed archive", "unreachable", "hostile clients", "soak")


def _cluster_scenarios(cluster: Cluster, work: Path, rows: int,
                       wanted: Callable[[str], bool]) -> Iterator[Verdict]:
    def campaign(name: str, tenants: tuple[str, ...] = TENANTS[:2]) -> Campaign:
        env = {**cluster_keyspace(cluster, name.replace(" ", "_")), "CRE_LEASE_SECONDS": LEASE}
        return Campaign(work / name.replace(" ", "-"), env, tenants, hosts=HOSTS,
                        options=("--parallelism", "1"))

    if wanted("load"):  # the whole load; the faults on half of it, to keep within the hour
        yield _run(campaign("load", TENANTS), f"{len(TENANTS)} tenants x 6 vacations x "
                   f"{rows:,} rows, each sent twice at once", "none",
                   lambda c: c.push(senders=2), rows)
    load = f"2 tenants x 6 vacations x {rows:,} rows"

    def node_restart(c: Campaign) -> float:
        fault = threading.Thread(target=lambda: (time.sleep(5), cluster.stop(3),
                                                 time.sleep(30), cluster.start(3)))
        fault.start()
        try:
            return c.push()
        finally:
            fault.join()
    if wanted("node restart"):
        yield _run(campaign("node restart"), load, "node 3 stopped 30 s, started",
                   node_restart, rows)

    def replica_killed(c: Campaign) -> float:
        victim = c.replicas[0]
        fault = threading.Thread(target=lambda: (_uploading(victim), victim.kill()))
        fault.start()
        try:
            return c.push()
        finally:
            fault.join()
            victim.start()
    if wanted("replica killed"):
        yield _run(campaign("replica killed"), load, "replica A SIGKILLed mid-upload",
                   replica_killed, rows)

    takeovers: list[float] = []

    def ingest_killed(c: Campaign) -> float:
        pushed = c.push()
        takeovers.append(_kill_an_ingest(c, HOSTS[0]))
        return pushed
    if wanted("ingest killed"):
        verdict = _run(campaign("ingest killed"), load, "an ingest of host A SIGKILLed",
                       ingest_killed, rows)
        verdict.fault += f" (taken over in {takeovers[0]:.0f} s)" if takeovers else ""
        yield verdict


def _run(campaign: Campaign, load: str, fault: str, push: Callable[[Campaign], float],
         rows: int, vacations: int = 6) -> Verdict:
    name = campaign.folder.name.replace("-", " ")
    print(f"== {name}: {load}; fault: {fault}", flush=True)
    try:
        campaign.generate(vacations, rows)
        pushed = push(campaign)
        campaign.settled(timeout=1200)
        return campaign.verdict(name, load, fault, pushed)
    except Exception as error:  # noqa: BLE001 - a scenario that broke is a line that failed
        verdict = Verdict(name, load, fault, problems=[f"{type(error).__name__}: {error}"])
        print(campaign.logs()[-4000:], file=sys.stderr)
        return verdict
    finally:
        campaign.stop()


def _uploading(replica: Service) -> None:
    """Waits until the replica is receiving an upload (an ``_incoming-`` file in landing)."""
    landing = replica.folder / "zones" / "landing"
    wait_until(lambda: any(landing.rglob("_incoming-*")) if landing.exists() else False,
               timeout=120, interval=0.05, what="an upload in progress")


def _kill_an_ingest(campaign: Campaign, host: str) -> float:
    """SIGKILLs the first ingest running on ``host``; the seconds until another took it."""
    ledger, session = campaign.ledger()
    try:
        wanted = [sent.vacation_id for sent in campaign.sent]

        def running_there():
            return next((row for row in ledger.get_many(wanted).values()
                         if row.state in IN_PROGRESS and (row.owner or "").startswith(host)),
                        None)
        victim = wait_until(running_there, timeout=600, interval=0.2,
                            what=f"an ingest running on {host}")
        os.kill(int(victim.owner.rpartition(":")[2]), signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: ledger.get(victim.vacation_id),
                   lambda row: row.run_id != victim.run_id or row.state not in IN_PROGRESS,
                   timeout=300, interval=0.5, what="the takeover")
        return time.monotonic() - killed
    finally:
        session.cluster.shutdown()


@contextlib.contextmanager
def _one_node(work: Path) -> Iterator[Server]:
    server = Server(work / "cassandra", free_port(), free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _keyspace(hosts: str, name: str) -> dict:
    env = {"CRE_CASSANDRA_HOSTS": hosts, "CRE_CASSANDRA_USERNAME": DEFAULT_USER,
           "CRE_CASSANDRA_PASSWORD": DEFAULT_PASSWORD, "CRE_CASSANDRA_CONSISTENCY": "ONE",
           "CRE_CASSANDRA_KEYSPACE": name, "CRE_LEASE_SECONDS": LEASE}
    migrated = run_cre("db", "migrate", env=env)
    assert migrated.code == 0, migrated.stderr
    return env


def _node_scenarios(server: Server, work: Path, rows: int,
                    wanted: Callable[[str], bool]) -> Iterator[Verdict]:
    tenants = TENANTS[:2]
    load = f"{len(tenants)} tenants x 6 vacations x {rows:,} rows"
    hosts = f"127.0.0.1:{server.native_port}"
    if wanted("disk full"):
        yield _disk_full(work / "disk-full", _keyspace(hosts, "disk_full"), tenants, rows)
    if wanted("changed archive"):
        yield _changed_archive(work / "changed", _keyspace(hosts, "changed"))
    if not wanted("unreachable"):
        return
    with TcpProxy("127.0.0.1", server.native_port) as proxy:
        env = _keyspace(f"127.0.0.1:{proxy.port}", "unreachable")

        def unreachable(c: Campaign) -> float:
            fault = threading.Thread(target=lambda: (time.sleep(3), proxy.cut(),
                                                     time.sleep(60), proxy.restore()))
            fault.start()
            try:
                return c.push()
            finally:
                fault.join()
        yield _run(Campaign(work / "unreachable", env, tenants), load,
                   "Cassandra unreachable for 60 s", unreachable, rows)


def _disk_full(folder: Path, env: dict, tenants, rows: int) -> Verdict:
    """The zones on a tmpfs half the size of what is sent: uploads refused 507 (nothing kept),
    ingests failing while it is full; once it is grown, the senders send again and every
    vacation gets through once."""
    zones = folder / "zones"
    zones.mkdir(parents=True)
    refused: list[float] = []

    def full_then_grown(c: Campaign) -> float:
        half = sum(sent.archive.stat().st_size for sent in c.sent) // 2048
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={half}k", "tmpfs", str(zones)],
                       check=True)
        pushed = c.push(check=False)  # some files refused: their runs exit 1
        refused.append(c.metric("cre_uploads_total", outcome="no_space"))
        subprocess.run(["mount", "-o", "remount,size=2g", str(zones)], check=True)
        return pushed + c.push()

    try:
        verdict = _run(Campaign(folder, env, tenants), f"{len(tenants)} tenants x 6 vacations "
                       f"x {rows:,} rows", "zones file system full (half of what is sent), "
                       "then grown", full_then_grown, rows)
    finally:
        subprocess.run(["umount", "-l", str(zones)], check=False)
    verdict.fault += f": {refused[0]:.0f} uploads refused 507" if refused else ""
    if refused and not refused[0]:
        verdict.problems.append("no upload was refused: the file system was never full")
    return verdict


def _changed_archive(folder: Path, env: dict) -> Verdict:
    """An archive changed on disk after it landed and before its ingest is refused by its
    sha256: never ingested, nothing published, the refusal in the ledger's history; the other
    vacation of the push goes through."""
    campaign = Campaign(folder, env, ["north"], replicas=1, options=("--no-manager",))
    verdict = Verdict("changed archive", "1 tenant x 2 vacations x 1,000 rows",
                      "a landed archive changed before its ingest")
    try:
        campaign.generate(2, 1_000)
        campaign.push()
        changed, kept = campaign.sent
        landed = next((folder / "zones" / "landing").rglob(changed.archive.name))
        with open(landed, "ab") as tampered:
            tampered.write(b"\0")
        manager = Service(folder, env, "--max-failures", "1")
        ledger, session = campaign.ledger()
        try:
            wait_until(lambda: ledger.get(changed.vacation_id),
                       lambda row: (row.manager_failures or 0) >= 1, timeout=300, interval=1,
                       what="the changed archive's refusal", detail=manager.log.read_text)
            wait_until(lambda: ledger.get(kept.vacation_id),
                       lambda row: row.state == State.DELIVERED, timeout=300, interval=1,
                       what="the other vacation", detail=manager.log.read_text)
            row = ledger.get(changed.vacation_id)
            notes = [entry.message for entry in ledger.history(changed.vacation_id)]
            published = list((folder / "zones" / "proxy_producer").rglob(
                f"*{changed.vacation_id}*"))
        finally:
            session.cluster.shutdown()
            manager.kill()
        verdict.accepted = 2
        verdict.ingested = verdict.delivered = 1
        if row.state != State.RECEIVED or published:
            verdict.problems.append(f"{changed.vacation_id}: {row.state}, published {published}")
        if not any("sha256" in note for note in notes):
            verdict.problems.append(f"{changed.vacation_id}: no refusal in its history: {notes}")
    except Exception as error:  # noqa: BLE001
        verdict.problems.append(f"{type(error).__name__}: {error}")
    finally:
        campaign.stop()
    return verdict


def _hostile(server: Server) -> Verdict:
    """tests/test_hostile_clients.py against the node: its pytest outcome is the line."""
    verdict = Verdict("hostile clients", "a well-behaved tenant's upload", "slow, oversized, "
                      "crowding, replaying and guessing clients on both replicas")
    env = {**os.environ, "CRE_CASSANDRA_HOSTS": f"127.0.0.1:{server.native_port}",
           "CRE_CASSANDRA_USERNAME": DEFAULT_USER, "CRE_CASSANDRA_PASSWORD": DEFAULT_PASSWORD}
    ran = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_hostile_clients.py"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    verdict.accepted = verdict.ingested = verdict.delivered = 1
    if ran.returncode != 0:
        verdict.problems.append(ran.stdout[-3000:])
    return verdict


def _soak(server: Server, work: Path, minutes: float) -> Verdict:
    """Small uploads against one replica for ``minutes``, its RSS and open descriptors
    sampled: after a warm-up, neither may grow."""
    env = _keyspace(f"127.0.0.1:{server.native_port}", "soak")
    campaign = Campaign(work / "soak", env, ["north"], replicas=1, options=("--no-manager",))
    verdict = Verdict("soak", f"{minutes:.0f} min of small uploads, one replica", "none")
    samples: list[tuple[float, int, int]] = []
    pid = campaign.replicas[0].process.pid
    inbox = campaign.inbox("north")
    started = time.monotonic()
    sent = 0
    try:
        day = datetime.date(2027, 1, 1)
        while time.monotonic() - started < minutes * 60:
            for slot in range(1, 7):
                generate_vacation(inbox, day.isoformat(), slot, 5, 2, seed=sent + slot)
            sent += 6
            campaign.push()
            shutil.rmtree(inbox)
            day += datetime.timedelta(days=1)
            samples.append((time.monotonic() - started, *_footprint(pid)))
        verdict.accepted = sent
        verdict.uploads_per_second = sent / (time.monotonic() - started)
    finally:
        campaign.stop()
    warm = [sample for sample in samples if sample[0] >= min(120, minutes * 60 / 4)]
    first, last = warm[: max(1, len(warm) // 10)], warm[-max(1, len(warm) // 10):]
    rss = [sum(sample[1] for sample in part) / len(part) for part in (first, last)]
    fds = [max(sample[2] for sample in part) for part in (first, last)]
    verdict.fault = (f"RSS {rss[0] / 2**20:.0f} -> {rss[1] / 2**20:.0f} MiB, "
                     f"open files {fds[0]} -> {fds[1]}")
    if rss[1] > rss[0] * 1.1 + 16 * 2**20 or fds[1] > fds[0] + 8:
        verdict.problems.append(f"not flat: {verdict.fault}")
    return verdict


def _footprint(pid: int) -> tuple[int, int]:
    """A process' resident bytes and open descriptors."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) * 1024 for line in status.splitlines()
               if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000, help="CRE rows per vacation.")
    parser.add_argument("--soak-minutes", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md",
                        help="Where the table goes (between its markers).")
    parser.add_argument("--only", type=lambda text: set(text.split(",")), default=None,
                        metavar="SCENARIO,...", help=f"Only these: {', '.join(SCENARIOS)}.")
    args = parser.parse_args()
    wanted = (args.only or set(SCENARIOS)).__contains__
    work = ROOT / "var" / "reliability"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.monotonic()
    verdicts: list[Verdict] = []
    if any(map(wanted, SCENARIOS[:4])):
        cluster = Cluster(work / "cluster", 3, free_port(), free_port(), free_port())
        try:
            cluster.start()
            verdicts += _cluster_scenarios(cluster, work, args.rows, wanted)
        finally:
            cluster.stop()
    with _one_node(work) as server:
        verdicts += _node_scenarios(server, work, args.rows, wanted)
        if wanted("hostile clients"):
            verdicts.append(_hostile(server))
        if wanted("soak"):
            verdicts.append(_soak(server, work, args.soak_minutes))
    minutes = (time.monotonic() - started) / 60
    lines = list(table(verdicts))
    print("\n".join(lines))
    failed = [verdict for verdict in verdicts if not verdict.passed]
    for verdict in failed:
        print(f"FAILED {verdict.scenario}: {verdict.problems}", file=sys.stderr)
    _write(args.out, lines, minutes, failed)
    return 1 if failed else 0


def _write(out: Path, lines: list[str], minutes: float, failed: list[Verdict]) -> None:
    """Puts this run's lines in the table of ``out`` (between its markers): a run of some
    scenarios (``--only``) replaces their lines and keeps the others'."""
    begin, end = "<!-- campaign table: begin -->", "<!-- campaign table: end -->"
    text = out.read_text()
    head, _, rest = text.partition(begin)
    kept, _, tail = rest.partition(end)
    header, rows = lines[:2], {_scenario(line): line for line in lines[2:]}
    earlier = {_scenario(line): line for line in kept.splitlines() if line.startswith("| ")}
    earlier.pop("scenario", None)
    merged = {**earlier, **rows}
    ordered = sorted(merged, key=lambda name: SCENARIOS.index(name)
                     if name in SCENARIOS else len(SCENARIOS))
    run = (f"Last run {datetime.date.today().isoformat()}: {', '.join(rows)} "
           f"({minutes:.0f} min on this machine, 2 cores)"
           f"{'; FAILED: ' + ', '.join(v.scenario for v in failed) if failed else ''}.")
    out.write_text("\n".join([head + begin, "", *header, *(merged[name] for name in ordered),
                              "", run, "", end]) + tail)


def _scenario(line: str) -> str:
    return line.split("|")[1].strip()


if __name__ == "__main__":
    sys.exit(main())
