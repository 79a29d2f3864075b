"""Two ``cre serve`` replicas on two ports over one keyspace, landing root and tenants file are
one service: a token of either is good at both, a new password revokes it at both, and failed
logins count over both."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from helpers import PASSWORDS, Service, add_tenant, run_cre

from pipelines.local.generator import generate_vacation

pytestmark = pytest.mark.integration


@pytest.fixture
def replicas(structured, tmp_path) -> Iterator[list[Service]]:
    add_tenant(tmp_path / "tenants.json", "arkea", "--max-files", "2")
    add_tenant(tmp_path / "tenants.json", "other")
    started: list[Service] = []
    try:
        for _ in range(2):
            started.append(Service(tmp_path, structured, "--no-manager"))
        yield started
    finally:
        for replica in started:
            replica.kill()


def test_a_token_of_one_replica_is_good_at_the_other(replicas, tmp_path):
    a, b = replicas
    archives = [generate_vacation(tmp_path / "inbox", "2026-08-01", slot, 10, 1, seed=90 + slot)
                for slot in (1, 2, 3)]
    token = a.token("arkea")
    with a.client("arkea", token) as at_a, b.client("arkea", token) as at_b:
        assert at_b.get("/v1/constraints").json()["tenant"] == "arkea"
        sent = at_a.put(f"/v1/uploads/{archives[0].name}", content=archives[0].read_bytes())
        assert sent.status_code == 201, sent.text
        assert at_b.get(f"/v1/uploads/{sent.json()['upload_id']}").json()["sha256"] == \
            sent.json()["sha256"]
        assert at_b.put(f"/v1/uploads/{archives[1].name}",
                        content=archives[1].read_bytes()).status_code == 201
        third = at_a.put(f"/v1/uploads/{archives[2].name}", content=archives[2].read_bytes())
        assert third.status_code == 429  # the token's two files, counted over both replicas


def test_a_new_password_revokes_the_tenants_tokens_at_every_replica(replicas, tmp_path):
    tenants = str(tmp_path / "tenants.json")
    arkea, other = replicas[0].token("arkea"), replicas[1].token("other")
    changed = run_cre("tenants", "passwd", "arkea", "--tenants", tenants, "--password-stdin",
                      input="a brand new long password\n")
    assert changed.code == 0, changed.stderr
    for replica in replicas:
        with replica.client("arkea", arkea) as client:
            revoked = client.get("/v1/constraints")
            assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
        with replica.client("other", other) as client:  # another tenant's tokens stay good
            assert client.get("/v1/constraints").status_code == 200
        assert httpx.post(f"{replica.url}/v1/token",
                          auth=("arkea", "a brand new long password")).status_code == 200
    assert run_cre("tenants", "remove", "other", "--tenants", tenants).code == 0
    for replica in replicas:
        with replica.client("other", other) as client:
            gone = client.get("/v1/constraints")
            assert gone.status_code == 401 and "no longer exists" in gone.json()["detail"]


def test_failed_logins_count_over_both_replicas(replicas, forget_failed_logins):
    a, b = replicas
    statuses = [httpx.post(f"{replica.url}/v1/token", auth=("other", "not its password"),
                           timeout=30).status_code for replica in (a, b, a, b, a, b)]
    assert statuses == [401] * 5 + [429]
    for replica in replicas:
        refused = httpx.post(f"{replica.url}/v1/token", auth=("other", PASSWORDS["other"]))
        assert refused.status_code == 429 and refused.headers["retry-after"] == "300"
