"""``cre fetchdata``: the sender's client of the collection service.

It asks for the tenant's constraints, checks every file of the folder before sending anything,
skips what the server already has (by sha256), streams the rest with a progress line, retries
transient failures, and ends with a table. Exit 1 when any file could not be sent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

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


def _chunks(path: Path, size: int, label: str) -> Iterator[bytes]:
    sent, shown = 0, 0.0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            sent += len(chunk)
            if time.monotonic() - shown > 0.2 or sent == size:
                shown = time.monotonic()
                width = 30
                done = int(width * sent / max(size, 1))
                print(f"\r{label} [{'#' * done}{'.' * (width - done)}] "
                      f"{sent / 2**20:8.1f}/{size / 2**20:.1f} MiB", end="", file=sys.stderr)
            yield chunk
    print(file=sys.stderr)


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


def _request(client: httpx.Client, method: str, url: str, attempts: int = 4, **kwargs):
    """Retries connection errors and transient answers, with backoff; body factories are
    re-invoked so a retried upload streams its file again."""
    for attempt in range(1, attempts + 1):
        arguments = {**kwargs}
        if callable(arguments.get("content")):
            arguments["content"] = arguments["content"]()
        try:
            response = client.request(method, url, **arguments)
        except httpx.TransportError as error:
            if attempt == attempts:
                raise
            print(f"{method} {url}: {error}; retrying", file=sys.stderr)
        else:
            if response.status_code not in _TRANSIENT or attempt == attempts:
                return response
            print(f"{method} {url}: HTTP {response.status_code}; retrying", file=sys.stderr)
        time.sleep(0.5 * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text


def fetchdata(server: str, user: str, password: str, folder: Path) -> list[Outcome]:
    with httpx.Client(base_url=server.rstrip("/"), timeout=httpx.Timeout(60.0)) as client:
        login = _request(client, "POST", "/v1/token", auth=(user, password))
        if login.status_code != 200:
            raise PermissionError(f"login refused: {_detail(login)}")
        client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        constraints = _request(client, "GET", "/v1/constraints").json()
        files = sorted(path for path in folder.iterdir() if path.is_file())
        allowed, outcomes = check(files, constraints)
        for path in allowed:
            sha256 = _sha256(path)
            known = _request(client, "GET", "/v1/uploads", params={"sha256": sha256}).json()
            if known:
                outcomes.append(Outcome(path.name, "skipped", "the server has it",
                                        known[0]["upload_id"]))
                continue
            size = path.stat().st_size
            response = _request(client, "PUT", f"/v1/uploads/{path.name}",
                                content=lambda path=path, size=size: _chunks(path, size,
                                                                             path.name),
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
