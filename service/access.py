"""Who may call the collection service, the same for every replica of ``cre serve``: bearer
tokens and the login throttle live in Cassandra with a TTL, so a token issued by one replica is
accepted by the others and failed logins count wherever they are tried.

This module owns the tables ``service_tokens`` and ``login_failures``. A token is random and
stored only as its sha256, with a fingerprint of the password hash it was issued under: a new
password (or the tenant removed) revokes every token of the tenant on every replica at once.
The console's sessions are tokens too, of principals with a prefix (``operator:``) that no
tenant name can have: each ``Tokens`` accepts only its own kind's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import math
import secrets
from typing import TYPE_CHECKING, Optional, Protocol

if TYPE_CHECKING:
    from fastapi import Request


def client_address(request: Request) -> str:
    """The caller's address, as the audit trail and the login throttle record it."""
    return request.client.host if request.client else "?"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Account(Protocol):
    name: str
    password_hash: str


@dataclasses.dataclass
class Grant:
    """What a live bearer token allows, and how many files it has uploaded."""

    token_sha256: str
    tenant: str
    password_fingerprint: str
    files: int
    seconds_left: int

    def issued_for(self, account: Account) -> bool:
        """False once the account's password changed: its Argon2id hash (salted) is new."""
        return hmac.compare_digest(self.password_fingerprint, _sha256(account.password_hash))


class Tokens:
    """Bearer tokens (``service_tokens``), each kept for ``seconds`` (whole, at least one), of
    the accounts whose principal is ``prefix`` + their name (tenants: no prefix)."""

    def __init__(self, session, seconds: float, prefix: str = ""):
        self.seconds = max(1, math.ceil(seconds))
        self._prefix = prefix
        self._session = session
        prepare = session.prepare
        self._insert = prepare(
            "INSERT INTO service_tokens (token_sha256, tenant, password_fingerprint, files) "
            "VALUES (?, ?, ?, 0) USING TTL ?")
        self._revoke = prepare("DELETE FROM service_tokens WHERE token_sha256 = ?")
        self._get = prepare("SELECT tenant, password_fingerprint, files, TTL(tenant) "
                            "FROM service_tokens WHERE token_sha256 = ?")
        self._count = prepare("UPDATE service_tokens USING TTL ? SET files = ? "
                              "WHERE token_sha256 = ? IF files = ?")

    def issue(self, account: Account) -> str:
        token = secrets.token_urlsafe(32)
        self._session.execute(self._insert, (_sha256(token), self._prefix + account.name,
                                             _sha256(account.password_hash), self.seconds))
        return token

    def revoke(self, token: str) -> None:
        """Ends the token at once on every replica (a console logout)."""
        self._session.execute(self._revoke, (_sha256(token),))

    def get(self, token: str) -> Optional[Grant]:
        """The token's grant; None for an expired or made-up one."""
        key = _sha256(token)
        row = self._session.execute(self._get, (key,)).one()
        if row is None or row[0] is None:  # nothing, or only a files cell outliving the row
            return None
        principal, fingerprint, files, seconds_left = row
        name = principal.removeprefix(self._prefix)
        if not principal.startswith(self._prefix) or ":" in name:  # another kind's token
            return None
        return Grant(key, name, fingerprint, files, max(1, seconds_left or 0))

    def take_file(self, grant: Grant, limit: int) -> bool:
        """Counts one more file against the token, unless ``limit`` already were: a
        compare-and-set (LWT), so two replicas never both take the last one."""
        while grant.files < limit:
            counted = self._session.execute(self._count, (
                grant.seconds_left, grant.files + 1, grant.token_sha256, grant.files))
            if counted.was_applied:
                grant.files += 1
                return True
            current = counted.one()
            if len(current) < 2:  # the token expired meanwhile
                return False
            grant.files = current[1]
        return False


class LoginThrottle:
    """Failed logins (``login_failures``) per tenant name and per client address, counted over
    every replica: each failure is answered after a growing delay, and ``limit`` of them within
    ``window`` seconds refuse the name or the address until they age out."""

    def __init__(self, session, limit: int = 5, window: int = 300):
        self.limit, self.window = limit, window
        self._session = session
        self._insert = session.prepare(
            "INSERT INTO login_failures (subject, failed_at) VALUES (?, now()) USING TTL ?")
        self._count = session.prepare("SELECT COUNT(*) FROM login_failures WHERE subject = ?")

    @staticmethod
    def _subjects(tenant: str, client: str) -> tuple[str, str]:
        return f"tenant:{tenant}", f"client:{client}"

    def _recent(self, subject: str) -> int:
        return self._session.execute(self._count, (subject,)).one()[0]

    def blocked(self, tenant: str, client: str) -> bool:
        return any(self._recent(subject) >= self.limit
                   for subject in self._subjects(tenant, client))

    def failed(self, tenant: str, client: str) -> float:
        """Records a failure; returns the delay to impose before answering."""
        subjects = self._subjects(tenant, client)
        for subject in subjects:
            self._session.execute(self._insert, (subject, self.window))
        return min(0.25 * 2 ** (max(map(self._recent, subjects)) - 1), 4.0)
