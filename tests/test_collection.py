"""The collection service for real: ``cre serve`` under uvicorn on a loopback port, driven by
``cre fetchdata`` and by an HTTP client."""

from __future__ import annotations

import time

import httpx
import pytest
from helpers import PASSWORDS, Service, add_tenant, run_cre, wait_until

from pipelines.ledger import IN_PROGRESS, Ledger
from pipelines.local.generator import generate_vacation
from pipelines.structured_zone import StructuredZone

pytestmark = pytest.mark.integration

@pytest.fixture
def service(structured, tmp_path):
    add_tenant(tmp_path / "tenants.json", "arkea", "--max-files", "3", "--max-bytes",
               "5000000")
    add_tenant(tmp_path / "tenants.json", "other", "--max-files", "1", "--max-bytes", "1000")
    running = Service(tmp_path, structured, "--token-seconds", "20")
    yield running
    running.kill()


def _wait_for(service: Service, date: str, count: int, states: set[str],
              timeout: float = 240) -> list[dict]:
    def uploads() -> list[dict]:
        with service.client("arkea") as client:  # a fresh token: waits outlive tokens
            return client.get("/v1/uploads", params={"date": date}).json()

    def reached(found: list[dict]) -> bool:
        return len(found) == count and all(u["status"] in states for u in found)

    return wait_until(uploads, reached, timeout=timeout, interval=1,
                      what=f"{count} uploads of {date} {sorted(states)}")


def test_fetchdata_round_trip_to_delivered(service, tmp_path):
    inbox = tmp_path / "client-input-dir"
    for slot in (1, 2):
        generate_vacation(inbox, "2026-07-01", slot, 300, 4, seed=70 + slot)
    (inbox / "notes.txt").write_text("not a vacation")
    fetch = run_cre("fetchdata", "-u", "arkea", "-d", str(inbox), "--server", service.url,
                    env={"CRE_PASSWORD": PASSWORDS["arkea"]})
    assert fetch.code == 1, fetch.stderr  # notes.txt could not be sent
    lines = fetch.stdout.splitlines()
    assert lines[0].split() == ["file", "result", "why", "upload", "id"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["BAF_20260701_01.tar.bz2", "sent"], ["BAF_20260701_02.tar.bz2", "sent"],
        ["notes.txt", "refused"]]
    uploads = _wait_for(service, "2026-07-01", 2, {"DELIVERED"})
    assert {u["summary"]["status"] for u in uploads} == {"ACCEPTED"}
    for slot in (1, 2):
        assert (tmp_path / "zones/outbound/arkea_abs/2026-07-01"
                / f"MMG_ABS_20260701_0{slot}.tar.bz2").exists()
    landed = sorted(path.relative_to(tmp_path / "zones/landing")
                    for path in (tmp_path / "zones/landing").rglob("*.tar.bz2"))
    assert [str(path.parent.parent) for path in landed] == [  # landed once, not copied
        "arkea/2026-07-01/BAF_20260701_01", "arkea/2026-07-01/BAF_20260701_02"]
    (inbox / "notes.txt").unlink()
    again = run_cre("fetchdata", "-u", "arkea", "-d", str(inbox), "--server", service.url,
                    env={"CRE_PASSWORD": PASSWORDS["arkea"]})
    assert again.code == 0 and again.stdout.count("skipped") == 2


def test_constraints_are_enforced(service, tmp_path):
    archive = generate_vacation(tmp_path / "in", "2026-07-02", 1, 100, 2, seed=72)
    with service.client("other") as client:
        assert client.get("/v1/constraints").json() == {
            "tenant": "other", "formats": [".tar.bz2"], "max_files_per_upload_session": 1,
            "max_bytes_per_file": 1000}
        wrong = client.put("/v1/uploads/BAF_20260702_01.zip", content=b"x")
        assert wrong.status_code == 415 and ".tar.bz2" in wrong.json()["detail"]
        declared = client.put(f"/v1/uploads/{archive.name}", content=archive.read_bytes())
        assert declared.status_code == 413 and "1000" in declared.json()["detail"]

        def chunks():  # no Content-Length: the limit is found while streaming
            data = archive.read_bytes()
            for start in range(0, len(data), 300):
                yield data[start:start + 300]

        streamed = client.put(f"/v1/uploads/{archive.name}", content=chunks())
        assert streamed.status_code == 413
    with service.client("other") as client:
        small = client.put("/v1/uploads/BAF_20260702_02.tar.bz2", content=b"tiny")
        assert small.status_code == 201
        second = client.put("/v1/uploads/BAF_20260702_03.tar.bz2", content=b"tiny too")
        assert second.status_code == 429 and "1 files per upload session" in \
            second.json()["detail"]
    landed = list((tmp_path / "zones/landing").rglob("*.tar.bz2"))
    assert [path.name for path in landed] == ["BAF_20260702_02.tar.bz2"]


