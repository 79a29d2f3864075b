"""The composite transforms under TestPipeline, and the DoFns' pure cores called directly."""

from __future__ import annotations

import io
from decimal import Decimal

import apache_beam as beam
import pyarrow as pa
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from rich.console import Console

from pipelines import progress
from tests.vacations import VACATION, valid_members, write_archive
from transforms.contract import CRE_COLUMNS, Limits, VacationName
from transforms.csv_records import BatchParser, RecordSplitter
from transforms.keys import KeyIndex
from transforms.read_vacation import FACTS, ReadVacation, ValidateRecords
from transforms.validate import validate_batch

NAME = VacationName.parse(f"{VACATION}.tar.bz2")


def test_read_and_validate_a_vacation(tmp_path):
    archive = write_archive(tmp_path, valid_members(tmp_path, cre_rows=120, gesparam_rows=15))
    with test_pipeline.TestPipeline() as pipeline:
        read = pipeline | beam.Create([str(archive)]) | ReadVacation(NAME, Limits())
        cre = read["CRE"] | "ValidateCre" >> ValidateRecords()
        gesparam = read["GESPARAM"] | "ValidateGesparam" >> ValidateRecords()
        loaded = ((cre, gesparam) | beam.Flatten()
                  | beam.Map(lambda batch: (batch.kind, batch.records.num_rows))
                  | beam.CombinePerKey(sum))
        assert_that(loaded, equal_to([("CRE", 120), ("GESPARAM", 15)]), label="AllLoaded")
        kinds = read[FACTS] | beam.Map(lambda fact: type(fact).__name__)
        assert_that(kinds, equal_to(["Meta", "Monitor", "MemberDigest", "MemberDigest",
                                     "MemberDigest"]), label="Facts")


def test_the_reader_moves_the_bar_its_caller_gives(tmp_path):
    """``cre ingest``'s bar of the CSV read: drawn by the command, moved by the DoFn's copy."""
    archive = write_archive(tmp_path, valid_members(tmp_path, cre_rows=120))
    screen = io.StringIO()
    bar = progress.Bar(f"{VACATION} CSV", progress.BYTES)
    with progress.shown(Console(file=screen, force_terminal=True, width=100)):
        with test_pipeline.TestPipeline() as pipeline:
            _ = pipeline | beam.Create([str(archive)]) | ReadVacation(NAME, progress=bar)
        assert bar.drawn
    assert f"{VACATION} CSV" in screen.getvalue() and " kB" in screen.getvalue()


def _parsed(lines: str):
    batch = RecordSplitter().feed(lines.encode())
    parsed = BatchParser("CRE_0001.csv", "CRE", CRE_COLUMNS).parse(batch)
    parsed.table = parsed.table.append_column(
        "duplicate", pa.array(KeyIndex().mark([parsed.table["cre_id"]])))
    return parsed


def test_validate_batch_keeps_the_first_of_a_key_and_sums_loaded_amounts():
    row = "K-1;ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;{};EUR;;\n"
    result = validate_batch(_parsed(row.format("10.50") + row.format("99") +
                                    row.replace("K-1", "K-2").format("-0.5")))
    assert result.records["cre_id"].to_pylist() == ["K-1", "K-2"]
    assert result.rejects["error_code"].to_pylist() == ["DUPLICATE_KEY"]
    assert result.counts.amount_sum == Decimal("10.00")
    assert (result.counts.loaded, result.counts.rejected) == (2, 1)


def test_first_broken_rule_is_the_reported_one():
    line = "K-1;bad;GIFT;2026-11-22T09:15:00+01:00;2026-11-22;1;EUR;;\n"
    result = validate_batch(_parsed(line))
    assert result.rejects["error_code"].to_pylist() == ["BAD_FORMAT"]
    assert result.rejects["error_message"].to_pylist()[0].startswith("account_id")
