"""What every route of ``cre serve`` answers while the structured zone (Cassandra) cannot be
reached or does not answer in time: 503 with ``Retry-After``, never a 500 and its traceback.

Tokens, the login throttle, uploads and the ledger all live in Cassandra, so no route can do its
work without it; a sender that waits and sends again loses nothing: an upload answered 503 was
not acknowledged, and sending it again completes whatever its first attempt left undone
(``collect/receiving.py``).
"""

from __future__ import annotations

import logging

from cassandra import Unauthorized
from fastapi import Request
from fastapi.responses import JSONResponse

from io_connectors.cassandra_client import TRANSIENT, auth_lookup_failed, describe_error

_LOG = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 15  # a driver reconnects to a node back within its first few attempts


async def _unavailable(request: Request, error: Exception) -> JSONResponse:
    # the cause (hosts, addresses) is for the service's log, not for the caller
    _LOG.warning("%s %s answered 503: Cassandra unavailable (%s)", request.method,
                 request.url.path, describe_error(error))
    return JSONResponse(
        {"detail": f"the service's database cannot be reached now ({type(error).__name__}): "
                   f"nothing was acknowledged; try again in {RETRY_AFTER_SECONDS} s"},
        503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def _unauthorized(request: Request, error: Exception) -> JSONResponse:
    """A node that could not read the role's own rights in time says Unauthorized: a 503 like
    the timeouts it is; any other Unauthorized is a grant missing, a 500 as before."""
    if auth_lookup_failed(error):
        return await _unavailable(request, error)
    raise error


# the handlers ``create_app`` registers: one per error of the driver's that a retry may cure
HANDLERS = {**dict.fromkeys(TRANSIENT, _unavailable), Unauthorized: _unauthorized}
