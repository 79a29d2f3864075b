"""One request to one server, as ``cre fetchdata`` sends it: retried while the failure may pass.

Connection errors and transient answers (429, 500, 502, 503, 504) are tried again, four attempts
in all, after an exponential backoff, or after the wait a 503 or a 429 asks for in its
``Retry-After`` (a service whose database is away, a tenant with too many uploads at once),
bounded so that a server cannot park the sender. A certificate the sender refuses is final.
"""

from __future__ import annotations

import datetime
import email.utils
import ssl
import sys
from typing import Any, Optional

import httpx
import tenacity

FAILOVER = frozenset({502, 503, 504})  # this server, or what it stands on, is down
_TRANSIENT = FAILOVER | {429, 500}
_LONGEST_WAIT = 60.0  # seconds: the most a Retry-After is waited, at each retry
_BACKOFF = tenacity.wait_exponential(multiplier=0.5)  # 0.5 s, then 1 s, 2 s, ...


def certificate_error(error: BaseException) -> Optional[ssl.SSLCertVerificationError]:
    """The certificate verification failure behind a transport error, if that is its cause."""
    while error is not None and not isinstance(error, ssl.SSLCertVerificationError):
        error = error.__cause__ or error.__context__
    return error


def transient(error: BaseException) -> bool:
    """A connection error that may pass: any but a refused certificate."""
    return isinstance(error, httpx.TransportError) and certificate_error(error) is None


def retry_after(response: httpx.Response) -> Optional[float]:
    """The seconds a 503 or a 429 asks to wait (``Retry-After``: seconds or an HTTP date), at
    most ``_LONGEST_WAIT``; None when it asks for no wait of its own."""
    value = response.headers.get("retry-after", "").strip()
    if response.status_code not in (429, 503) or not value:
        return None
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = (email.utils.parsedate_to_datetime(value)
                       - datetime.datetime.now(datetime.UTC)).total_seconds()
        except (TypeError, ValueError):  # not a date, or one without its zone
            return None
    return min(max(seconds, 0.0), _LONGEST_WAIT)


def detail(response: httpx.Response) -> str:
    """What an answer says of itself: its ``detail``, else its text."""
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text


def why(outcome: tenacity.Future) -> str:
    """An attempt's failure in a few words: its status, or its connection error."""
    error = outcome.exception()
    if error is None:
        return f"HTTP {outcome.result().status_code}"
    return str(error) or type(error).__name__


def _wait(state: tenacity.RetryCallState) -> float:
    """The wait the server asked for, else the backoff."""
    asked = None if state.outcome.failed else retry_after(state.outcome.result())
    return _BACKOFF(state) if asked is None else asked


def _say_retrying(state: tenacity.RetryCallState) -> None:
    method, url = state.args
    print(f"{method} {url}: {why(state.outcome)}; retrying in {state.next_action.sleep:g} s",
          file=sys.stderr)


def request(client: httpx.Client, method: str, url: str, attempts: int = 4,
            **kwargs: Any) -> httpx.Response:
    """Retries connection errors and transient answers, after a backoff or the server's
    ``Retry-After``; body factories are re-invoked so a retried upload streams its file again.
    The last answer is returned, the last connection error raised."""
    def send(method: str, url: str) -> httpx.Response:
        arguments = {**kwargs}
        if callable(arguments.get("content")):
            arguments["content"] = arguments["content"]()
        return client.request(method, url, **arguments)

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts), wait=_wait,
        retry=tenacity.retry_if_exception(transient)
        | tenacity.retry_if_result(lambda response: response.status_code in _TRANSIENT),
        before_sleep=_say_retrying,
        retry_error_callback=lambda state: state.outcome.result())
    return retrying(send, method, url)
