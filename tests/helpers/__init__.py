"""What the tests (and bench/) share: ``cre`` as a subprocess, a ``cre serve`` of their own, the
zones behind it. Imported as ``helpers``: tests/ is on sys.path (pytest.ini's ``pythonpath``;
bench/bench.py puts it there too), as for ``vacations``. Fixtures and hooks stay in conftest."""

from helpers.cre import (
    CRE,
    ROOT,
    TIER,
    CreRun,
    cre_environment,
    free_port,
    integration_only,
    listening,
    run_cre,
    sstable_writer_of,
    start_cre,
    wait_until,
)
from helpers.service import PASSWORDS, Service, add_tenant
from helpers.zones import (
    BUCKET,
    REPLICATION,
    abandon,
    cluster_keyspace,
    config_of,
    incoming_files,
)

__all__ = ["BUCKET", "CRE", "PASSWORDS", "REPLICATION", "ROOT", "TIER", "CreRun", "Service",
           "abandon", "add_tenant", "cluster_keyspace", "config_of", "cre_environment",
           "free_port", "incoming_files", "integration_only", "listening", "run_cre",
           "sstable_writer_of", "start_cre", "wait_until"]
