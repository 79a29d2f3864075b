"""The local Flink cluster, and the options that send ``cre`` pipelines to it."""

from __future__ import annotations

import socket

import pytest
from helpers import free_port, run_cre

from pipelines import runners
from pipelines.local.flink_cluster import Cluster
from pipelines.runners import FlinkUnavailable, runner_arguments

JAR = "--flink_job_server_jar=/opt/beam/job-server.jar"


def test_other_runners_keep_their_arguments():
    argv = ["--input", "x.tar.bz2", "--runner", "DirectRunner", "--flink-master", "h:1"]
    assert runner_arguments(argv) == argv


def test_flink_runs_get_beam_spellings_and_the_local_worker_pool(monkeypatch):
    monkeypatch.setenv(runners.WORKER_POOL_ENV, "127.0.0.1:5123")
    argv = runner_arguments(["--runner", "FlinkRunner", "--flink-master", "127.0.0.1:8081",
                             "--parallelism=2", JAR])
    assert argv[:3] == ["--runner", "FlinkRunner", "--flink_master"]
    assert argv[3:] == ["127.0.0.1:8081", "--parallelism=2", JAR, "--flink_version=1.20",
                        "--environment_type=EXTERNAL", "--environment_config=127.0.0.1:5123"]


def test_what_the_user_gives_wins():
    argv = runner_arguments(["--runner=FlinkRunner", "--flink-master=h:1",
                             "--environment_type", "LOOPBACK", "--flink_version=2.0", JAR])
    assert argv == ["--runner=FlinkRunner", "--flink_master=h:1", "--environment_type",
                    "LOOPBACK", "--flink_version=2.0", JAR,
                    "--environment_config=127.0.0.1:50000"]


@pytest.mark.integration
def test_a_job_server_that_cannot_be_fetched_is_said_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(runners, "JOB_SERVER", "org.apache.beam:no-such-job-server:0.0.1")
    monkeypatch.setattr(runners, "JOB_SERVER_JARS", tmp_path)
    with pytest.raises(FlinkUnavailable, match="no-such-job-server:0.0.1 could not be fetched"):
        runner_arguments(["--runner=FlinkRunner"])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("flink"), free_port(), free_port(), free_port())
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.mark.integration
def test_the_cluster_offers_two_slots_and_a_worker_pool(cluster):
    overview = cluster.overview()
    assert (overview["taskmanagers"], overview["slots-total"]) == (1, 2)
    assert overview["flink-version"] == runners.FLINK_VERSION
    with socket.create_connection(("127.0.0.1", cluster.worker_pool_port), timeout=2):
        pass
    status = run_cre("flink", "status", "--home", str(cluster.home),
                     "--rest-port", str(cluster.rest_port),
                     "--worker-pool-port", str(cluster.worker_pool_port))
    assert status.code == 0, status.stderr
    assert "1 task manager(s), 2/2 slots free" in status.stdout
    assert "worker pool up" in status.stdout


@pytest.mark.integration
def test_stop_leaves_nothing_running(tmp_path):
    cluster = Cluster(tmp_path, free_port(), free_port(), free_port())
    cluster.start()
    cluster.stop()
    assert cluster.overview() is None
    assert not cluster.running()
    status = run_cre("flink", "status", "--home", str(tmp_path),
                     "--rest-port", str(cluster.rest_port))
    assert status.code == 3
