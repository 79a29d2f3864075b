"""``cre fetchdata``: the sender's client of the collection service.

It asks for the tenant's constraints, checks every file of the folder before sending anything,
skips what the server already has (a file of the same name and sha256), streams the rest (a
progress bar per file on a terminal), retries transient failures (waiting as long as a 503 or a
429 asks, up to a minute), logs out, and ends with a table. Exit 1 when any file could not be
sent.

Given several servers (replicas of one service), it uses the first, and the next when the
current one cannot be reached or still answers 502, 503 or 504 (``replicas``).

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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Optional

import httpx

from pipelines import progress
from sender.replicas import Replicas, Unavailable
from sender.retrying import certificate_error, detail

_CHUNK = 1 << 20


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


def fetchdata(servers: Sequence[str], user: str, password: str, folder: Path,
              ca_file: Optional[Path] = None) -> list[Outcome]:
    """Sends the folder's files to the first of ``servers`` that answers; ``ConnectionError``
    with one line when none can be reached or logged in to, or a certificate is refused."""
    verify = ssl.create_default_context(cafile=ca_file) if ca_file else True
    with httpx.Client(timeout=httpx.Timeout(60.0), verify=verify) as client:
        replicas = Replicas(client, servers, (user, password))
        try:
            outcomes = _send(replicas, folder)
        except (httpx.TransportError, Unavailable) as error:
            refused = certificate_error(error)
            why = (f"its certificate is refused: {refused.verify_message}" if refused
                   else str(error) or type(error).__name__)
            raise ConnectionError(f"{replicas.server}: {why}") from error
        replicas.log_out()
    return outcomes


def _send(replicas: Replicas, folder: Path) -> list[Outcome]:
    constraints = replicas.request("GET", "/v1/constraints")
    if constraints.status_code != 200:
        raise Unavailable(f"HTTP {constraints.status_code}: {detail(constraints)}")
    files = sorted(path for path in folder.iterdir() if path.is_file())
    allowed, outcomes = check(files, constraints.json())
    outcomes += [_send_file(replicas, path) for path in allowed]
    order = {path.name: index for index, path in enumerate(files)}
    return sorted(outcomes, key=lambda outcome: order.get(outcome.file, 0))


def _send_file(replicas: Replicas, path: Path) -> Outcome:
    """The file sent, unless the server has it (the same name and sha256)."""
    known = replicas.request("GET", "/v1/uploads",
                             params={"file_name": path.name, "sha256": _sha256(path)})
    if known.status_code != 200:
        return _failed(path, known)
    if known.json():
        return Outcome(path.name, "skipped", "the server has it", known.json()[0]["upload_id"])
    size = path.stat().st_size
    response = replicas.request("PUT", f"/v1/uploads/{path.name}",
                                content=lambda: _chunks(path, size),
                                headers={"Content-Length": str(size)})
    if response.status_code not in (200, 201):
        return _failed(path, response)
    body = response.json()
    if body["duplicate"]:
        return Outcome(path.name, "skipped", "the server has it", body["upload_id"])
    return Outcome(path.name, "sent", upload_id=body["upload_id"])


def _failed(path: Path, response: httpx.Response) -> Outcome:
    return Outcome(path.name, "failed", f"HTTP {response.status_code}: {detail(response)}")
