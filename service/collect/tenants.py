"""The senders allowed to upload, with their constraints (an ``AccountFile`` of tenants)."""

from __future__ import annotations

import dataclasses
from typing import Optional

from service.accounts import AccountFile, hash_password

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


class TenantStore(AccountFile[Tenant]):
    """The tenants file."""

    KIND = "tenants"

    def _parse(self, name: str, fields: dict) -> Tenant:
        return Tenant(name=name, **{**fields, "formats": tuple(fields["formats"])})

    def add(self, name: str, password: str, formats: Optional[list[str]] = None,
            max_files: int = 10, max_bytes: int = 20 << 30,
            profile: Optional[dict] = None) -> Tenant:
        if max_files < 1 or max_bytes < 1:
            raise ValueError("max-files and max-bytes must be positive")
        return self._added(Tenant(name, hash_password(password),
                                  tuple(formats or DEFAULT_FORMATS), max_files, max_bytes,
                                  landing_prefix=name,
                                  profile=profile or {"runner": "DirectRunner"}))
