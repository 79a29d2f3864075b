"""``cre lineage``: an event's versions followed back to the lines of their landed archives."""

from __future__ import annotations

import json
import tarfile

import pytest
from helpers import run_cre
from vacations import data_records

from pipelines.local.generator import generate_vacation, read_members

pytestmark = pytest.mark.integration


def _lineage(structured, cre_id: str) -> tuple[int, dict]:
    run = run_cre("lineage", "--cre-id", cre_id, "--json", env=structured)
    assert run.code in (0, 3), run.stderr[-2000:]
    return run.code, json.loads(run.stdout.strip().splitlines()[-1])


def _line(landed_path: str, member_name: str, line_number: int) -> str:
    """The line of a member of a landed archive, read independently of the product."""
    with tarfile.open(landed_path, "r:bz2") as archive:
        member = next(info for info in archive.getmembers()
                      if info.name.rsplit("/", 1)[-1] == member_name)
        text = archive.extractfile(member).read().decode("utf-8")
    return text.splitlines()[line_number - 1]


def test_a_corrected_event_is_followed_to_its_lines_then_rolled_back(structured, tmp_path):
    first = generate_vacation(tmp_path / "a", "2026-10-05", 1, 300, 5, seed=41)
    rows = [row for name, raw in read_members(first).items() if name.startswith("CRE_")
            for row in data_records(raw)]
    original = rows[7]
    corrected = [*original[:5], "99.99", *original[6:]]
    second = generate_vacation(tmp_path / "b", "2026-10-05", 2, 10, 0, seed=42,
                               corrections=[corrected])
    for archive in (first, second):
        run = run_cre("ingest", "--input", str(archive), "--zones-root", str(tmp_path / "zones"),
                      "--no-deliver", env=structured)
        assert run.code == 0, run.stderr[-3000:]

    code, answer = _lineage(structured, original[0])
    assert code == 0
    versions = answer["versions"]
    assert [v["vacation_id"] for v in versions] == ["BAF_20261005_02", "BAF_20261005_01"]
    for version, fields in zip(versions, (corrected, original)):
        assert version["state"] == "LOADED" and not version["rolled_back"]
        assert _line(version["landed_path"], version["member_name"],
                     version["line_number"]).split(";") == fields

    assert run_cre("rollback", "BAF_20261005_02", env=structured).code == 0
    code, answer = _lineage(structured, original[0])
    assert [v["vacation_id"] for v in answer["versions"]] == ["BAF_20261005_01"]
    assert _lineage(structured, "NO-SUCH-EVENT")[0] == 3
