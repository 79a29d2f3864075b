"""``cre serve`` over HTTPS and ``cre fetchdata`` verifying it, with a certificate authority and
server certificates of the tests' own; plain HTTP to another machine is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import PASSWORDS, CreRun, Service, add_tenant, run_cre

from pipelines.local.certificates import Authority
from pipelines.local.generator import generate_vacation
from sender.fetchdata import check_server


def test_plain_http_only_to_this_machine_unless_insecure():
    with pytest.raises(ValueError, match="plain HTTP to another machine"):
        check_server("http://collect.example:8080")
    check_server("http://collect.example:8080", insecure=True)
    for server in ("http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080",
                   "https://collect.example"):
        check_server(server)
    with pytest.raises(ValueError, match="not an http"):
        check_server("ftp://collect.example")


@pytest.fixture(scope="module")
def authority(tmp_path_factory) -> Authority:
    return Authority(tmp_path_factory.mktemp("pki"))


def _https(folder: Path, env: dict, certificate: tuple[Path, Path]) -> Service:
    add_tenant(folder / "tenants.json", "arkea")
    return Service(folder, env, "--no-manager", tls=certificate)


@pytest.fixture(scope="module")
def https_service(structured, authority, tmp_path_factory) -> Iterator[Service]:
    service = _https(tmp_path_factory.mktemp("serve"), structured, authority.issue("server"))
    yield service
    service.kill()


@pytest.mark.integration
def test_the_console_cookie_is_secure_over_https(https_service, authority):
    added = run_cre("operators", "add", "olivia", "--operators",
                    str(https_service.folder / "operators.json"), "--password-stdin",
                    input="operator password 1\n")
    assert added.code == 0, added.stderr
    logged = httpx.post(f"{https_service.url}/console/login", verify=str(authority.path),
                        data={"name": "olivia", "password": "operator password 1"})
    assert logged.status_code == 303, logged.text
    cookie = logged.headers["set-cookie"].lower()
    assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie


@pytest.fixture
def inbox(tmp_path) -> Path:
    generate_vacation(tmp_path / "inbox", "2026-08-02", 1, 50, 2, seed=95)
    return tmp_path / "inbox"


def _fetch(service: Service, inbox: Path, ca_file: Path) -> CreRun:
    return run_cre("fetchdata", "-u", "arkea", "-d", str(inbox), "--server", service.url,
                   "--ca-file", str(ca_file), env={"CRE_PASSWORD": PASSWORDS["arkea"]})


@pytest.mark.integration
def test_fetchdata_round_trip_over_https(https_service, authority, inbox):
    sent = _fetch(https_service, inbox, authority.path)
    assert sent.code == 0, sent.stderr
    assert sent.stdout.splitlines()[1].split()[:2] == ["BAF_20260802_01.tar.bz2", "sent"]
    again = _fetch(https_service, inbox, authority.path)
    assert again.code == 0 and "skipped" in again.stdout


@pytest.mark.integration
def test_a_server_of_another_authority_is_refused(https_service, inbox, tmp_path):
    stranger = Authority(tmp_path, "stranger")
    refused = _fetch(https_service, inbox, stranger.path)
    assert refused.code == 1
    assert refused.stderr.splitlines() == [
        f"cre fetchdata: error: {https_service.url}: its certificate is refused: "
        "unable to get local issuer certificate"]


@pytest.mark.integration
def test_an_expired_certificate_is_refused(structured, authority, inbox, tmp_path):
    expired = _https(tmp_path, structured, authority.issue("expired", valid_days=-1))
    try:
        refused = _fetch(expired, inbox, authority.path)
    finally:
        expired.kill()
    assert refused.code == 1
    assert refused.stderr.splitlines() == [
        f"cre fetchdata: error: {expired.url}: its certificate is refused: "
        "certificate has expired"]


@pytest.mark.integration
def test_fetchdata_refuses_plain_http_to_another_machine(inbox):
    refused = run_cre("fetchdata", "-u", "arkea", "-d", str(inbox),
                      "--server", "http://192.0.2.1:8080", env={"CRE_PASSWORD": "unused"})
    assert refused.code == 2
    assert refused.stderr.splitlines() == [
        "cre fetchdata: error: http://192.0.2.1:8080 is plain HTTP to another machine: the "
        "password would travel in clear; use https:// (or --insecure)"]
