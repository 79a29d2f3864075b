"""A sender's feed judged as the pipeline judges it, without a pipeline: for the data-quality
tests, which need weeks of history (``test_quality``) or a slot's history in a structured zone
(``test_quality_ingest``) faster than a run per vacation.

Each vacation is generated as Arkea would send it, read and validated by the pipeline's own
functions, profiled (``transforms.profile``) and judged by the decision (``outcome.decide``)
against the slot's earlier vacations; the accounts already seen are a set here, where
``CountNewAccounts`` asks ``accounts_first_seen`` in the structured zone.
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

from pipelines import schedule
from pipelines.local.generator import Traffic, generate_vacation
from transforms import contract
from transforms.contract import Limits, VacationName
from transforms.csv_records import ParsedBatch
from transforms.outcome import RunContext, VacationFacts, decide
from transforms.profile import profile_batch
from transforms.quality import Baseline, Past, Settings
from transforms.vacation_reader import VacationReader
from transforms.validate import validate_batch


@dataclasses.dataclass
class Feed:
    """The vacations sent so far and what the platform kept of them: each slot's history of
    accepted vacations and the accounts seen."""

    folder: Path
    settings: Settings = Settings()
    history: dict[int, list[Past]] = dataclasses.field(default_factory=dict)
    accounts: set[str] = dataclasses.field(default_factory=set)

    def send(self, day: datetime.date, slot: int, rows: int, gesparam_rows: int, seed: int,
             traffic: Traffic, received: datetime.datetime) -> dict:
        """One vacation, judged (its summary, with ``quality``), then kept in the history."""
        path = generate_vacation(self.folder, day.isoformat(), slot, rows, gesparam_rows,
                                 seed=seed, traffic=traffic)
        outcome = self._judge(path, received)
        path.unlink()
        if outcome["status"] != contract.Outcome.REJECTED:
            self.history.setdefault(slot, []).append(Past(day, outcome["quality"]["metrics"]))
        return outcome

    def copy(self) -> Feed:
        """The feed as it stands, to send more on without changing this one."""
        return dataclasses.replace(self, history={slot: list(past) for slot, past
                                                  in self.history.items()},
                                   accounts=set(self.accounts))

    def _judge(self, path: Path, received: datetime.datetime) -> dict:
        name = VacationName.parse(path.name)
        day = datetime.date.fromisoformat(name.business_date)
        baseline = Baseline(self.settings, tuple(self.history.get(name.slot, ())),
                            schedule.deadline(day, name.slot))
        context = RunContext(name.vacation_id, name.business_date, name.slot, "0" * 64,
                             received.isoformat(), quality=baseline)
        facts = VacationFacts()
        for event in VacationReader(lambda: open(path, "rb"), name, Limits()):
            if not isinstance(event, ParsedBatch):
                facts.add(event)
                continue
            validated = validate_batch(event)
            facts.add(validated.counts)
            if validated.kind == contract.CRE:
                facts.add(profile_batch(validated))
        accounts = set(facts.distinct_accounts().to_pylist())
        facts.new_accounts = len(accounts - self.accounts)
        self.accounts |= accounts
        return decide(facts, context, received.isoformat())
