"""The senders allowed to upload, with their constraints: a JSON file, passwords as Argon2id.

Only Argon2id hashes are stored (argon2-cffi's defaults: memory-hard, salted); a login for an
unknown tenant still verifies a hash, so timing does not tell which names exist.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Optional

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not a password of anyone")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
DEFAULT_FORMATS = (".tar.bz2",)


@dataclasses.dataclass(frozen=True)
class Tenant:
    name: str
    password_hash: str = dataclasses.field(repr=False)
    formats: tuple[str, ...] = DEFAULT_FORMATS
    max_files: int = 10
    max_bytes: int = 20 << 30
    landing_prefix: str = ""
    profile: dict = dataclasses.field(default_factory=lambda: {"runner": "DirectRunner"})

    def constraints(self) -> dict:
        return {"tenant": self.name, "formats": list(self.formats),
                "max_files_per_upload_session": self.max_files,
                "max_bytes_per_file": self.max_bytes}


class TenantStore:
    """Reads and writes the tenants file; every change is a temporary file then a rename."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._read: tuple[tuple[int, int, int], dict[str, Tenant]] = ((0, 0, 0), {})

    def load(self) -> dict[str, Tenant]:
        """The tenants, parsed again only when the file changed: every replica of the service
        sees an edit at its next request, without reading the file at each one. Every save is
        a rename, so a change always shows in the inode even when mtime and size do not."""
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return {}
        version = (status.st_ino, status.st_size, status.st_mtime_ns)
        if self._read[0] != version:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            self._read = (version, {
                name: Tenant(name=name, **{**fields, "formats": tuple(fields["formats"])})
                for name, fields in document["tenants"].items()})
        return dict(self._read[1])

    def _save(self, tenants: dict[str, Tenant]) -> None:
        document = {"tenants": {name: {key: value for key, value in
                                       dataclasses.asdict(tenant).items() if key != "name"}
                                for name, tenant in sorted(tenants.items())}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".tenants-")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=1)
        os.chmod(temporary, 0o600)
        os.replace(temporary, self.path)

    def add(self, name: str, password: str, formats: Optional[list[str]] = None,
            max_files: int = 10, max_bytes: int = 20 << 30,
            profile: Optional[dict] = None) -> Tenant:
        tenants = self.load()
        if not _NAME.match(name):
            raise ValueError(f"tenant name {name!r}: lower-case letters, digits, - and _")
        if name in tenants:
            raise ValueError(f"tenant {name} exists; use passwd to change its password")
        if max_files < 1 or max_bytes < 1:
            raise ValueError("max-files and max-bytes must be positive")
        tenant = Tenant(name, _hash(password), tuple(formats or DEFAULT_FORMATS), max_files,
                        max_bytes, landing_prefix=name,
                        profile=profile or {"runner": "DirectRunner"})
        tenants[name] = tenant
        self._save(tenants)
        return tenant

    def passwd(self, name: str, password: str) -> None:
        tenants = self.load()
        if name not in tenants:
            raise ValueError(f"no tenant {name}")
        tenants[name] = dataclasses.replace(tenants[name], password_hash=_hash(password))
        self._save(tenants)

    def remove(self, name: str) -> None:
        tenants = self.load()
        if tenants.pop(name, None) is None:
            raise ValueError(f"no tenant {name}")
        self._save(tenants)

    def authenticate(self, name: str, password: str) -> Optional[Tenant]:
        tenant = self.load().get(name)
        try:
            _HASHER.verify(tenant.password_hash if tenant else _DUMMY_HASH, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return tenant


def _hash(password: str) -> str:
    if len(password) < 12:
        raise ValueError("a password needs at least 12 characters")
    return _HASHER.hash(password)
