"""The jobs' OpenLineage events: built from what a run names, checked against the spec's JSON
Schema, sent through the client's own configuration (here its file transport), off without
one."""

from __future__ import annotations

import json
import logging

import jsonschema
import pytest
from helpers.openlineage_spec import validate
from openlineage.client.serde import Serde

from pipelines import openlineage_runs
from pipelines.openlineage_runs import JobRun, RunState


def _json(event) -> dict:
    return json.loads(Serde.to_json(event))


def test_a_run_names_files_and_archives_as_the_spec_and_its_naming_say():
    assert openlineage_runs.file("gs://zones/landing/a.tar.bz2", 3, 10) == \
        openlineage_runs.DataSet("gs://zones", "landing/a.tar.bz2", 3, 10)
    assert openlineage_runs.file("/srv/zones/x.avro").namespace == "file"
    run = JobRun(openlineage_runs.INGEST, "BAF_20261005_01")
    run.read(openlineage_runs.file("/in/BAF_20261005_01.tar.bz2", 12, 4096,
                                   openlineage_runs.archive_fields(
                                       [{"name": "CRE_0001.csv", "type": "CRE"}])))
    run.wrote(openlineage_runs.file("/z/CRE/part-00000.avro", 12,
                                    fields=openlineage_runs.avro_fields("CRE")),
              openlineage_runs.file("/z/CRE/part-00000.avro", 11))  # the last word counts
    for state in (RunState.START, RunState.COMPLETE):
        event = _json(run.event(state))
        validate(event)
    archive = event["inputs"][0]
    assert archive["inputFacets"]["inputStatistics"]["rowCount"] == 12
    assert [column["name"] for column in archive["facets"]["schema"]["fields"][0]["fields"]][:3] \
        == ["cre_id", "account_id", "event_type"]
    assert [(o["name"], o["outputFacets"]["outputStatistics"]["rowCount"])
            for o in event["outputs"]] == [("/z/CRE/part-00000.avro", 11)]


def test_a_failed_run_carries_its_error_and_a_part_its_parent():
    parent = JobRun(openlineage_runs.INGEST, "BAF_20261005_01")
    run = JobRun(openlineage_runs.DELIVER, "BAF_20261005_01", parent=parent)
    try:
        raise ValueError("the package breaks spec 4")
    except ValueError as error:
        event = _json(run.event(RunState.FAIL, error))
    validate(event)
    facets = event["run"]["facets"]
    assert facets["errorMessage"]["message"] == "the package breaks spec 4"
    assert "ValueError" in facets["errorMessage"]["stackTrace"]
    assert facets["parent"]["run"]["runId"] == parent.run_id
    assert facets["parent"]["job"]["name"] == "cre.ingest"
    assert event["job"]["name"] == "cre.deliver"
    assert [(tag["key"], tag["value"]) for tag in facets["tags"]["tags"]] == [
        ("vacation_id", "BAF_20261005_01")]


def test_the_check_refuses_an_event_that_breaks_the_spec():
    event = _json(JobRun(openlineage_runs.ROLLBACK, "BAF_20261005_01").event(RunState.START))
    del event["run"]["runId"]
    with pytest.raises(jsonschema.ValidationError):
        validate(event)
    event = _json(JobRun(openlineage_runs.ROLLBACK, "BAF_20261005_01").event(RunState.START))
    event["job"]["facets"]["jobType"]["processingType"] = 3
    with pytest.raises(jsonschema.ValidationError):
        validate(event)


@pytest.fixture
def client_configured(tmp_path, monkeypatch):
    """The client's own configuration, as an operator gives it: a file transport."""
    for name in ("OPENLINEAGE_URL", "OPENLINEAGE_DISABLED", "OPENLINEAGE_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    openlineage_runs._client.cache_clear()
    yield tmp_path
    openlineage_runs._client.cache_clear()


def _configure(folder, monkeypatch) -> None:
    config = folder / "openlineage.yml"
    config.write_text(f"transport:\n  type: file\n  log_file_path: {folder / 'events.jsonl'}\n"
                      "  append: true\n")
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))


def test_a_run_emits_start_then_complete_or_fail(client_configured, monkeypatch):
    _configure(client_configured, monkeypatch)
    assert openlineage_runs.enabled()
    with openlineage_runs.job_run(openlineage_runs.RESTORE, "cre_copy"):
        pass
    with pytest.raises(RuntimeError):
        with openlineage_runs.job_run(openlineage_runs.RESTORE, "cre_copy") as run:
            run.wrote(openlineage_runs.file("/backups/b1"))
            raise RuntimeError("a damaged backup file")
    events = [json.loads(line) for line in
              (client_configured / "events.jsonl").read_text().splitlines()]
    for event in events:
        validate(event)
    assert [event["eventType"] for event in events] == ["START", "COMPLETE", "START", "FAIL"]
    assert events[0]["run"]["runId"] == events[1]["run"]["runId"] != events[2]["run"]["runId"]
    assert events[3]["outputs"][0]["name"] == "/backups/b1"


def test_nothing_is_emitted_without_a_configuration(client_configured, monkeypatch, caplog):
    monkeypatch.delenv("OPENLINEAGE_CONFIG", raising=False)
    with caplog.at_level(logging.DEBUG, logger="openlineage"):
        assert not openlineage_runs.enabled()
    assert not caplog.records  # not even the client's "will print events to console"
    _configure(client_configured, monkeypatch)
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    openlineage_runs._client.cache_clear()
    assert not openlineage_runs.enabled()
    with openlineage_runs.job_run(openlineage_runs.ROLLBACK, "BAF_20261005_01"):
        pass
    assert not (client_configured / "events.jsonl").exists()
