"""Is this vacation normal? Its metrics judged against its slot's history and fixed rules.

A vacation that passes every rule of the contract can still be wrong: slot 3 with 40% of its
usual events, the day's EUR credits ten times their usual sum, a third of the accounts never
seen before. ``metrics`` measures a vacation (from the facts its run collected), ``judge``
compares each metric with the same slot's earlier vacations (the same weekday when there are
enough of them, else every day of the window) by robust statistics, the median and the median
absolute deviation, which a few odd days in the history do not move, and applies the fixed
rules of the settings (``Settings``; ``monitoring/quality/settings.toml`` spells them).

A metric lies outside its expected range when it is further from the history's median than
``warning`` (or ``critical``) times its robust spread: 1.4826 x MAD (the standard deviation
of normal data) taken about two standard errors above itself, x (1 + 2 / sqrt(n)) for n
earlier vacations, as the MAD of 14 values can be half the true spread and would make noise a
finding; and floored, so that a history of identical days does not make every change one.
Breakdown metrics (events and amounts per event type and currency) are judged per loaded
event, so that a day's volume is judged once, on ``records.CRE``, not again on each of its
parts; their expected range is given back in the metric's own unit, at the day's volume.

Pure functions: the driver reads the history (``pipelines.quality``) before the run, the
decision judges, and a finding never changes a vacation's status (spec 2.4, amended
2026-12-06).
"""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import math
import statistics
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

__all__ = ["Baseline", "Check", "Past", "Rule", "SEVERITIES", "Settings", "judge", "metrics",
           "worst"]

WARNING, CRITICAL = "warning", "critical"
SEVERITIES = (WARNING, CRITICAL)  # in increasing order
_MAD_TO_SIGMA = 1.4826
# metric families that are 0 when a vacation has none (no event of a pair, no GESPARAM)
_ZERO_WHEN_ABSENT = ("records.", "events.", "rejects.")


@dataclasses.dataclass(frozen=True)
class Check:
    """How the metrics matching ``metric`` (a glob) are judged against history.

    ``direction``: ``both``, ``up`` (only a rise is a finding) or ``down``. ``per``: a metric
    the value is divided by before it is judged (the day's volume). ``relative_floor`` and
    ``absolute_floor``: the least spread assumed, as a share of the median and in the metric's
    unit (of the value per ``per``). Breakdown metrics (``events.*``) are judged only where the
    history's median of the pair's events reaches the settings' ``min_events``."""

    metric: str
    direction: str = "both"
    per: Optional[str] = None
    relative_floor: float = 0.0
    absolute_floor: float = 0.0

    def __post_init__(self) -> None:
        if self.direction not in ("both", "up", "down"):
            raise ValueError(f"check {self.metric}: direction {self.direction!r} is not both, "
                             "up or down")


@dataclasses.dataclass(frozen=True)
class Rule:
    """A fixed rule a person writes: ``metric`` within ``min``..``max`` on the given slots
    (every slot when empty)."""

    name: str
    metric: str
    severity: str = CRITICAL
    slots: tuple[int, ...] = ()
    min: Optional[float] = None
    max: Optional[float] = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"rule {self.name!r}: severity {self.severity!r} is not one of "
                             f"{', '.join(SEVERITIES)}")
        if self.min is None and self.max is None:
            raise ValueError(f"rule {self.name!r} has neither min nor max")


# what is judged when the settings say nothing else (monitoring/quality/settings.toml spells it)
DEFAULT_CHECKS = (
    Check("records.*", relative_floor=0.02, absolute_floor=1),
    Check("events.*.count", per="loaded.CRE", relative_floor=0.05),
    Check("events.*.amount", per="loaded.CRE", relative_floor=0.05),
    Check("accounts.new_ratio", direction="up", absolute_floor=0.01),
    Check("reject.ratio", direction="up", absolute_floor=0.0025),
    Check("value_dates.spread_days", absolute_floor=1),
    Check("arrival.delay_minutes", direction="up", absolute_floor=15),
)
DEFAULT_RULES = (
    Rule("GESPARAM is never empty on slot 1", "records.GESPARAM", slots=(1,), min=1),
)


