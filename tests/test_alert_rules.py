"""The monitoring configuration checked by the tools that load it: the rules, their unit tests
(rules_test.yml covers every alert, firing and quiet), Prometheus and Alertmanager."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from helpers import ROOT

MONITORING = ROOT / "monitoring"
RULES = MONITORING / "prometheus" / "rules.yml"
RULES_TEST = MONITORING / "prometheus" / "rules_test.yml"


def _tool(*command: str) -> subprocess.CompletedProcess:
    if shutil.which(command[0]) is None:
        pytest.fail(f"{command[0]} is not installed: run make setup")
    return subprocess.run(command, cwd=MONITORING, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", [
    ("promtool", "check", "rules", str(RULES)),
    ("promtool", "test", "rules", str(RULES_TEST)),
    ("promtool", "check", "config", str(MONITORING / "prometheus" / "prometheus.yml")),
    ("amtool", "check-config", str(MONITORING / "alertmanager" / "alertmanager.yml")),
], ids=["rules", "rule tests", "prometheus", "alertmanager"])
def test_monitoring_configuration_is_valid(command):
    checked = _tool(*command)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_has_firing_tests():
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"]
              for rule in group["rules"] if "alert" in rule}
    cases = [case for test in yaml.safe_load(RULES_TEST.read_text())["tests"]
             for case in test["alert_rule_test"]]
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert alerts == firing == quiet


@pytest.mark.parametrize("severity, receivers", [("critical", "cre-email,cre-webhook"),
                                                 ("warning", "cre-webhook")])
def test_critical_alerts_are_also_emailed(severity, receivers):
    routed = _tool("amtool", "config", "routes", "test", "--config.file",
                   str(MONITORING / "alertmanager" / "alertmanager.yml"), f"severity={severity}")
    assert routed.stdout.strip() == receivers, routed.stderr
