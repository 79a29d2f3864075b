"""People and senders who log in: a JSON file of accounts, passwords as Argon2id.

Only Argon2id hashes are stored (argon2-cffi's defaults: memory-hard, salted); a login for an
unknown name still verifies a hash, so timing does not tell which names exist. Every change is
a temporary file then a rename, so every replica of ``cre serve`` sees an edit at its next
request and never half of one. ``TenantStore`` and the console's ``OperatorStore`` are the two
kinds of account.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import tempfile
from pathlib import Path
from typing import ClassVar, Generic, Optional, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

Account = TypeVar("Account")


class AccountFile(Generic[Account]):
    """The accounts of one kind (``KIND``, the file's top-level key), each a frozen dataclass
    with ``name`` and ``password_hash`` fields."""

    KIND: ClassVar[str]

    def __init__(self, path: Path):
        self.path = Path(path)
        self._read: tuple[tuple[int, int, int], dict[str, Account]] = ((0, 0, 0), {})

    def _parse(self, name: str, fields: dict) -> Account:
        raise NotImplementedError

    def load(self) -> dict[str, Account]:
        """The accounts, parsed again only when the file changed. Every save is a rename, so a
        change always shows in the inode even when mtime and size do not."""
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return {}
        version = (status.st_ino, status.st_size, status.st_mtime_ns)
        if self._read[0] != version:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            self._read = (version, {name: self._parse(name, fields)
                                    for name, fields in document[self.KIND].items()})
        return dict(self._read[1])

    def _save(self, accounts: dict[str, Account]) -> None:
        document = {self.KIND: {name: {key: value for key, value in
                                       dataclasses.asdict(account).items() if key != "name"}
                                for name, account in sorted(accounts.items())}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.KIND}-")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=1)
        os.chmod(temporary, 0o600)
        os.replace(temporary, self.path)

    def _added(self, account: Account) -> Account:
        """Saves a new account; refuses a bad or a taken name."""
        accounts = self.load()
        name = account.name
        if not NAME.match(name):
            raise ValueError(f"{self.KIND[:-1]} name {name!r}: lower-case letters, digits, "
                             "- and _")
        if name in accounts:
            raise ValueError(f"{self.KIND[:-1]} {name} exists; use passwd to change its "
                             "password")
        accounts[name] = account
        self._save(accounts)
        return account

    def passwd(self, name: str, password: str) -> None:
        accounts = self.load()
        if name not in accounts:
            raise ValueError(f"no {self.KIND[:-1]} {name}")
        accounts[name] = dataclasses.replace(accounts[name], password_hash=hash_password(password))
        self._save(accounts)

    def remove(self, name: str) -> None:
        accounts = self.load()
        if accounts.pop(name, None) is None:
            raise ValueError(f"no {self.KIND[:-1]} {name}")
        self._save(accounts)

    def authenticate(self, name: str, password: str) -> Optional[Account]:
        account = self.load().get(name)
        try:
            _HASHER.verify(account.password_hash if account else _dummy_hash(), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return account


@functools.cache
def _dummy_hash() -> str:
    """What an unknown name's password is checked against: hashed at the first login, not
    at every ``cre`` command's start (an Argon2 hash is slow by design: ~0.1 s)."""
    return _HASHER.hash("not a password of anyone")


def hash_password(password: str) -> str:
    if len(password) < 12:
        raise ValueError("a password needs at least 12 characters")
    return _HASHER.hash(password)