@dataclasses.dataclass(frozen=True)
class Settings:
    """The checks' settings: the history window, when a slot is judged, the thresholds (in
    robust standard deviations), what is judged and the fixed rules."""

    window_days: int = 70
    min_history: int = 14
    same_weekday_min: int = 8
    min_events: int = 20
    warning: float = 6.0
    critical: float = 10.0
    checks: tuple[Check, ...] = DEFAULT_CHECKS
    rules: tuple[Rule, ...] = DEFAULT_RULES

    @classmethod
    def load(cls, path: Optional[str | Path] = None) -> Settings:
        """The settings of a TOML file (``monitoring/quality/settings.toml`` spells the
        defaults; a section it leaves out keeps them), or the defaults when ``path`` is None;
        a ``ValueError`` naming the file for an unknown key or a bad value."""
        if path is None:
            return cls()
        try:
            document = tomllib.loads(Path(path).read_text())
            given = {**document.pop("history", {}), **document.pop("thresholds", {})}
            if "check" in document:
                given["checks"] = tuple(Check(**entry) for entry in document.pop("check"))
            if "rule" in document:
                given["rules"] = tuple(Rule(**{**entry, "slots": tuple(entry.get("slots", ()))})
                                       for entry in document.pop("rule"))
            if document:
                raise ValueError(f"unknown section {', '.join(document)}")
            settings = cls(**given)
        except (TypeError, ValueError, tomllib.TOMLDecodeError) as error:
            raise ValueError(f"{path}: {error}") from error
        if not 0 < settings.warning <= settings.critical:
            raise ValueError(f"{path}: thresholds need 0 < warning <= critical")
        return settings

    def check_of(self, metric: str) -> Optional[Check]:
        return next((check for check in self.checks
                     if fnmatch.fnmatchcase(metric, check.metric)), None)


@dataclasses.dataclass(frozen=True)
class Past:
    """One earlier accepted vacation of the slot: its business date and metrics."""

    business_date: datetime.date
    metrics: Mapping[str, float]


@dataclasses.dataclass(frozen=True)
class Baseline:
    """What a run judges its vacation against, read before it starts: the settings, the slot's
    earlier accepted vacations over the window (None: no structured zone holds any) and the
    slot's deadline."""

    settings: Settings
    history: Optional[tuple[Past, ...]]
    deadline: Optional[datetime.datetime] = None


def metrics(records: Mapping[str, int], loaded_cre: int, rejected: int,
            reject_codes: Mapping[str, int], events: Mapping[tuple[str, str], tuple[int, Any]],
            value_dates: tuple[Optional[int], Optional[int]], business_date: datetime.date,
            distinct_accounts: Optional[int], new_accounts: Optional[int],
            received_at: datetime.datetime,
            deadline: Optional[datetime.datetime]) -> dict[str, float]:
    """A vacation's metrics, by name: per type its records; loaded CRE events and, per event
    type and currency, their count and amount; the reject ratio and each code's count; the
    distinct and new accounts; the value dates' span around the business date; the arrival
    against the slot's deadline, in minutes."""
    found: dict[str, float] = {f"records.{kind}": float(count) for kind, count in records.items()}
    total = sum(records.values())
    found["loaded.CRE"] = float(loaded_cre)
    found["reject.ratio"] = rejected / total if total else 0.0
    found.update({f"rejects.{code}": float(count) for code, count in reject_codes.items()})
    for (kind, currency), (count, amount) in events.items():
        found[f"events.{kind}.{currency}.count"] = float(count)
        found[f"events.{kind}.{currency}.amount"] = float(amount)
    first, last = value_dates
    if first is not None and last is not None:
        day = business_date.toordinal()
        found.update({"value_dates.spread_days": float(last - first),
                      "value_dates.earliest_days": float(first - day),
                      "value_dates.latest_days": float(last - day)})
    if distinct_accounts is not None:
        found["accounts.distinct"] = float(distinct_accounts)
    if new_accounts is not None:
        found["accounts.new"] = float(new_accounts)
        found["accounts.new_ratio"] = new_accounts / distinct_accounts if distinct_accounts \
            else 0.0
    if deadline is not None:
        found["arrival.delay_minutes"] = (received_at - deadline).total_seconds() / 60
    return found


def worst(findings: Iterable[Mapping[str, Any]]) -> Optional[str]:
    """The most severe severity among ``findings`` (None: no finding)."""
    found = {finding["severity"] for finding in findings}
    return next((severity for severity in reversed(SEVERITIES) if severity in found), None)


def judge(found: Mapping[str, float], baseline: Baseline, business_date: datetime.date,
          slot: int) -> dict[str, Any]:
    """The quality part of a summary: ``findings`` (each with ``metric``, ``value``,
    ``expected`` {``low``, ``high``}, ``severity``, ``check`` and ``message``), ``history``
    (the earlier vacations judged against), ``note`` (why nothing was judged against history,
    or empty) and the ``metrics`` themselves."""
    settings = baseline.settings
    findings = [_rule_finding(rule, found) for rule in settings.rules
                if not rule.slots or slot in rule.slots]
    findings = [finding for finding in findings if finding is not None]
    past, note = _comparable(baseline, business_date, slot)
    if past:
        findings += _history_findings(found, past, settings)
    findings.sort(key=lambda finding: (-SEVERITIES.index(finding["severity"]),
                                       finding["metric"]))
    return {"findings": findings, "history": len(past), "note": note,
            "metrics": dict(sorted(found.items()))}


