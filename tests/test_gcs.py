"""``cre ingest`` from and to ``gs://`` against a real GCS emulator on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.vacations import VACATION, valid_members, write_archive

BUCKET = "mmg-dataplatform"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def gcs(tmp_path):
    """A gcp-storage-emulator server on a loopback port, with one bucket; stopped after."""
    port = _free_port()
    emulator = Path(sys.executable).with_name("gcp-storage-emulator")
    server = subprocess.Popen(
        [str(emulator), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory",
         "--default-bucket", BUCKET],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = host
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="test", credentials=AnonymousCredentials())
    try:
        yield host, client.bucket(BUCKET)
    finally:
        server.terminate()
        server.wait(timeout=10)
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


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
