"""The default state store: one SQLite file in WAL mode, private to one operator.

The store is split along its seams, each a mixin over :class:`~fleet.store.sqlite.core.SqliteCore`
(transactions, group commits, the schema and the audit trail; its connections:
:mod:`~fleet.store.sqlite.connections`): runs and their
journal, leases (the hosts' and the run's, with fencing: :mod:`~fleet.store.sqlite.fencing`),
the operators' controls (quarantine and halt), host keys, schedules, and what fleet did to disks
(the arrays it created, the previews an operator approves). What both backends decide alike (a
run's claim, a schedule's fires, what an operator's control records) is written once in
:mod:`fleet.store.rules`; the mixins here supply its statements.
"""

from __future__ import annotations

from fleet.store.migrations import latest
from fleet.store.sqlite.connections import BUSY_TIMEOUT_MS
from fleet.store.sqlite.controls import SqliteControls
from fleet.store.sqlite.disks import SqliteDisks
from fleet.store.sqlite.hostkeys import SqliteHostKeys
from fleet.store.sqlite.journal import SqliteJournal
from fleet.store.sqlite.leases import SqliteLeases
from fleet.store.sqlite.schedules import SqliteSchedules

__all__ = ["BUSY_TIMEOUT_MS", "SCHEMA_VERSION", "SqliteStore"]

#: The schema version this fleet writes (see :mod:`fleet.store.migrations`); a newer file is
#: refused rather than misread, an older one upgraded in place when opened.
SCHEMA_VERSION = latest("sqlite")


class SqliteStore(
    SqliteJournal, SqliteLeases, SqliteControls, SqliteHostKeys, SqliteSchedules, SqliteDisks
):
    """The :class:`fleet.store.base.Store` on one SQLite file, safe across threads and processes.

    Do not carry an open store across ``fork``: open one per process.
    """