def _comparable(baseline: Baseline, business_date: datetime.date,
                slot: int) -> tuple[list[Past], str]:
    """The history this vacation is judged against (the same weekday where there is enough),
    or none and why."""
    settings = baseline.settings
    if baseline.history is None:
        return [], "not judged against history: no structured zone holds it"
    start = business_date - datetime.timedelta(days=settings.window_days)
    window = [past for past in baseline.history if start <= past.business_date < business_date]
    if len(window) < settings.min_history:
        return [], (f"history too short to judge: {len(window)} earlier vacations of slot {slot} "
                    f"in {settings.window_days} days, {settings.min_history} needed")
    weekday = [past for past in window if past.business_date.weekday() == business_date.weekday()]
    return (weekday if len(weekday) >= settings.same_weekday_min else window), ""


def _rule_finding(rule: Rule, found: Mapping[str, float]) -> Optional[dict[str, Any]]:
    value = _value(found, rule.metric)
    if value is None or ((rule.min is None or value >= rule.min)
                         and (rule.max is None or value <= rule.max)):
        return None
    return _finding(rule.metric, value, rule.min, rule.max, rule.severity, f"rule: {rule.name}",
                    f"{rule.name}: {rule.metric} is {value:g}")


def _history_findings(found: Mapping[str, float], past: Sequence[Past],
                      settings: Settings) -> list[dict[str, Any]]:
    names = set(found) | {name for entry in past for name in entry.metrics
                          if name.startswith(_ZERO_WHEN_ABSENT)}
    findings = []
    for name in sorted(names):
        check = settings.check_of(name)
        if check is None or (name.startswith("events.")
                             and not _enough_events(name, past, settings.min_events)):
            continue
        finding = _against_history(name, found, past, check, settings)
        if finding is not None:
            findings.append(finding)
    return findings


def _enough_events(name: str, past: Sequence[Past], min_events: int) -> bool:
    """Whether the pair of an ``events.<type>.<currency>.*`` metric is frequent enough for its
    share and amounts to be judged (a handful of events is noise)."""
    count = name.rsplit(".", 1)[0] + ".count"
    return statistics.median(entry.metrics.get(count, 0.0) for entry in past) >= min_events


def _against_history(name: str, found: Mapping[str, float], past: Sequence[Past],
                     check: Check, settings: Settings) -> Optional[dict[str, Any]]:
    value = _value(found, name)
    scale_now = _value(found, check.per) if check.per else 1.0
    if value is None or not scale_now:
        return None
    values = []
    for entry in past:
        earlier, per = _value(entry.metrics, name), (_value(entry.metrics, check.per)
                                                    if check.per else 1.0)
        if earlier is not None and per:
            values.append(earlier / per)
    if len(values) < min(settings.min_history, len(past)):  # a metric most days lack
        return None
    median = statistics.median(values)
    mad = statistics.median(abs(one - median) for one in values)
    spread = max(_MAD_TO_SIGMA * mad * (1 + 2 / math.sqrt(len(values))),
                 check.relative_floor * abs(median), check.absolute_floor)
    if not spread:
        return None
    deviation = (value / scale_now - median) / spread
    if (check.direction == "up" and deviation <= 0) or (check.direction == "down"
                                                        and deviation >= 0):
        return None
    if abs(deviation) < settings.warning:
        return None
    severity = CRITICAL if abs(deviation) >= settings.critical else WARNING
    low = None if check.direction == "up" else (median - settings.warning * spread) * scale_now
    high = None if check.direction == "down" else (median + settings.warning * spread) * scale_now
    usual = f"usually {median * scale_now:.6g}" + (" at this volume" if check.per else "")
    return _finding(name, value, low, high, severity, "history",
                    f"{name} is {value:.6g}, {usual} ({deviation:+.1f} robust sd, "
                    f"{len(values)} earlier vacations)")


def _value(found: Mapping[str, float], name: str) -> Optional[float]:
    if name in found:
        return float(found[name])
    return 0.0 if name.startswith(_ZERO_WHEN_ABSENT) else None


def _finding(metric: str, value: float, low: Optional[float], high: Optional[float],
             severity: str, check: str, message: str) -> dict[str, Any]:
    return {"metric": metric, "value": round(value, 6),
            "expected": {"low": None if low is None else round(low, 6),
                         "high": None if high is None else round(high, 6)},
            "severity": severity, "check": check, "message": message}
