"""One answer whatever runs the pipelines: DirectRunner in one process, DirectRunner on two
worker processes (the batches spread after the reader) and Beam's portable runner Prism (SDK
workers in processes of their own, everything through the Fn API).

The same three vacations (one with rejects, a correction of it, one REJECTED for its reject
ratio) are ingested into a structured zone of each mode's own, then delivered again, backed up
and restored, each step on the mode's runner; what each mode leaves must be identical: the
summaries, the Proxy Producer zone's records, every Cassandra row, the outbound packages byte
for byte, and the restored keyspace. And each mode's runs started the processes of its runner
(Prism and its cre-workers, DirectRunner's SDK workers), so that what is compared did run there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import fastavro
import pytest
from helpers import config_of, start_cre
from vacations import break_currencies, data_records, write_archive

from pipelines import backup
from pipelines.local.generator import generate_vacation, read_members
from transforms import pivot_package

pytestmark = pytest.mark.integration

MODES = {
    "in process": [],
    "two processes": ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"],
    "Prism": ["--runner", "PrismRunner"],
}
DATE = "2026-11-25"
WITH_REJECTS, CORRECTION, REJECTED = (f"BAF_20261125_0{slot}" for slot in (1, 2, 3))
# what differs from one run to the next by nature: when, and which run
VOLATILE = {"vacations": {"run_id", "owner", "lease_until", "state_changed_at", "received_at",
                          "processed_at", "delivered_at", "manager", "manager_until"},
            "vacation_history": {"at", "run_id"}}
# the package's digest and size follow ACK.json, which says when the vacation was processed
TIMED_PACKAGE = ("sha256", "bytes")


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict:
    """About three batches of each CRE member, so the spread modes have batches to spread."""
    tmp = tmp_path_factory.mktemp("vacations")
    first = read_members(generate_vacation(tmp / "1", DATE, 1, 30_000, 300, seed=71,
                                           cre_members=2))
    members, rejects = break_currencies(first, every=997)
    rows = [row for name, raw in first.items() if name.startswith("CRE_")
            for row in data_records(raw)]
    corrections = [[*rows[0][:5], "77.70", *rows[0][6:]], [*rows[9][:5], "0.01", *rows[9][6:]]]
    correction = generate_vacation(tmp / "2", DATE, 2, 2000, 20, seed=72,
                                   corrections=corrections)
    third, rejected = break_currencies(
        read_members(generate_vacation(tmp / "3", DATE, 3, 5000, 10, seed=73)), every=10)
    return {"paths": [write_archive(tmp, members, WITH_REJECTS), correction,
                      write_archive(tmp, third, REJECTED)],
            "rejects": (rejects, rejected)}


def _without_times(value: Any) -> Any:
    """JSON with the keys that say when (``*_at``, and the data-quality metric of the arrival,
    which follows ``received_at``) taken out, at any depth."""
    if isinstance(value, dict):
        return {key: _without_times(item) for key, item in value.items()
                if not key.endswith("_at") and key != "arrival.delay_minutes"}
    if isinstance(value, list):
        return [_without_times(item) for item in value]
    return value


def _plain(table: str, row: dict) -> str:
    kept = {}
    for name, value in row.items():
        if name in VOLATILE.get(table, ()):
            continue
        if isinstance(value, str) and value[:1] in "{[":
            value = _without_times(json.loads(value))
        elif isinstance(value, Mapping):  # a CQL map: vacation_quality's metrics
            value = _without_times(dict(value))
        if (table, name) == ("vacations", "delivery") and value:
            value = {key: item for key, item in value.items() if key not in TIMED_PACKAGE}
        kept[name] = value
    return json.dumps(kept, sort_keys=True, default=str)


def _cassandra_rows(env: dict) -> dict[str, list[str]]:
    """Every row of every table of the keyspace, in one order whatever wrote them."""
    keyspace = env["CRE_CASSANDRA_KEYSPACE"]
    session = config_of(env).connect(keyspace)
    try:
        rows = {}
        for schema in backup.discover(session, keyspace):
            result = session.execute(f"SELECT * FROM {schema.name}", timeout=120)
            rows[schema.name] = sorted(_plain(schema.name, dict(zip(result.column_names, row)))
                                       for row in result)
        return rows
    finally:
        session.cluster.shutdown()


def _zone_records(zones: Path) -> dict[str, list[str]]:
    """The Proxy Producer zone's records by partition (type, date, vacation), ordered: how many
    files hold them depends on the bundles, which differ by runner."""
    found: dict[str, list[str]] = {}
    for path in sorted((zones / "proxy_producer").rglob("*.avro")):
        with path.open("rb") as handle:
            records = [json.dumps(_without_times(record), sort_keys=True, default=str)
                       for record in fastavro.reader(handle)]
        found.setdefault(str(path.parent.relative_to(zones)), []).extend(records)
    return {partition: sorted(records) for partition, records in found.items()}


def _packages(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes()
            for path in sorted((root / "outbound").rglob("*.tar.bz2"))}


def _package_contents(root: Path) -> dict[str, dict]:
    """Each package's members, byte for byte but for ACK.json's two times (spec 4: when the
    vacation was received and processed, which no two ingests share) and MANIFEST's digest of
    ACK.json, which follows them."""
    contents = {}
    for name, data in _packages(root).items():
        members = pivot_package.read_archive(data)
        members[pivot_package.ACK] = _without_times(json.loads(members[pivot_package.ACK]))
        members[pivot_package.MANIFEST] = [
            entry for entry in json.loads(members[pivot_package.MANIFEST])
            if entry["name"] != pivot_package.ACK]
        contents[name] = members
    return contents


def _keyspace(cassandra_env: dict, prefix: str) -> dict:
    return {**cassandra_env, "CRE_CASSANDRA_KEYSPACE": f"{prefix}_{uuid.uuid4().hex[:8]}",
            "CRE_CASSANDRA_CONSISTENCY": "ONE"}


def _drop(env: dict) -> None:
    session = config_of(env).connect()
    session.execute(f"DROP KEYSPACE IF EXISTS {env['CRE_CASSANDRA_KEYSPACE']}", timeout=120)
    session.cluster.shutdown()


def _parents() -> dict[int, int]:
    """Every process of the machine and its parent's pid (/proc)."""
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            found[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def _worker_kind(argv: list[str]) -> Optional[str]:
    """What Beam process ``argv`` is, if it is one: Prism (the Go job server), a cre-worker (the
    SDK worker Prism starts) or an SDK worker of DirectRunner's multi_processing mode."""
    if argv and "prism" in Path(argv[0]).name and "--job_port" in argv:
        return "prism"
    if any(Path(arg).name == "cre-worker" for arg in argv[:2]):
        return "cre-worker"
    if "-m" in argv and "apache_beam.runners.worker.sdk_worker_main" in argv:
        return "sdk worker"
    return None


def _beam_processes(root: int) -> dict[int, str]:
    """The Beam processes below ``root`` now, by pid."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found, pending = {}, [root]
    while pending:
        for child in children.get(pending.pop(), []):
            try:
                argv = Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if kind := _worker_kind(argv.split("\0")[:-1]):
                found[child] = kind
            pending.append(child)
    return found


def _run(env: dict, *args: str, codes: tuple[int, ...] = (0,),
         seen: Optional[list] = None) -> str:
    """``cre args``; with ``seen``, the Beam processes the run started (looked for every 0.2 s
    while it runs: they live as long as a pipeline) are appended to it: the command, its
    processes by pid, and the most SDK workers seen alive at once."""
    process = start_cre(*args, env=env)
    processes: dict[int, str] = {}
    at_once = 0
    deadline = time.monotonic() + 600
    while True:
        try:
            stdout, stderr = process.communicate(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                process.kill()
                raise
            now = _beam_processes(process.pid)
            processes.update(now)
            at_once = max(at_once, sum(kind != "prism" for kind in now.values()))
    assert process.returncode in codes, f"cre {' '.join(args)}: {stderr[-3000:]}"
    if seen is not None:
        seen.append((args[0], processes, at_once))
    return stdout


@pytest.fixture(scope="module")
def outcomes(cassandra_env, archives, tmp_path_factory) -> dict[str, dict]:
    """What each mode left. The ingests: each mode into a keyspace of its own, under the same
    zones root (emptied between modes, so the paths the ledger records are alike). Then the
    first mode's keyspace is backed up and restored, and its vacation delivered again, by every
    mode: those runs have the same input, so the same bytes out."""
    tmp = tmp_path_factory.mktemp("modes")
    zones = tmp / "zones"
    keyspaces = {mode: _keyspace(cassandra_env, "equality") for mode in MODES}
    found: dict[str, dict] = {mode: {"processes": []} for mode in MODES}
    try:
        for mode, runner in MODES.items():
            env = keyspaces[mode]
            _run(env, "db", "migrate")
            summaries = [json.loads(_run(env, "ingest", "--input", str(archive), "--zones-root",
                                         str(zones), *runner, codes=(0, 3),
                                         seen=found[mode]["processes"]).splitlines()[-1])
                         for archive in archives["paths"]]
            found[mode].update(summaries=[_without_times(summary) for summary in summaries],
                               zone=_zone_records(zones), rows=_cassandra_rows(env),
                               packages=_package_contents(zones))
            shutil.rmtree(zones)
        source = keyspaces[next(iter(MODES))]
        for mode, runner in MODES.items():
            restored = _keyspace(cassandra_env, "restored")
            try:
                manifest = json.loads(_run(source, "backup", "--to",
                                           str(tmp / "backups" / mode), "--json", *runner,
                                           seen=found[mode]["processes"]))
                _run(restored, "restore", "--from", manifest["path"], "--json", *runner,
                     seen=found[mode]["processes"])
                found[mode].update(backup={name: entry["rows"]
                                           for name, entry in manifest["tables"].items()},
                                   restored=_cassandra_rows(restored))
            finally:
                _drop(restored)
        for mode, runner in MODES.items():
            outbound = tmp / "redelivered" / mode
            _run(source, "deliver", "--vacation", CORRECTION, "--zones-root", str(zones),
                 "--outbound-root", str(outbound), "--redeliver", *runner,
                 seen=found[mode]["processes"])
            found[mode]["redelivered"] = _packages(outbound)
    finally:
        for env in keyspaces.values():
            _drop(env)
    return found


def test_the_vacations_end_as_they_should(outcomes, archives):
    """The comparison is of something: rejects, a correction, a rejection, rows everywhere."""
    summaries = outcomes["in process"]["summaries"]
    assert [summary["status"] for summary in summaries] == [
        "ACCEPTED_WITH_REJECTS", "ACCEPTED", "REJECTED"]
    rejects, rejected = archives["rejects"]
    assert summaries[0]["reject_codes"] == {"BAD_CURRENCY": rejects}
    assert summaries[2]["reject_codes"] == {"BAD_CURRENCY": rejected}
    rows = outcomes["in process"]["rows"]
    # the REJECTED vacation's rows rolled back, its rejects kept; the corrections new versions
    assert len(rows["cre_event_versions"]) == 30_000 - rejects + 2000 + 2
    assert len(rows["rejects_by_vacation"]) == rejects + rejected
    assert set(outcomes["in process"]["packages"]) == {  # REJECTED too: its ACK says so
        f"outbound/arkea_abs/{DATE}/MMG_ABS_20261125_0{slot}.tar.bz2" for slot in (1, 2, 3)}
    assert outcomes["in process"]["restored"] == rows


@pytest.mark.parametrize("mode", MODES)
def test_every_run_ran_on_its_modes_runner(outcomes, mode):
    """The comparisons are of runners: every run of a mode (3 ingests, a backup, a restore, a
    delivery) started the Beam processes of its runner, and only those: none in process; two
    SDK workers of DirectRunner at once; Prism and its cre-workers."""
    runs = outcomes[mode]["processes"]
    assert [command for command, _, _ in runs] == [
        "ingest", "ingest", "ingest", "backup", "restore", "deliver"]
    for command, processes, at_once in runs:
        kinds = sorted(processes.values())
        if mode == "in process":
            assert kinds == [], command
        elif mode == "two processes":
            assert set(kinds) == {"sdk worker"} and at_once >= 2, (command, kinds, at_once)
        else:
            assert kinds.count("prism") == 1 and set(kinds) == {"prism", "cre-worker"}, (
                command, kinds)


@pytest.mark.parametrize("mode", [mode for mode in MODES if mode != "in process"])
def test_ingest_is_the_same_on_every_runner(outcomes, mode):
    expected, found = outcomes["in process"], outcomes[mode]
    assert found["summaries"] == expected["summaries"]
    assert found["zone"].keys() == expected["zone"].keys()
    for partition, records in expected["zone"].items():
        assert found["zone"][partition] == records, partition
    assert found["rows"].keys() == expected["rows"].keys()
    for table, rows in expected["rows"].items():
        assert found["rows"][table] == rows, table
    assert found["packages"] == expected["packages"]


@pytest.mark.parametrize("mode", [mode for mode in MODES if mode != "in process"])
def test_deliver_backup_and_restore_are_the_same_on_every_runner(outcomes, mode):
    expected, found = outcomes["in process"], outcomes[mode]
    assert found["redelivered"] == expected["redelivered"]  # byte for byte
    assert list(found["redelivered"]) == [
        f"outbound/arkea_abs/{DATE}/MMG_ABS_20261125_02.tar.bz2"]
    assert found["backup"] == expected["backup"]
    assert found["restored"] == expected["restored"]
