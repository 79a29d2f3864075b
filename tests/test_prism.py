"""What sends the pipelines to Prism, and the worker process Prism starts (``cre-worker``).

Whole runs on Prism are in test_runner_equality.py.
"""

from __future__ import annotations

import json

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability.api import beam_provision_api_pb2, endpoints_pb2
from google.protobuf import struct_pb2

from pipelines import runners, sdk_worker
from pipelines.runners import PrismUnavailable, one_worker, runner_arguments


def test_prism_runs_get_the_installed_binary_and_worker_processes(monkeypatch, tmp_path):
    prism = tmp_path / "prism"
    prism.touch()
    monkeypatch.setattr(runners, "PRISM", prism)
    argv = runner_arguments(["--input", "x.tar.bz2", "--runner", "PrismRunner"])
    assert argv == ["--input", "x.tar.bz2", "--runner", "PrismRunner",
                    f"--prism_location={prism}", "--environment_type=PROCESS",
                    "--environment_config=" + json.dumps(
                        {"command": str(runners.BIN / "cre-worker")})]


def test_prism_options_the_user_gives_win(monkeypatch, tmp_path):
    monkeypatch.setattr(runners, "PRISM", tmp_path / "absent")
    argv = ["--runner=PrismRunner", "--prism_location", "/opt/prism", "--environment_type",
            "LOOPBACK"]
    assert runner_arguments(argv) == argv


def test_a_missing_prism_is_said_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(runners, "PRISM", tmp_path / "absent")
    with pytest.raises(PrismUnavailable, match="run make setup, or pass --prism_location"):
        runner_arguments(["--runner=PrismRunner"])


@pytest.mark.parametrize(("argv", "expected"), [
    ([], True),
    (["--runner=DirectRunner", "--direct_num_workers=1"], True),
    (["--direct_num_workers=2", "--direct_running_mode=multi_processing"], False),
    (["--direct_num_workers=2", "--direct_running_mode=multi_threading"], False),
    (["--runner=PrismRunner"], False),
    (["--runner=FlinkRunner"], False),
])
def test_only_the_in_process_direct_runner_has_one_worker(argv, expected):
    assert one_worker(PipelineOptions(argv)) is expected


def test_the_worker_gets_what_beams_harness_reads_at_start():
    options = struct_pb2.Struct()
    options.update({"beam:option:job_name:v1": "ingest"})
    info = beam_provision_api_pb2.ProvisionInfo(
        pipeline_options=options, runner_capabilities=["beam:cap:a", "beam:cap:b"],
        control_endpoint=endpoints_pb2.ApiServiceDescriptor(url="localhost:1"),
        logging_endpoint=endpoints_pb2.ApiServiceDescriptor(url="localhost:2"),
        metadata={"job_id": "job-1"})
    environment = sdk_worker.harness_environment(info, "worker-1")
    assert environment["WORKER_ID"] == "worker-1"
    assert json.loads(environment["PIPELINE_OPTIONS"]) == {"beam:option:job_name:v1": "ingest"}
    assert 'url: "localhost:1"' in environment["CONTROL_API_SERVICE_DESCRIPTOR"]
    assert 'url: "localhost:2"' in environment["LOGGING_API_SERVICE_DESCRIPTOR"]
    assert environment["RUNNER_CAPABILITIES"] == "beam:cap:a beam:cap:b"
    assert environment["JOB_ID"] == "job-1"
    assert "STATUS_API_SERVICE_DESCRIPTOR" not in environment


def test_the_worker_refuses_sibling_workers():
    info = beam_provision_api_pb2.ProvisionInfo(sibling_worker_ids=["worker-2"])
    with pytest.raises(SystemExit, match="sibling workers"):
        sdk_worker.harness_environment(info, "worker-1")
