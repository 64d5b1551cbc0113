"""What fleet did to disks, in the SQLite store: the md arrays it created on each host, and the
previews of destructive plans that an operator approves (``fleet plan --probe``)."""

from __future__ import annotations

import json

from fleet.store.base import OwnedArray, Preview
from fleet.store.rows import (
    OWNED_ARRAY_COLUMNS,
    PREVIEW_COLUMNS,
    TEXT_CODEC,
    owned_array_from_row,
    preview_from_row,
)
from fleet.store.sqlite.core import SqliteCore


class SqliteDisks(SqliteCore):
    """Arrays fleet created, and previews."""

    def record_array(self, array: OwnedArray) -> None:
        """Record (or update: filesystem UUID, members) an array fleet created on a host; the
        run that first recorded it and when are kept."""
        self._write(
            f"record array {array.uuid} of {array.host}",
            f"INSERT INTO owned_arrays ({OWNED_ARRAY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (host, uuid) DO UPDATE SET name = excluded.name,"
            " level = excluded.level, serials = excluded.serials, fs_uuid ="
            " CASE WHEN excluded.fs_uuid != '' THEN excluded.fs_uuid ELSE fs_uuid END",
            (array.host, array.uuid, array.name, array.level, json.dumps(list(array.serials)),
             array.run_id, array.fs_uuid, self._now()),
        )  # fmt: skip

    def owned_arrays(self, host: str | None = None) -> list[OwnedArray]:
        """The arrays fleet created (on ``host``, or on every host), oldest first."""
        sql = f"SELECT {OWNED_ARRAY_COLUMNS} FROM owned_arrays"
        rows = self._read(
            "list the arrays fleet created",
            sql + (" WHERE host = ? ORDER BY created_at, rowid" if host else
                   " ORDER BY host, created_at, rowid"),
            (host,) if host else (),
        )  # fmt: skip
        return [owned_array_from_row(row, TEXT_CODEC) for row in rows]

    def save_preview(self, preview: Preview) -> None:
        self._write(
            f"save preview {preview.id}",
            f"INSERT OR REPLACE INTO previews ({PREVIEW_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
            (preview.id, preview.plan_hash, json.dumps(preview.hosts), preview.created_by,
             self._now()),
        )  # fmt: skip

    def get_preview(self, preview_id: str) -> Preview | None:
        rows = self._read(
            f"read preview {preview_id}",
            f"SELECT {PREVIEW_COLUMNS} FROM previews WHERE id = ?",
            (preview_id,),
        )
        return preview_from_row(rows[0], TEXT_CODEC) if rows else None
