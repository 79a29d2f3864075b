"""A ``cre serve`` process of a test's own, and the tenants that log in to it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import httpx

from helpers.cre import CRE, ROOT, cre_environment, free_port, integration_only, run_cre, wait_until

PASSWORDS = {"arkea": "correct horse battery", "other": "another long secret"}


def add_tenant(tenants: Path, name: str, *options: str) -> None:
    """``cre tenants add NAME`` to the file, with its password of ``PASSWORDS``."""
    added = run_cre("tenants", "add", name, "--tenants", str(tenants), "--password-stdin",
                    *options, input=PASSWORDS[name] + "\n")
    assert added.code == 0, added.stderr


class Service:
    """A ``cre serve`` process on a free loopback port, over the folder's ``zones``,
    ``tenants.json`` and ``operators.json`` (its own process group, so its ingests die with
    it); HTTPS with ``tls``, a certificate and its key; under the host name ``host`` (a UTS
    namespace of its own, ``unshare -u``) to play a replica on another machine."""

    def __init__(self, folder: Path, env: dict, *options: str,
                 tls: tuple[Path, Path] | None = None, host: str | None = None):
        self.folder, self.env, self.host = folder, env, host
        self.options = (*options, *(("--tls-cert", str(tls[0]), "--tls-key", str(tls[1]))
                                    if tls else ()))
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.log = folder / f"serve-{self.port}.log"
        self.start()

    def start(self) -> None:
        integration_only("cre serve")
        log = open(self.log, "ab")
        as_host = ("unshare", "-u", "sh", "-c", 'hostname "$0" && exec "$@"', self.host) \
            if self.host else ()
        self.process = subprocess.Popen(
            [*as_host, *CRE, "serve", "--port", str(self.port),
             "--zones-root", str(self.folder / "zones"), "--tenants",
             str(self.folder / "tenants.json"), "--operators",
             str(self.folder / "operators.json"), *self.options], cwd=ROOT, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
            env=cre_environment({**self.env, "CRE_MANAGER_LOG_DIR": str(self.folder)}))
        wait_until(self._healthy, timeout=60, interval=0.3, what=f"cre serve on {self.url}",
                   detail=lambda: self.log.read_text()[-3000:])

    def _healthy(self) -> bool:
        try:  # up, whatever its certificate: trusting it is for the tests to check
            return httpx.get(f"{self.url}/healthz", timeout=1, verify=False).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # the group may have ended already
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """Stops it as an operator does (SIGTERM): it finishes what it answered for; then
        whatever of its group is left."""
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        finally:
            self.kill()

    def token(self, tenant: str) -> str:
        issued = httpx.post(f"{self.url}/v1/token", auth=(tenant, PASSWORDS[tenant]))
        assert issued.status_code == 200, issued.text
        return issued.json()["access_token"]

    def client(self, tenant: str, token: str | None = None) -> httpx.Client:
        """A client with ``token``, else with a new token of ``tenant``."""
        return httpx.Client(base_url=self.url, timeout=30, headers={
            "Authorization": f"Bearer {token or self.token(tenant)}"})