def test_authentication(service, forget_failed_logins):
    url = service.url
    assert httpx.get(f"{url}/v1/constraints").status_code == 401
    assert httpx.get(f"{url}/v1/constraints", headers={
        "Authorization": "Bearer made-up"}).status_code == 401
    assert httpx.post(f"{url}/v1/token", auth=("arkea", "wrong password!")).status_code == 401
    assert httpx.post(f"{url}/v1/token", auth=("nobody", "wrong password!")).status_code == 401
    # five failures from one address (two above) and the next attempts are refused unread
    statuses = [httpx.post(f"{url}/v1/token", auth=("other", "wrong password!"),
                           timeout=30).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    refused = httpx.post(f"{url}/v1/token", auth=("other", PASSWORDS["other"]))
    assert refused.status_code == 429 and refused.headers["retry-after"] == "300"
    assert "cre_login_failures_total 5.0" in httpx.get(f"{url}/metrics").text


def test_expired_token(structured, tmp_path):
    add_tenant(tmp_path / "tenants.json", "arkea")
    # long enough for a busy machine to verify the password and answer once within it
    short = Service(tmp_path, structured, "--token-seconds", "5", "--no-manager")
    try:
        with short.client("arkea") as client:
            assert client.get("/v1/constraints").status_code == 200
            time.sleep(5.5)
            assert client.get("/v1/constraints").status_code == 401
    finally:
        short.kill()


def test_tenants_cannot_see_each_other(service, tmp_path):
    archive = generate_vacation(tmp_path / "in", "2026-07-03", 1, 10, 1, seed=73)
    with service.client("arkea") as arkea:
        first = arkea.put(f"/v1/uploads/{archive.name}", content=archive.read_bytes()).json()
    with service.client("other") as other:
        assert other.get("/v1/uploads", params={"date": "2026-07-03"}).json() == []
        assert other.get(f"/v1/uploads/{first['upload_id']}").status_code == 404
        assert other.get("/v1/uploads", params={"sha256": first["sha256"]}).json() == []
        overwrite = other.put(f"/v1/uploads/{archive.name}", content=b"other bytes")
        assert overwrite.status_code == 201
        assert overwrite.json()["upload_id"] != first["upload_id"]
    with service.client("arkea") as arkea:
        mine = arkea.get(f"/v1/uploads/{first['upload_id']}").json()
        assert mine["sha256"] == first["sha256"]
        assert [u["upload_id"] for u in arkea.get(
            "/v1/uploads", params={"date": "2026-07-03"}).json()] == [first["upload_id"]]
    landed = tmp_path / "zones/landing/arkea/2026-07-03/BAF_20260703_01" / first["sha256"]
    assert (landed / archive.name).read_bytes() == archive.read_bytes()


def test_killed_server_finishes_every_vacation_once(service, structured, zone_session,
                                                     tmp_path):
    inbox = tmp_path / "inbox"
    archives = [generate_vacation(inbox, "2026-07-04", slot, 30_000, 5, seed=80 + slot)
                for slot in (1, 2, 3)]
    with service.client("arkea") as client:
        for archive in archives:
            assert client.put(f"/v1/uploads/{archive.name}",
                              content=archive.read_bytes()).status_code == 201
        seen = wait_until(lambda: [u["vacation_id"] for u in client.get("/v1/uploads").json()
                                   if u["status"] == "INGESTING"],
                          timeout=60, interval=0.2, what="a vacation INGESTING")
    service.kill()  # the service and the ingests it started
    ledger = Ledger(zone_session)
    # what the killed runs left: a vacation claimed and not finished, so the kill hit its load
    cut = {vacation_id: ledger.get(vacation_id).state for vacation_id in seen}
    assert set(cut.values()) & IN_PROGRESS, cut
    service.start()
    uploads = _wait_for(service, "2026-07-04", 3, {"DELIVERED"}, timeout=400)
    assert sorted(u["summary"]["totals"]["loaded"] for u in uploads) == [30_005] * 3
    for archive in archives:
        vacation_id = archive.name.removesuffix(".tar.bz2")
        messages = [item.message for item in Ledger(zone_session).history(vacation_id)]
        if cut.get(vacation_id) in IN_PROGRESS:  # taken over from the killed run, once
            assert sum(message.startswith(f"claimed (was {cut[vacation_id]} by run ")
                       for message in messages) == 1, messages
        assert messages.count("rows visible") == 1
        assert sum(message.startswith("delivered ") for message in messages) == 1
        assert StructuredZone(zone_session).written(vacation_id)["cre_event_versions"] == 30_000
