"""The reliability campaign's quick scenario, in ``make test``: tenants pushing vacations with
``cre fetchdata`` to two ``cre serve`` replicas (two hosts, over TLS) on the three-node cluster,
a node stopped and started again while they do; then nothing lost, duplicated or reordered on
the way to Arkea. ``make test-reliability`` runs the whole campaign (``bench/reliability.py``)."""

from __future__ import annotations

import threading
import time

import pytest
from helpers import cluster_keyspace
from helpers.campaign import Campaign

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


@pytest.fixture(autouse=True)
def every_node_up(cluster):
    yield
    cluster.start()


def test_a_node_stopped_and_started_during_the_uploads_and_ingests(cluster, tmp_path):
    env = {**cluster_keyspace(cluster, "reliability"), "CRE_LEASE_SECONDS": "30"}
    campaign = Campaign(tmp_path, env, ["north", "south"], hosts=("host-a", "host-b"),
                        options=("--parallelism", "1"))
    try:
        campaign.generate(3, 2_000)
        stopped: list[float] = []
        restarted = threading.Thread(target=_restart_node, args=(cluster, 3, stopped))
        restarted.start()
        pushed = campaign.push()
        restarted.join()
        campaign.settled(timeout=600)
        settled = time.monotonic()
        verdict = campaign.verdict("node restart", "2 tenants x 3 vacations x 2,000 rows",
                                   "node 3 stopped and started", pushed)
    finally:
        campaign.stop()
    assert stopped and stopped[0] < settled  # the node was down while vacations were in flight
    assert verdict.passed, verdict
    assert (verdict.accepted, verdict.ingested, verdict.delivered) == (6, 6, 6), verdict


def _restart_node(cluster, node: int, stopped: list[float]) -> None:
    cluster.stop(node)
    stopped.append(time.monotonic())
    cluster.start(node)
