"""The upload door: what ``PUT /v1/uploads/{filename}`` refuses before anything lands, and what
it takes for a duplicate (the same tenant, name and sha256)."""

from __future__ import annotations

import asyncio
import bz2
import random
import time
from pathlib import Path

import httpx
import pytest
from helpers import Service, add_tenant, wait_until
from vacations import tar_bytes, valid_members, write_archive

from service.collect.meta_probe import MetaProbe
from transforms.contract import Fatal, VacationError, VacationName

RIGHT, WRONG = "BAF_20261122_03", "BAF_20261122_04"


def _meta_last(members: dict[str, bytes]) -> dict[str, bytes]:
    return {name: members[name] for name in sorted(members, key=lambda name: name == "META.json")}


def _probe(archive: bytes, file_name: str, chunk: int = 1 << 16) -> None:
    """Feeds the archive to a probe chunk by chunk, as the door does, then finishes it."""
    async def run() -> None:
        with MetaProbe(VacationName.parse(file_name)) as probe:
            for start in range(0, len(archive), chunk):
                probe.feed(archive[start:start + chunk])
            await probe.finish()

    asyncio.run(run())


def test_probe_refuses_meta_naming_another_vacation(tmp_path):
    archive = bz2.compress(tar_bytes(valid_members(tmp_path)))  # META.json first, of RIGHT
    _probe(archive, f"{RIGHT}.tar.bz2")
    with pytest.raises(VacationError) as refused:
        _probe(archive, f"{WRONG}.tar.bz2")
    assert refused.value.code == Fatal.VACATION_ID_MISMATCH and RIGHT in refused.value.message


def test_probe_answers_before_the_upload_ends(tmp_path):
    members = valid_members(tmp_path)
    members["CRE_0009.csv"] = random.Random(7).randbytes(3 << 20)  # incompressible
    archive = bz2.compress(tar_bytes(members))
    chunks = [archive[start:start + (1 << 16)] for start in range(0, len(archive), 1 << 16)]
    fed = 0
    with MetaProbe(VacationName.parse(f"{WRONG}.tar.bz2")) as probe, \
            pytest.raises(VacationError):
        for fed, chunk in enumerate(chunks, 1):  # noqa: B007 - read after the loop
            probe.feed(chunk)
            time.sleep(0.05)  # the network's pace: the probe reads meanwhile
    assert fed < len(chunks)


def test_probe_leaves_everything_else_to_the_ingest(tmp_path):
    members = valid_members(tmp_path)
    _probe(bz2.compress(tar_bytes(_meta_last(members))), f"{WRONG}.tar.bz2")  # META not first
    _probe(b"not bzip2 at all", f"{WRONG}.tar.bz2")
    _probe(bz2.compress(tar_bytes(members))[:500], f"{WRONG}.tar.bz2")  # truncated
    _probe(bz2.compress(tar_bytes({**members, "META.json": b"{not json"})), f"{WRONG}.tar.bz2")


@pytest.fixture
def service(structured, tmp_path):
    add_tenant(tmp_path / "tenants.json", "arkea", "--max-files", "20")
    running = Service(tmp_path, structured, "--token-seconds", "300")
    yield running
    running.kill()


def _left_in_landing(tmp_path: Path) -> list[str]:
    """Every file and folder under landing: a refused upload leaves not even a folder."""
    landing = tmp_path / "zones/landing"
    return sorted(str(path.relative_to(landing)) for path in landing.rglob("*"))


def _landed(tmp_path: Path) -> list[str]:
    landing = tmp_path / "zones/landing"
    return sorted(str(path.relative_to(landing)) for path in landing.rglob("*")
                  if path.is_file()) if landing.exists() else []


def _upload(client: httpx.Client, name: str, archive: Path) -> httpx.Response:
    return client.put(f"/v1/uploads/{name}", content=archive.read_bytes())


def _upload_ids(client: httpx.Client) -> set[str]:
    return {upload["upload_id"] for upload in client.get("/v1/uploads").json()}


def _status(service: Service, upload_id: str, states: set[str]) -> dict:
    def probe() -> dict:
        with service.client("arkea") as client:
            return client.get(f"/v1/uploads/{upload_id}").json()

    return wait_until(probe, lambda row: row["status"] in states, timeout=300, interval=1,
                      what=f"upload {upload_id} {sorted(states)}")


