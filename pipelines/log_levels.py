"""The levels of the libraries' loggers, the same in the driver (``cre``) and in the SDK workers
a portable runner starts (``cre-worker``): what they say below these levels is noise to an
operator."""

from __future__ import annotations

import logging


def quiet_libraries(cassandra: int = logging.WARNING) -> None:
    """``cassandra``: the driver's level; the load's retries and refused hosts are worth a
    warning, a query's are not (the command says its failure in one line)."""
    logging.getLogger("cassandra").setLevel(cassandra)
    logging.getLogger("cassandra.protocol").setLevel(logging.ERROR)  # the server's advice
    logging.getLogger("apache_beam.typehints").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("openlineage").setLevel(logging.WARNING)  # its transport, every command
