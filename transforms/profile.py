"""A vacation's shape, measured while it is validated: what its quality is judged on.

Each validated CRE batch gives a ``BatchProfile`` fact (events and amounts per event type and
currency, the span of value dates) and its distinct accounts; ``ProfileVacation`` turns the
batches of one vacation into those facts, the accounts united over the whole vacation before
``accounts_seen`` asks which are new. Arrow does the counting, so the cost is a few
vectorised passes over columns the batch already holds, not a second read of the archive.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Optional

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from transforms.facts import AccountsSeen, BatchProfile, Fact
from transforms.validate import ValidatedBatch

__all__ = ["ProfileVacation", "batch_accounts", "profile_batch"]

def profile_batch(batch: ValidatedBatch) -> BatchProfile:
    """The loaded events of one CRE batch by (event type, currency), with their amounts."""
    records = batch.records
    if not records.num_rows:
        return BatchProfile({}, None, None)
    grouped = records.group_by(["event_type", "currency"]).aggregate(
        [("amount", "count"), ("amount", "sum")]).to_pydict()
    events = {(kind, currency): (count, total) for kind, currency, count, total in zip(
        grouped["event_type"], grouped["currency"], grouped["amount_count"],
        grouped["amount_sum"])}
    span = pc.min_max(records["value_date"]).as_py()
    return BatchProfile(events, span["min"].toordinal(), span["max"].toordinal())


def batch_accounts(batch: ValidatedBatch) -> pa.Array:
    """The distinct accounts of one CRE batch's loaded events."""
    return pc.unique(batch.records["account_id"]) \
        if batch.records.num_rows else pa.array([], pa.string())


def _union(arrays: Iterable[pa.Array]) -> pa.Array:
    arrays = list(arrays)
    return pc.unique(pa.chunked_array(arrays, pa.string())) if arrays \
        else pa.array([], pa.string())


@beam.typehints.with_input_types(ValidatedBatch)
@beam.typehints.with_output_types(Fact)
class ProfileVacation(beam.PTransform):
    """The validated CRE batches of one vacation in, its quality facts out: a ``BatchProfile``
    per batch and one ``AccountsSeen``.

    Args:
      new_accounts: a transform from the vacation's distinct accounts (one Arrow array) to the
        number of them never seen before (``io_connectors.first_seen.CountNewAccounts``); None
        when there is no structured zone to ask: ``AccountsSeen.new`` is then None.
    """

    def __init__(self, new_accounts: Optional[beam.PTransform] = None):
        super().__init__()
        if new_accounts is not None and not isinstance(new_accounts, beam.PTransform):
            raise TypeError(f"new_accounts must be a PTransform, not "
                            f"{type(new_accounts).__name__}")
        self._new_accounts = new_accounts

    def expand(self, batches: beam.PCollection) -> list[beam.PCollection]:
        profiles = batches | "ProfileBatches" >> beam.Map(profile_batch)
        accounts = (batches
                    | "BatchAccounts" >> beam.Map(batch_accounts)
                    | "VacationAccounts" >> beam.CombineGlobally(_union))
        if self._new_accounts is None:
            seen = accounts | "NoStructuredZone" >> beam.Map(
                lambda distinct: AccountsSeen(len(distinct), None))
        else:
            seen = accounts | "NewAccounts" >> self._new_accounts
        return [profiles, seen]
