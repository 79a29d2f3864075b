"""Alerting end to end: a rejected vacation's run pushes its metrics, Prometheus (the project's
rules.yml) fires CreVacationRejected, Alertmanager (the project's routing) notifies a webhook."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from helpers import ROOT, free_port

from tests.vacations import VACATION, valid_members, write_archive

pytestmark = pytest.mark.integration

MONITORING = ROOT / "monitoring"
WAIT_SECONDS = 60


class _Webhook(http.server.BaseHTTPRequestHandler):
    """Alertmanager's webhook receiver: keeps every notification it is sent."""

    notifications: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        self.notifications.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Webhook)
    _Webhook.notifications = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", _Webhook.notifications
    server.shutdown()
    server.server_close()


class _Servers:
    """The Pushgateway, Alertmanager and Prometheus on free loopback ports, stopped at the end."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.processes: list[subprocess.Popen] = []

    def start(self, name: str, *command: str) -> str:
        port = free_port()
        log = open(self.folder / f"{name}.log", "wb")
        self.processes.append(subprocess.Popen(
            [*command, f"--web.listen-address=127.0.0.1:{port}"], cwd=self.folder, stdout=log,
            stderr=subprocess.STDOUT))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    return url
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError(f"{name} did not start: {self.log(name)}")

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _alertmanager_config(webhook_url: str) -> dict:
    """The project's routing, with the test's webhook, a closed port as the smarthost and no
    waiting for more alerts of a group."""
    config = yaml.safe_load((MONITORING / "alertmanager" / "alertmanager.yml").read_text())
    config["global"] = {"smtp_smarthost": f"127.0.0.1:{free_port()}",
                        "smtp_from": "cre-alerts@localhost", "smtp_require_tls": False}
    config["route"].update(group_wait="1s", group_interval="1s")
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook_url
    return config


def _prometheus_config(pushgateway: str, alertmanager: str) -> dict:
    """As monitoring/prometheus/prometheus.yml, on the test's servers, every second."""
    return {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(MONITORING / "prometheus" / "rules.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [
                {"targets": [alertmanager.removeprefix("http://")]}]}]},
            "scrape_configs": [{"job_name": "cre_pushgateway", "honor_labels": True,
                                "static_configs": [
                                    {"targets": [pushgateway.removeprefix("http://")]}]}]}


@pytest.fixture
def servers(tmp_path, webhook) -> Iterator[dict[str, str]]:
    running = _Servers(tmp_path)
    try:
        pushgateway = running.start("pushgateway", "prometheus-pushgateway")
        (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(_alertmanager_config(
            webhook[0])))
        alertmanager = running.start(
            "alertmanager", "prometheus-alertmanager", "--config.file=alertmanager.yml",
            f"--storage.path={tmp_path / 'alertmanager-data'}", "--cluster.listen-address=")
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(_prometheus_config(
            pushgateway, alertmanager)))
        running.start("prometheus", "prometheus", "--config.file=prometheus.yml",
                      f"--storage.tsdb.path={tmp_path / 'prometheus-data'}")
        yield {"pushgateway": pushgateway, "logs": running}
    finally:
        running.stop()


def _alerts(notifications: list[dict], name: str) -> list[dict]:
    return [alert for notification in notifications for alert in notification["alerts"]
            if alert["labels"]["alertname"] == name and alert["status"] == "firing"]


def test_a_rejected_vacation_reaches_the_webhook_as_an_alert(cre, structured, servers, webhook,
                                                              tmp_path):
    members = valid_members(tmp_path)
    del members["META.json"]  # META_MISSING: the whole vacation is REJECTED
    run = cre("ingest", "--input", str(write_archive(tmp_path, members)), "--zones-root",
              str(tmp_path / "zones"), "--pushgateway", servers["pushgateway"], env=structured)
    assert run.code == 3 and run.error_codes == ["META_MISSING"], run.stderr
    assert "could not push" not in run.stderr
    notifications = webhook[1]
    deadline = time.monotonic() + WAIT_SECONDS
    while not _alerts(notifications, "CreVacationRejected") and time.monotonic() < deadline:
        time.sleep(0.5)
    rejected = _alerts(notifications, "CreVacationRejected")
    assert rejected, (f"no CreVacationRejected within {WAIT_SECONDS} s; got {notifications}\n"
                      + servers["logs"].log("prometheus") + servers["logs"].log("alertmanager"))
    labels = rejected[0]["labels"]
    assert {key: labels.get(key) for key in ("vacation_id", "business_date", "slot", "state",
                                             "job", "severity")} == {
        "vacation_id": VACATION, "business_date": "2026-11-22", "slot": "3",
        "state": "REJECTED", "job": "cre_ingest", "severity": "critical"}
    assert rejected[0]["annotations"]["summary"] == f"{VACATION} was REJECTED"
