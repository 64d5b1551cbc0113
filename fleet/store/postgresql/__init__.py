"""The team store: one PostgreSQL database shared by every operator and scheduler.

The same :class:`~fleet.store.base.Store` as SQLite, split along the same seams, each a mixin over
:class:`~fleet.store.postgresql.core.PgCore` (the pool, transactions, the schema and the audit
trail): runs and their journal, leases (the hosts' and the run's, with fencing), the operators'
controls (quarantine and halt, heard at once through LISTEN/NOTIFY), host keys, schedules, and
the arrays fleet created with the previews an operator approves; the rules both backends share
come from :mod:`fleet.store.rules`. The only module tree that imports psycopg.
"""

from __future__ import annotations

from fleet.store.migrations import latest
from fleet.store.postgresql.controls import PgControls
from fleet.store.postgresql.disks import PgDisks
from fleet.store.postgresql.hostkeys import PgHostKeys
from fleet.store.postgresql.journal import PgJournal
from fleet.store.postgresql.leases import PgLeases
from fleet.store.postgresql.schedules import PgSchedules

__all__ = ["SCHEMA_VERSION", "PostgresStore"]

#: The schema version this fleet needs (see :mod:`fleet.store.migrations`): an older database is
#: refused until ``fleet store migrate``, a newer one until fleet is upgraded.
SCHEMA_VERSION = latest("postgresql")


class PostgresStore(PgJournal, PgLeases, PgControls, PgHostKeys, PgSchedules, PgDisks):
    """The :class:`fleet.store.base.Store` on a PostgreSQL database, safe across threads,
    processes and machines. Open one per process."""
