"""The console's people: operator accounts, distinct from tenants (an ``AccountFile``).

A ``viewer`` reads every page; an ``operator`` also replays, rolls back, redelivers and
recovers. Their sessions are bearer tokens of ``access.Tokens`` under the principal
``operator:<name>``, a name no tenant can have, so a console cookie is never a tenant's token.
"""

from __future__ import annotations

import dataclasses

from service.accounts import AccountFile, hash_password

ROLES = ("viewer", "operator")
PRINCIPAL = "operator:"


@dataclasses.dataclass(frozen=True)
class Operator:
    name: str
    password_hash: str = dataclasses.field(repr=False)
    role: str = "viewer"

    @property
    def principal(self) -> str:
        """Who the audit trail and the session tokens say it is."""
        return PRINCIPAL + self.name

    @property
    def may_act(self) -> bool:
        return self.role == "operator"


class OperatorStore(AccountFile[Operator]):
    """The operators file (``cre serve --operators``, default ``var/operators.json``)."""

    KIND = "operators"

    def _parse(self, name: str, fields: dict) -> Operator:
        return Operator(name=name, **fields)

    def add(self, name: str, password: str, role: str = "viewer") -> Operator:
        _check_role(role)
        return self._added(Operator(name, hash_password(password), role))

    def set_role(self, name: str, role: str) -> None:
        _check_role(role)
        operators = self.load()
        if name not in operators:
            raise ValueError(f"no operator {name}")
        operators[name] = dataclasses.replace(operators[name], role=role)
        self._save(operators)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