@pytest.mark.integration
def test_an_archive_sent_under_a_wrong_name_does_not_hide_its_vacation(service, tmp_path):
    members = _meta_last(valid_members(tmp_path))  # the door cannot see META: the ingest does
    (tmp_path / "mistaken").mkdir()
    mistaken = write_archive(tmp_path / "mistaken", members, name=WRONG)
    right = write_archive(tmp_path, members, name=RIGHT)
    assert mistaken.read_bytes() == right.read_bytes()
    with service.client("arkea") as client:
        first = _upload(client, mistaken.name, mistaken)
        assert first.status_code == 201 and first.json()["duplicate"] is False
        second = _upload(client, right.name, right)
        assert second.status_code == 201 and second.json()["duplicate"] is False
        assert second.json()["upload_id"] != first.json()["upload_id"]
        again = _upload(client, right.name, right)  # the same name and content: a duplicate
        assert again.status_code == 200 and again.json() == {
            "upload_id": second.json()["upload_id"], "sha256": second.json()["sha256"],
            "duplicate": True}
    rejected = _status(service, first.json()["upload_id"], {"REJECTED"})
    assert [error["code"] for error in rejected["summary"]["errors"]] == [
        Fatal.VACATION_ID_MISMATCH]
    delivered = _status(service, second.json()["upload_id"], {"DELIVERED"})
    assert delivered["summary"]["status"] == "ACCEPTED"
    sha256 = first.json()["sha256"]
    assert _landed(tmp_path) == [
        f"arkea/2026-11-22/{RIGHT}/{sha256}/{RIGHT}.tar.bz2",
        f"arkea/2026-11-22/{RIGHT}/{sha256}/{RIGHT}.tar.bz2.sha256",
        f"arkea/2026-11-22/{WRONG}/{sha256}/{WRONG}.tar.bz2",
        f"arkea/2026-11-22/{WRONG}/{sha256}/{WRONG}.tar.bz2.sha256"]


@pytest.mark.integration
def test_meta_naming_another_vacation_is_refused_at_the_door(service, tmp_path):
    # META.json first; the tests of this module share a keyspace, so each has its own date
    members = valid_members(tmp_path, business_date="2026-11-23", slot=3)
    archive = write_archive(tmp_path, members, name="BAF_20261123_03")
    with service.client("arkea") as client:
        before = _upload_ids(client)
        refused = _upload(client, "BAF_20261123_04.tar.bz2", archive)
        assert refused.status_code == 422, refused.text
        assert Fatal.VACATION_ID_MISMATCH in refused.json()["detail"]
        assert _upload_ids(client) == before
        assert _left_in_landing(tmp_path) == []
        assert _upload(client, archive.name, archive).status_code == 201
    assert 'outcome="vacation_id_mismatch"' in httpx.get(f"{service.url}/metrics").text


# the file names of PUT /v1/uploads/{filename}, as sent on the wire (percent-encoded)
BAD_NAMES = {
    "a slash": f"2026-11-22%2F{RIGHT}.tar.bz2",
    "an escape": f"..%2F..%2F{RIGHT}.tar.bz2",
    "dot dot": "%2E%2E",
    "dot dot with the suffix": "...tar.bz2",
    "a NUL": f"{RIGHT}%00.tar.bz2",
    "a NUL before the suffix": "BAF_20261122_0%003.tar.bz2",
    "a line feed": f"{RIGHT}.tar.bz2%0A",
    "300 characters": f"{RIGHT}{'x' * 277}.tar.bz2",
    "300 characters of a vacation": f"{'B' * 292}.tar.bz2",
    "no slot": "BAF_20261122_07.tar.bz2",
    "no date": "BAF_20261131_03.tar.bz2",
}


@pytest.mark.integration
def test_bad_names_are_refused_and_leave_landing_empty(service, tmp_path):
    archive = write_archive(tmp_path, valid_members(tmp_path))
    with service.client("arkea") as client:
        before = _upload_ids(client)
        answers = {why: _upload(client, name, archive).status_code
                   for why, name in BAD_NAMES.items()}
        assert all(400 <= status < 500 for status in answers.values()), answers
        assert _upload_ids(client) == before
    assert _left_in_landing(tmp_path) == []
