"""``cre fetchdata``: the sender's client of the collection service.

It asks for the tenant's constraints, checks every file of the folder before sending anything,
skips what the server already has (a file of the same name and sha256), streams the rest (a
progress bar per file on a terminal), retries transient failures, and ends with a table. Exit 1
when any file could not be sent.

The password and the files cross the network, so plain ``http://`` is refused for any host but
this machine unless the caller insists; over ``https://`` the server's certificate is verified
(against ``ca_file`` when given, else the system's authorities) and a refused certificate is
final, never retried.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import httpx
import tenacity

from pipelines import progress

_CHUNK = 1 << 20
_TRANSIENT = {429, 500, 502, 503, 504}


@dataclasses.dataclass
class Outcome:
    file: str
    result: str  # sent, skipped, refused, failed
    reason: str = ""
    upload_id: str = ""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _chunks(path: Path, size: int) -> Iterator[bytes]:
    """The file's bytes, each chunk moving its bar (drawn from zero at each attempt)."""
    bar = progress.Bar(path.name, progress.BYTES)
    bar.start(size)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            bar.advance(len(chunk))
            yield chunk


def check(files: list[Path], constraints: dict) -> tuple[list[Path], list[Outcome]]:
    """The files the constraints allow, and why the others are refused."""
    allowed, refused = [], []
    formats = tuple(constraints["formats"])
    for path in files:
        if not path.name.endswith(formats):
            refused.append(Outcome(path.name, "refused", f"format not in {', '.join(formats)}"))
        elif path.stat().st_size > constraints["max_bytes_per_file"]:
            refused.append(Outcome(path.name, "refused", f"larger than "
                                   f"{constraints['max_bytes_per_file']} bytes"))
        elif len(allowed) >= constraints["max_files_per_upload_session"]:
            refused.append(Outcome(path.name, "refused", f"more than "
                                   f"{constraints['max_files_per_upload_session']} files"))
        else:
            allowed.append(path)
    return allowed, refused


def check_server(server: str, insecure: bool = False) -> None:
    """Refuses (ValueError) plain HTTP to another machine, unless ``insecure``."""
    url = httpx.URL(server)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{server} is not an http:// or https:// address")
    if url.scheme == "http" and not insecure and not _loopback(url.host):
        raise ValueError(f"{server} is plain HTTP to another machine: the password would travel "
                         "in clear; use https:// (or --insecure)")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _certificate_error(error: BaseException) -> Optional[ssl.SSLCertVerificationError]:
    """The certificate verification failure behind a transport error, if that is its cause."""
    while error is not None and not isinstance(error, ssl.SSLCertVerificationError):
        error = error.__cause__ or error.__context__
    return error


def _transient(error: BaseException) -> bool:
    return isinstance(error, httpx.TransportError) and _certificate_error(error) is None


def _say_retrying(state: tenacity.RetryCallState) -> None:
    method, url = state.args
    error = state.outcome.exception()
    why = f"HTTP {state.outcome.result().status_code}" if error is None else error
    print(f"{method} {url}: {why}; retrying", file=sys.stderr)


def _request(client: httpx.Client, method: str, url: str, attempts: int = 4,
             **kwargs: Any) -> httpx.Response:
    """Retries connection errors and transient answers, with backoff; body factories are
    re-invoked so a retried upload streams its file again. The last answer is returned, the
    last connection error raised."""
    def send(method: str, url: str) -> httpx.Response:
        arguments = {**kwargs}
        if callable(arguments.get("content")):
            arguments["content"] = arguments["content"]()
        return client.request(method, url, **arguments)

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential(multiplier=0.5),  # 0.5 s, then 1 s, 2 s, ...
        retry=tenacity.retry_if_exception(_transient)
        | tenacity.retry_if_result(lambda response: response.status_code in _TRANSIENT),
        before_sleep=_say_retrying,
        retry_error_callback=lambda state: state.outcome.result())
    return retrying(send, method, url)


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text


def fetchdata(server: str, user: str, password: str, folder: Path,
              ca_file: Optional[Path] = None) -> list[Outcome]:
    """Sends the folder's files; ``ConnectionError`` with one line when the server cannot be
    reached or its certificate is refused."""
    verify = ssl.create_default_context(cafile=ca_file) if ca_file else True
    try:
        with httpx.Client(base_url=server.rstrip("/"), timeout=httpx.Timeout(60.0),
                          verify=verify) as client:
            return _send(client, user, password, folder)
    except httpx.TransportError as error:
        refused = _certificate_error(error)
        why = (f"its certificate is refused: {refused.verify_message}" if refused
               else str(error) or type(error).__name__)
        raise ConnectionError(f"{server}: {why}") from error


def _send(client: httpx.Client, user: str, password: str, folder: Path) -> list[Outcome]:
    login = _request(client, "POST", "/v1/token", auth=(user, password))
    if login.status_code != 200:
        raise PermissionError(f"login refused: {_detail(login)}")
    client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    constraints = _request(client, "GET", "/v1/constraints").json()
    files = sorted(path for path in folder.iterdir() if path.is_file())
    allowed, outcomes = check(files, constraints)
    for path in allowed:
        sha256 = _sha256(path)
        known = _request(client, "GET", "/v1/uploads",
                         params={"file_name": path.name, "sha256": sha256}).json()
        if known:
            outcomes.append(Outcome(path.name, "skipped", "the server has it",
                                    known[0]["upload_id"]))
            continue
        size = path.stat().st_size
        response = _request(client, "PUT", f"/v1/uploads/{path.name}",
                            content=lambda path=path, size=size: _chunks(path, size),
                            headers={"Content-Length": str(size)})
        if response.status_code in (200, 201):
            body = response.json()
            outcomes.append(Outcome(path.name, "skipped" if body["duplicate"] else "sent",
                                    "the server has it" if body["duplicate"] else "",
                                    body["upload_id"]))
        else:
            outcomes.append(Outcome(path.name, "failed",
                                    f"HTTP {response.status_code}: {_detail(response)}"))
    order = {path.name: index for index, path in enumerate(files)}
    return sorted(outcomes, key=lambda outcome: order.get(outcome.file, 0))
