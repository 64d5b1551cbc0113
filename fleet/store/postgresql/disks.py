"""What fleet did to disks, in the PostgreSQL store: the md arrays it created on each host, and
the previews of destructive plans that an operator approves (``fleet plan --probe``). Their
instants are the server's ``now()``."""

from __future__ import annotations

from fleet.store.base import OwnedArray, Preview
from fleet.store.postgresql.core import PgCore
from fleet.store.rows import (
    NATIVE_CODEC,
    OWNED_ARRAY_COLUMNS,
    PREVIEW_COLUMNS,
    dumps,
    owned_array_from_row,
    preview_from_row,
)


class PgDisks(PgCore):
    """Arrays fleet created, and previews."""

    def record_array(self, array: OwnedArray) -> None:
        """Record (or update: filesystem UUID, members) an array fleet created on a host; the
        run that first recorded it and when are kept."""
        serials = dumps(list(array.serials), f"array {array.uuid} serials")
        self._write(
            f"record array {array.uuid} of {array.host}",
            f"INSERT INTO owned_arrays ({OWNED_ARRAY_COLUMNS})"
            " VALUES (%s, %s, %s, %s, %s::json, %s, %s, now())"
            " ON CONFLICT (host, uuid) DO UPDATE SET name = excluded.name,"
            " level = excluded.level, serials = excluded.serials, fs_uuid = CASE"
            " WHEN excluded.fs_uuid <> '' THEN excluded.fs_uuid ELSE owned_arrays.fs_uuid END",
            (array.host, array.uuid, array.name, array.level, serials, array.run_id,
             array.fs_uuid),
        )  # fmt: skip

    def owned_arrays(self, host: str | None = None) -> list[OwnedArray]:
        """The arrays fleet created (on ``host``, or on every host), oldest first."""
        sql = f"SELECT {OWNED_ARRAY_COLUMNS} FROM owned_arrays"
        rows = self._read(
            "list the arrays fleet created",
            sql + (" WHERE host = %s ORDER BY created_at, seq" if host else
                   " ORDER BY host, created_at, seq"),
            (host,) if host else (),
        )  # fmt: skip
        return [owned_array_from_row(row, NATIVE_CODEC) for row in rows]

    def save_preview(self, preview: Preview) -> None:
        hosts = dumps(preview.hosts, f"preview {preview.id} hosts")
        self._write(
            f"save preview {preview.id}",
            f"INSERT INTO previews ({PREVIEW_COLUMNS}) VALUES (%s, %s, %s::json, %s, now())"
            " ON CONFLICT (id) DO UPDATE SET plan_hash = excluded.plan_hash,"
            " hosts = excluded.hosts, created_by = excluded.created_by,"
            " created_at = excluded.created_at",
            (preview.id, preview.plan_hash, hosts, preview.created_by),
        )

    def get_preview(self, preview_id: str) -> Preview | None:
        rows = self._read(
            f"read preview {preview_id}",
            f"SELECT {PREVIEW_COLUMNS} FROM previews WHERE id = %s",
            (preview_id,),
        )
        return preview_from_row(rows[0], NATIVE_CODEC) if rows else None
