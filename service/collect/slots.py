"""How many uploads each tenant has in progress on this replica, and the most it may have.

An upload holds a connection, a landing file and a share of the replica's disk and network
while it lasts; without a limit, one tenant (or one stolen token) opening hundreds at once
leaves nothing for the others. The count is per replica, in memory: N replicas let a tenant
have N times the limit in all, and a replica that dies takes its count with it (a count kept
in Cassandra would keep a killed replica's uploads counted until something repaired it).
"""

from __future__ import annotations

import collections


class UploadSlots:
    """At most ``per_tenant`` uploads of one tenant in progress at once, on this replica.

    Taken and given back on the event loop's thread (the upload route is a coroutine), so
    nothing else changes the count between a look and a change."""

    def __init__(self, per_tenant: int):
        self.per_tenant = per_tenant
        self._taken: collections.Counter[str] = collections.Counter()

    def take(self, tenant: str) -> bool:
        """One slot of the tenant's, if it has one left; give it back when the upload ends."""
        if self._taken[tenant] >= self.per_tenant:
            return False
        self._taken[tenant] += 1
        return True

    def give_back(self, tenant: str) -> None:
        self._taken[tenant] -= 1
        if not self._taken[tenant]:  # no tenant that uploaded once stays counted forever
            del self._taken[tenant]
