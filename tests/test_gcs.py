"""``cre ingest`` from and to ``gs://`` against a real GCS emulator on loopback."""

from __future__ import annotations

import json

import pytest
from helpers import BUCKET

from tests.vacations import VACATION, valid_members, write_archive

pytestmark = pytest.mark.integration


def test_ingest_reads_and_writes_gcs(cre, tmp_path, gcs):
    host, bucket = gcs
    archive = write_archive(tmp_path, valid_members(tmp_path, cre_rows=200))
    bucket.blob(f"inbox/{archive.name}").upload_from_filename(str(archive))
    run = cre("ingest", "--input", f"gs://{BUCKET}/inbox/{archive.name}",
              "--zones-root", f"gs://{BUCKET}/zones", "--project", "test",
              env={"STORAGE_EMULATOR_HOST": host})
    assert run.code == 0, run.stderr
    assert run.summary["status"] == "ACCEPTED"
    names = {blob.name for blob in bucket.list_blobs(prefix="zones/")}
    landed = [name for name in names if name.startswith("zones/landing/")
              and name.endswith(".tar.bz2")]
    assert len(landed) == 1
    assert bucket.blob(landed[0]).download_as_bytes() == archive.read_bytes()
    record = json.loads(bucket.blob(f"zones/proxy_producer/_vacations/{VACATION}.json")
                        .download_as_bytes())
    assert {item["type"] for item in record["files"]} == {
        "CRE", "GESPARAM", "META", "MONITOR", "REJECT", "AUDIT"}
    for item in record["files"]:
        assert item["path"].removeprefix(f"gs://{BUCKET}/") in names
    assert not [name for name in names if "/_staging/" in name]
    again = cre("ingest", "--input", f"gs://{BUCKET}/inbox/{archive.name}",
                "--zones-root", f"gs://{BUCKET}/zones", "--project", "test",
                env={"STORAGE_EMULATOR_HOST": host})
    assert again.summary["status"] == "DUPLICATE"
