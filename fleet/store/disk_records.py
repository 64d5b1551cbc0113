"""What fleet records about disks it destroyed and built (SQLite side): the md arrays it
created on each host, and the previews of destructive plans that an operator approved.

Kept apart from the rest of the store so that a backend implements them in one place:
:class:`fleet.store.sqlite.SqliteStore` delegates here, with its own connection helpers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fleet.clock import parse_utc
from fleet.store.base import OwnedArray, Preview

#: Schema version 3: the two tables.
SCHEMA = """
CREATE TABLE IF NOT EXISTS owned_arrays (
    host TEXT NOT NULL,
    uuid TEXT NOT NULL,
    name TEXT NOT NULL,
    level TEXT NOT NULL,
    serials TEXT NOT NULL,
    run_id TEXT NOT NULL,
    fs_uuid TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (host, uuid)
);
CREATE TABLE IF NOT EXISTS previews (
    id TEXT PRIMARY KEY,
    plan_hash TEXT NOT NULL,
    hosts TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""

Write = Callable[[str, str, tuple[Any, ...]], int]
Read = Callable[[str, str, tuple[Any, ...]], list[Any]]


def record_array(write: Write, array: OwnedArray, now: str) -> None:
    """Record (or update: filesystem UUID, members) an array fleet created on a host; the
    run that first recorded it and when are kept."""
    write(
        f"record array {array.uuid} of {array.host}",
        "INSERT INTO owned_arrays (host, uuid, name, level, serials, run_id, fs_uuid, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host, uuid) DO UPDATE SET"
        " name = excluded.name, level = excluded.level, serials = excluded.serials,"
        " fs_uuid = CASE WHEN excluded.fs_uuid != '' THEN excluded.fs_uuid ELSE fs_uuid END",
        (array.host, array.uuid, array.name, array.level, json.dumps(list(array.serials)),
         array.run_id, array.fs_uuid, now),
    )  # fmt: skip


def owned_arrays(read: Read, host: str | None) -> list[OwnedArray]:
    sql = "SELECT host, uuid, name, level, serials, run_id, fs_uuid, created_at FROM owned_arrays"
    rows = read(
        "list the arrays fleet created",
        sql + (" WHERE host = ? ORDER BY created_at" if host else " ORDER BY host, created_at"),
        (host,) if host else (),
    )
    return [
        OwnedArray(h, u, n, lv, tuple(json.loads(s)), r, f, parse_utc(at))
        for h, u, n, lv, s, r, f, at in rows
    ]


def save_preview(write: Write, preview: Preview, now: str) -> None:
    write(
        f"save preview {preview.id}",
        "INSERT OR REPLACE INTO previews (id, plan_hash, hosts, created_by, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (preview.id, preview.plan_hash, json.dumps(preview.hosts), preview.created_by, now),
    )


def get_preview(read: Read, preview_id: str) -> Preview | None:
    rows = read(
        f"read preview {preview_id}",
        "SELECT id, plan_hash, hosts, created_by, created_at FROM previews WHERE id = ?",
        (preview_id,),
    )
    if not rows:
        return None
    pid, plan_hash, hosts, who, at = rows[0]
    return Preview(pid, plan_hash, dict(json.loads(hosts)), who, parse_utc(at))
