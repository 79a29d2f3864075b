"""The platform's own failures share one base class: the commands catch it, not a list."""

from __future__ import annotations

import pytest

from io_connectors.cassandra_client import CassandraUnavailable
from pipelines.backup import BackupError
from pipelines.deliver import DeliveryError
from pipelines.ledger import LedgerConflict
from pipelines.recovery import RecoveryError
from pipelines.runners import FlinkUnavailable
from pipelines.schema_migrations import SchemaOutdated
from transforms.contract import PlatformError, VacationError


@pytest.mark.parametrize("error", [CassandraUnavailable, LedgerConflict, DeliveryError,
                                   FlinkUnavailable, SchemaOutdated, RecoveryError,
                                   BackupError])
def test_every_platform_failure_is_a_platform_error(error):
    assert issubclass(error, PlatformError) and issubclass(error, RuntimeError)


def test_a_vacation_error_is_the_input_s_fault_not_the_platform_s():
    assert not issubclass(VacationError, PlatformError)
