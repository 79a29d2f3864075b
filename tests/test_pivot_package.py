"""The pivot package's members, their contract check, the archive; and the Arkea ABS sink."""

from __future__ import annotations

import json
from decimal import Decimal

import apache_beam as beam
import pytest
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from helpers import BUCKET

from io_connectors import arkea_abs
from transforms import pivot_package
from transforms.pivot_package import PackageInvalid, Position

SUMMARY = {"vacation_id": "BAF_20261122_03", "status": "ACCEPTED_WITH_REJECTS",
           "business_date": "2026-11-22", "received_at": "2026-11-22T10:00:00.000+00:00",
           "processed_at": "2026-11-22T10:01:00.000+00:00", "errors": [], "sha256": "ab",
           "members": [{"name": "CRE_0001.csv", "type": "CRE", "records": 3, "loaded": 2,
                        "rejected": 1}]}
REJECTS = [{"member_name": "CRE_0001.csv", "record_number": 2, "line_number": 3,
            "error_code": "BAD_DATE", "error_message": 'value_date "2026-02-30"; not a date'}]
POSITIONS = [Position("B0000000002", "2026-11-21", "EUR", 1, Decimal("0"), Decimal("5.5")),
             Position("A0000000001", "2026-11-22", "USD", 2, Decimal("10.25"), Decimal("1"))]


def _members(**changes):
    return pivot_package.members({**SUMMARY, **changes}, REJECTS, POSITIONS)


def test_members_follow_spec_4():
    package = _members()
    assert list(package) == ["ACK.json", "REJECTS.csv", "POSITIONS.csv", "MANIFEST.json"]
    assert json.loads(package["ACK.json"]) == {key: SUMMARY[key] for key in (
        "vacation_id", "status", "received_at", "processed_at", "members", "errors")}
    assert package["REJECTS.csv"].decode().splitlines() == [
        "member_name;record_number;line_number;error_code;error_message",
        'CRE_0001.csv;2;3;BAD_DATE;"value_date ""2026-02-30""; not a date"']
    assert package["POSITIONS.csv"].decode().splitlines() == [
        "account_id;value_date;currency;event_count;debit_total;credit_total;net_amount",
        "A0000000001;2026-11-22;USD;2;10.25;1.00;-9.25",
        "B0000000002;2026-11-21;EUR;1;0.00;5.50;5.50"]
    manifest = json.loads(package["MANIFEST.json"])
    assert [(m["name"], m["records"]) for m in manifest] == [
        ("ACK.json", 1), ("REJECTS.csv", 1), ("POSITIONS.csv", 2)]
    pivot_package.check(package)


def test_rejected_vacation_has_no_positions():
    package = pivot_package.members({**SUMMARY, "status": "REJECTED",
                                     "errors": [{"code": "META_MISSING", "message": "x"}]},
                                    [], None)
    assert list(package) == ["ACK.json", "MANIFEST.json"]
    pivot_package.check(package)


@pytest.mark.parametrize("breakage, message", [
    (lambda p: p.update({"POSITIONS.csv": p["POSITIONS.csv"].replace(b"-9.25", b"-9.24")}),
     "POSITIONS.csv line"),
    (lambda p: p.update({"POSITIONS.csv": p["POSITIONS.csv"].replace(b"account_id", b"acct")}),
     "header"),
    (lambda p: p.update({"REJECTS.csv": p["REJECTS.csv"].replace(b"BAD_DATE", b"WHATEVER")}),
     "REJECTS.csv line"),
    (lambda p: p.update({"ACK.json": p["ACK.json"].replace(b'"errors"', b'"errs"')}),
     "lacks"),
    (lambda p: p.pop("POSITIONS.csv"), "POSITIONS.csv is for accepted"),
])
def test_check_refuses_what_breaks_the_contract(breakage, message):
    package = _members()
    breakage(package)
    with pytest.raises(PackageInvalid, match=message):
        pivot_package.check(package)


def test_manifest_must_describe_the_members():
    package = _members()
    package["POSITIONS.csv"] += b"C0000000003;2026-11-23;EUR;1;1.00;0.00;-1.00\n"
    with pytest.raises(PackageInvalid, match="MANIFEST"):
        pivot_package.check(package)


def test_archive_is_deterministic():
    first = pivot_package.archive(_members())
    assert pivot_package.archive(_members()) == first
    assert pivot_package.read_archive(first) == _members()
    assert pivot_package.package_name("BAF_20261122_03") == "MMG_ABS_20261122_03.tar.bz2"


def _package() -> arkea_abs.Package:
    return arkea_abs.Package("BAF_20261122_03", "2026-11-22", _members())


def test_sink_delivers_locally(tmp_path):
    root = str(tmp_path)
    path = arkea_abs.package_path(root, "2026-11-22", "BAF_20261122_03")
    with TestPipeline() as pipeline:
        deliveries = (pipeline | beam.Create([_package()])
                      | arkea_abs.WriteArkeaPackage(root))
        assert_that(deliveries | beam.Map(lambda d: (d.vacation_id, d.path)),
                    equal_to([("BAF_20261122_03", path)]))
    assert pivot_package.read_archive(open(path, "rb").read()) == _members()
    assert [p.name for p in (tmp_path / "outbound/arkea_abs/2026-11-22").iterdir()] == [
        "MMG_ABS_20261122_03.tar.bz2"]


def test_a_crash_before_the_rename_leaves_nothing_visible(tmp_path):
    root = str(tmp_path)
    path = arkea_abs.package_path(root, "2026-11-22", "BAF_20261122_03")
    staged = arkea_abs.stage(path, b"half of a package")  # and then the process dies
    assert not arkea_abs.delivered(path)
    with TestPipeline() as pipeline:
        _ = pipeline | beam.Create([_package()]) | arkea_abs.WriteArkeaPackage(root)
    assert arkea_abs.delivered(path)
    assert not (tmp_path / staged).exists()
    assert len(list((tmp_path / "outbound/arkea_abs/2026-11-22").iterdir())) == 1


def test_an_invalid_package_is_never_delivered(tmp_path):
    broken = _package()
    broken.members["POSITIONS.csv"] = b"not;the;header\n"
    with pytest.raises(Exception, match="POSITIONS.csv header"):
        with TestPipeline() as pipeline:
            _ = pipeline | beam.Create([broken]) | arkea_abs.WriteArkeaPackage(str(tmp_path))
    assert not (tmp_path / "outbound").exists()


@pytest.mark.integration
def test_sink_delivers_to_gcs_with_a_done_marker(gcs):
    _, bucket = gcs
    root = f"gs://{BUCKET}/out"
    path = arkea_abs.package_path(root, "2026-11-22", "BAF_20261122_03")
    FileSystems.set_options(PipelineOptions(["--no_auth", "--project=test"]))
    arkea_abs.stage(path, b"half of a package")  # the object without its marker: a crash
    assert not arkea_abs.delivered(path)
    with TestPipeline(options=PipelineOptions(["--no_auth", "--project=test"])) as pipeline:
        _ = pipeline | beam.Create([_package()]) | arkea_abs.WriteArkeaPackage(root)
    name = "out/outbound/arkea_abs/2026-11-22/MMG_ABS_20261122_03.tar.bz2"
    assert {blob.name for blob in bucket.list_blobs(prefix="out/")} == {name, name + ".done"}
    assert pivot_package.read_archive(bucket.blob(name).download_as_bytes()) == _members()
