"""The senders allowed to upload, with their constraints (an ``AccountFile`` of tenants).

A tenant's settings are checked by pydantic, against ``Tenant``'s annotations, wherever they
come from outside: the tenants file, read again at each change, and ``cre tenants add``. A bad
one is a ``ValueError`` naming the tenant and the setting, the line ``cre tenants`` prints.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Annotated, Optional, Union

from pydantic import (
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)

from service.accounts import AccountFile, hash_password

DEFAULT_FORMATS = (".tar.bz2",)

_Positive = Annotated[int, Field(strict=True, ge=1)]
_OptionValue = Union[StrictStr, StrictInt, StrictFloat, StrictBool]  # --key=value of its ingests


@dataclasses.dataclass(frozen=True)
class Tenant:
    __pydantic_config__ = ConfigDict(extra="forbid")  # a misspelt setting is no default

    name: StrictStr
    password_hash: StrictStr = dataclasses.field(repr=False)
    formats: tuple[StrictStr, ...] = DEFAULT_FORMATS  # the endings of the file names it sends
    max_files: _Positive = 10  # per upload session
    max_bytes: _Positive = 20 << 30  # per file
    landing_prefix: StrictStr = ""
    profile: dict[StrictStr, _OptionValue] = dataclasses.field(
        default_factory=lambda: {"runner": "DirectRunner"})

    def constraints(self) -> dict:
        return {"tenant": self.name, "formats": list(self.formats),
                "max_files_per_upload_session": self.max_files,
                "max_bytes_per_file": self.max_bytes}


class TenantStore(AccountFile[Tenant]):
    """The tenants file."""

    KIND = "tenants"

    def _parse(self, name: str, fields: dict) -> Tenant:
        return _checked({**fields, "name": name} if isinstance(fields, dict) else fields, name)

    def add(self, name: str, password: str, formats: Optional[list[str]] = None,
            max_files: int = 10, max_bytes: int = 20 << 30,
            profile: Optional[dict] = None) -> Tenant:
        settings = _checked({"name": name, "password_hash": "",
                             "formats": formats or DEFAULT_FORMATS, "max_files": max_files,
                             "max_bytes": max_bytes, "landing_prefix": name,
                             "profile": profile or {"runner": "DirectRunner"}}, name)
        # the settings are refused before the password is hashed, which is slow by design
        return self._added(dataclasses.replace(settings, password_hash=hash_password(password)))


@functools.cache
def _tenant_model() -> TypeAdapter[Tenant]:
    """Built at the first tenant read: ``cre`` commands that read none skip the schema."""
    return TypeAdapter(Tenant)


def _checked(fields: object, name: str) -> Tenant:
    """Tenant ``name`` from its settings, or a ``ValueError`` with pydantic's first complaint
    in a line: ``tenant arkea: max_files should be greater than or equal to 1``."""
    try:
        return _tenant_model().validate_python(fields)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        setting = str(first["loc"][0]) if first["loc"] else "its settings"
        complaint = first["msg"]
        complaint = (complaint.removeprefix("Input") if complaint.startswith("Input ")
                     else f": {complaint[:1].lower()}{complaint[1:]}")
        raise ValueError(f"tenant {name}: {setting}{complaint}") from None
