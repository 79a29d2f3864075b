"""Validation of parsed batches: every record is loaded or rejected with its first error.

``validate_batch`` is pure (a batch in, a ``ValidatedBatch`` out), so the Beam step that calls it
can run on any worker, in any order.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms import contract
from transforms.contract import RecordCode
from transforms.csv_records import REJECT_SCHEMA, ParsedBatch
from transforms.facts import BatchCounts
from transforms.rules import RULES, Rule, bad_range, parsed, with_parsed

_EXTRA_RULES = {
    contract.GESPARAM: [Rule(RecordCode.BAD_RANGE, "valid_to is before valid_from", bad_range)],
}
_DUPLICATE = Rule(RecordCode.DUPLICATE_KEY, "the key was already seen earlier in this vacation",
                  lambda table, native: table["duplicate"].to_numpy())


@dataclasses.dataclass
class ValidatedBatch:
    member_name: str
    kind: str
    records: pa.Table  # the loaded records, typed as the Avro schema of their kind
    rejects: pa.Table  # REJECT_SCHEMA
    counts: BatchCounts


def _first_errors(table: pa.Table, kind: str, native: bool) -> tuple[np.ndarray, list[Rule]]:
    """For each record the index of the first rule it breaks, -1 for none."""
    rules = [*RULES[kind], *_EXTRA_RULES.get(kind, []), _DUPLICATE]
    first = np.full(table.num_rows, -1, dtype=np.int16)
    for index, rule in enumerate(rules):
        pending = first < 0
        if not pending.any():
            break
        first[pending & rule.check(table, native)] = index
    return first, rules


def validate_batch(batch: ParsedBatch, native: bool = False) -> ValidatedBatch:
    """``native``: the rules' compiled twins (``transforms.kernels``) check the records."""
    table = with_parsed(batch.table, batch.kind, native)
    first, rules = _first_errors(table, batch.kind, native)
    failed = first >= 0
    rejects = _rule_rejects(batch.member_name, table, first, rules)
    if batch.rejects.num_rows:
        rejects = pa.concat_tables([batch.rejects, rejects])
    kept = table.drop_columns(["raw", "duplicate"])  # the rejects' alone: not copied below
    records = TYPED[batch.kind](kept.filter(pa.array(~failed)) if failed.any() else kept)
    codes, counts = np.unique(rejects["error_code"].to_numpy(zero_copy_only=False),
                              return_counts=True)
    amount_sum = Decimal(0)
    if batch.kind == contract.CRE and records.num_rows:
        amount_sum = pc.sum(records["amount"]).as_py()
    return ValidatedBatch(
        batch.member_name, batch.kind, records, rejects,
        BatchCounts(batch.member_name, batch.kind, records.num_rows, rejects.num_rows,
                    {str(code): int(count) for code, count in zip(codes, counts)}, amount_sum),
    )


def _rule_rejects(member: str, table: pa.Table, first: np.ndarray, rules: list[Rule]) -> pa.Table:
    failed = np.flatnonzero(first >= 0)
    take = pa.array(failed, type=pa.int64())
    codes = np.array([rule.code for rule in rules], dtype=object)[first[failed]]
    messages = np.array([rule.message for rule in rules], dtype=object)[first[failed]]
    raw = table["raw"].take(take)
    text = pc.cast(raw, pa.string()) if raw.num_chunks else pa.array([], pa.string())
    return pa.table(
        [
            pa.array([member] * len(failed), pa.string()),
            table["record_number"].take(take),
            table["line_number"].take(take),
            pa.array(codes, pa.string()),
            pa.array(messages, pa.string()),
            pc.replace_substring_regex(text, r"\r?\n$", ""),
        ],
        schema=REJECT_SCHEMA,
    )


def _null_if_empty(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.if_else(pc.equal(pc.binary_length(column), 0),
                      pa.scalar(None, column.type), column)


def _lineage(table: pa.Table) -> dict[str, pa.ChunkedArray]:
    return {"record_number": table["record_number"], "line_number": table["line_number"]}


def typed_cre(table: pa.Table) -> pa.Table:
    return pa.table({
        "cre_id": table["cre_id"],
        "account_id": table["account_id"],
        "event_type": table["event_type"],
        "event_ts": table[parsed("event_ts")],
        "value_date": table[parsed("value_date")],
        "amount": pc.cast(table["amount"], pa.decimal128(18, contract.AMOUNT_SCALE)),
        "currency": table["currency"],
        "counterparty_iban": _null_if_empty(table["counterparty_iban"]),
        "label": _null_if_empty(table["label"]),
        **_lineage(table),
    })


def typed_gesparam(table: pa.Table) -> pa.Table:
    return pa.table({
        "table_code": table["table_code"],
        "param_key": table["param_key"],
        "param_value": table["param_value"],
        "label": _null_if_empty(table["label"]),
        "valid_from": table[parsed("valid_from")],
        "valid_to": table[parsed("valid_to")],
        **_lineage(table),
    })


TYPED = {contract.CRE: typed_cre, contract.GESPARAM: typed_gesparam}
