"""What every SQL backend shares: the columns of each table and how a row becomes a record.

The backends store the same columns; they differ only in how an instant and a JSON value are
kept (SQLite: ISO-8601 text and JSON text; PostgreSQL: ``timestamptz`` and ``json``), which a
:class:`Codec` decodes. Validation that needs no database lives here too, so that both backends
refuse the same bad input with the same words.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fleet.clock import parse_utc, utc_iso
from fleet.errors import LeaseHeld, RunOwned, StoreError
from fleet.store.base import (
    RUN_STATES,
    Actor,
    AuditEntry,
    Event,
    Lease,
    OwnedArray,
    Owner,
    PinnedKey,
    Preview,
    QuarantineEntry,
    RunLease,
    RunRecord,
    ScheduleFire,
    ScheduleRecord,
)

OWNER_COLUMNS = "owner_user, owner_machine, owner_pid, owner_run_id, owner_started, owner_nonce"
#: A run's columns; the first :data:`RUN_INSERT_COUNT` are those ``create_run`` writes.
RUN_COLUMNS = (
    f"id, plan_name, plan_source, plan_hash, hosts, options, {OWNER_COLUMNS},"
    " state, reason, created_at, updated_at, lease_token, lease_expires_at"
)
RUN_INSERT_COLUMNS = RUN_COLUMNS.removesuffix(", lease_token, lease_expires_at")
EVENT_COLUMNS = (
    "seq, run_id, kind, at, host, stage, step, outcome, exit_code, excerpt, query_id, data"
)
#: The columns ``record`` writes (all but ``seq``, which the database assigns).
EVENT_INSERT_COLUMNS = EVENT_COLUMNS.removeprefix("seq, ")
LEASE_COLUMNS = f"host, {OWNER_COLUMNS}, token, taken_at, expires_at"
SCHEDULE_COLUMNS = (
    "name, plan, cron, tz, args, missed, paused, created_by, created_at, since, expires_at"
)
#: A schedule with its last recorded due time (the newest fire, whatever its outcome).
SELECT_SCHEDULES = (
    "SELECT s.name, s.plan, s.cron, s.tz, s.args, s.missed, s.paused, s.created_by,"
    " s.created_at, s.since, s.expires_at,"
    " (SELECT MAX(f.due_at) FROM schedule_fires f WHERE f.schedule = s.name)"
    " FROM schedules s"
)
FIRE_COLUMNS = "schedule, due_at, fired_at, by, outcome, run_id, detail"
AUDIT_COLUMNS = "seq, at, action, operator, os_user, machine, pid, run_id, host, detail"
#: The columns an audit row is written with (all but ``seq``).
AUDIT_INSERT_COLUMNS = AUDIT_COLUMNS.removeprefix("seq, ")
OWNED_ARRAY_COLUMNS = "host, uuid, name, level, serials, run_id, fs_uuid, created_at"
PREVIEW_COLUMNS = "id, plan_hash, hosts, created_by, created_at"
RENEW_HINT = "the host may now be touched by someone else: stop working on it"


@dataclass(frozen=True)
class Codec:
    """How one backend hands back instants and JSON values."""

    time: Callable[[Any], datetime]
    json: Callable[[Any], Any]

    def maybe_time(self, value: Any) -> datetime | None:
        return None if value is None else self.time(value)


def _aware_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _same(value: Any) -> Any:
    return value


#: SQLite keeps instants as ISO-8601 text (:func:`fleet.clock.utc_iso`) and JSON as text.
TEXT_CODEC = Codec(parse_utc, json.loads)
#: psycopg hands back aware datetimes and decoded ``json`` already.
NATIVE_CODEC = Codec(_aware_utc, _same)


# ------------------------------------------------------------------------------ validation


def to_ms(at: datetime) -> datetime:
    """``at`` in UTC cut to the millisecond, as stored: a returned record equals the stored one."""
    return parse_utc(utc_iso(at))


def dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} is not JSON: {exc}") from exc


def check_state(state: str) -> None:
    if state not in RUN_STATES:
        raise StoreError(f"unknown run state {state!r}; expected one of {', '.join(RUN_STATES)}")


def check_ttl(ttl: float) -> None:
    if not ttl > 0:
        raise StoreError(f"a lease ttl must be positive seconds, got {ttl!r}")


def event_time(event: Event) -> datetime:
    """The event's instant as stored, or StoreError for a naive one."""
    return parse_utc(event_text(event))


def event_text(event: Event) -> str:
    """The event's instant as text stores keep it (:func:`fleet.clock.utc_iso`), or
    StoreError for a naive one."""
    try:
        return utc_iso(event.at)
    except ValueError as exc:
        raise StoreError(f"event {event.kind} of run {event.run_id}: {exc}") from exc


def no_run(run_id: str) -> StoreError:
    return StoreError(f"no run {run_id!r}; `fleet status` lists runs")


def no_schedule(name: str) -> StoreError:
    return StoreError(f"no schedule {name!r}; `fleet schedule list` lists them")


def held(lease: Lease) -> LeaseHeld:
    return LeaseHeld(
        lease.host, str(lease.owner), utc_iso(lease.taken_at), utc_iso(lease.expires_at)
    )


def run_owned(run_id: str, owner: Owner) -> RunOwned:
    return RunOwned(
        f"run {run_id} is owned by {owner}, which claimed it meanwhile; one owner at a time",
        hint=f"`fleet status {run_id}` shows its owner",
    )


def lease_gone(host: str) -> StoreError:
    return StoreError(f"lease of {host} was broken or released", hint=RENEW_HINT)


def owner_params(owner: Owner) -> tuple[str, str, int, str | None, float | None, str | None]:
    return (owner.user, owner.machine, owner.pid, owner.run_id, owner.started, owner.nonce)


def actor_params(actor: Actor) -> tuple[str, str, str, int | None]:
    return (actor.operator, actor.user, actor.machine, actor.pid)


# ---------------------------------------------------------------------------- records to rows


def run_params(run: RunRecord) -> tuple[Any, ...]:
    """A new run's columns up to ``reason`` (each backend adds its two instants), validated."""
    check_state(run.state)
    return (
        run.id,
        run.plan_name,
        run.plan_source,
        run.plan_hash,
        dumps(list(run.hosts), f"run {run.id} hosts"),
        dumps(run.options, f"run {run.id} options"),
        *owner_params(run.owner),
        run.state,
        run.reason,
    )


def run_start_detail(run: RunRecord) -> str:
    """What the audit trail keeps of a run's start."""
    return dumps({"plan": run.plan_name, "hosts": len(run.hosts)}, "run.start")


def event_params(event: Event, at: Any) -> tuple[Any, ...]:
    """An event's columns (:data:`EVENT_INSERT_COLUMNS`), with ``at`` as the backend keeps it."""
    data = dumps(event.data, f"event {event.kind} data") if event.data else None
    return (
        event.run_id,
        event.kind,
        at,
        event.host,
        event.stage,
        event.step,
        event.outcome,
        event.exit_code,
        event.excerpt,
        event.query_id,
        data,
    )


def audit_query(
    since: Any | None, who: str | None, limit: int, mark: str
) -> tuple[str, tuple[Any, ...]]:
    """The newest ``limit`` audit rows at or after ``since`` by ``who``, oldest first: the query
    and its parameters, with ``mark`` the backend's placeholder."""
    where, params = ["1 = 1"], []
    if since is not None:
        where.append(f"at >= {mark}")
        params.append(since)
    if who is not None:
        where.append(
            f"(operator = {mark} OR os_user = {mark} OR os_user || '@' || machine = {mark})"
        )
        params += [who, who, who]
    newest = (
        f"SELECT {AUDIT_COLUMNS} FROM audit WHERE {' AND '.join(where)}"
        f" ORDER BY at DESC, seq DESC LIMIT {mark}"
    )
    return f"SELECT * FROM ({newest}) AS newest ORDER BY at, seq", (*params, max(limit, 0))


# ---------------------------------------------------------------------------- rows to records


def run_from_row(row: tuple[Any, ...], codec: Codec) -> RunRecord:
    rid, name, source, digest, hosts, options = row[:6]
    owner = Owner(*row[6:12])
    state, reason, created, updated, token, expires = row[12:18]
    lease = None if token is None else RunLease(rid, owner, token, codec.maybe_time(expires))
    return RunRecord(
        id=rid,
        plan_name=name,
        plan_source=source,
        plan_hash=digest,
        hosts=tuple(codec.json(hosts)),
        options=codec.json(options),
        owner=owner,
        state=state,
        reason=reason,
        created_at=codec.time(created),
        updated_at=codec.time(updated),
        lease=lease,
    )


def event_from_row(row: tuple[Any, ...], codec: Codec) -> Event:
    seq, run_id, kind, at, host, stage, step, outcome, exit_code, excerpt, query_id, data = row
    return Event(
        run_id=run_id,
        kind=kind,
        at=codec.time(at),
        host=host,
        stage=stage,
        step=step,
        outcome=outcome,
        exit_code=exit_code,
        excerpt=excerpt,
        query_id=query_id,
        data=codec.json(data) if data else {},
        seq=seq,
    )


def lease_from_row(row: tuple[Any, ...], codec: Codec) -> Lease:
    host, owner, (token, taken_at, expires_at) = row[0], Owner(*row[1:7]), row[7:10]
    return Lease(host, owner, token, codec.time(taken_at), codec.time(expires_at))


def owned_array_from_row(row: tuple[Any, ...], codec: Codec) -> OwnedArray:
    host, uuid, name, level, serials, run_id, fs_uuid, at = row
    members = tuple(codec.json(serials))
    return OwnedArray(host, uuid, name, level, members, run_id, fs_uuid, codec.time(at))


def preview_from_row(row: tuple[Any, ...], codec: Codec) -> Preview:
    preview_id, plan_hash, hosts, created_by, at = row
    return Preview(preview_id, plan_hash, dict(codec.json(hosts)), created_by, codec.time(at))


def quarantine_from_row(row: tuple[Any, ...], codec: Codec) -> QuarantineEntry:
    host, run_id, reason, at = row
    return QuarantineEntry(host, run_id, reason, codec.time(at))


def key_from_row(row: tuple[Any, ...], codec: Codec) -> PinnedKey:
    host, role, key_type, blob, pinned_at = row
    return PinnedKey(host, role, key_type, blob, codec.time(pinned_at))


def schedule_from_row(row: tuple[Any, ...], codec: Codec) -> ScheduleRecord:
    name, plan, cron, tz, args, missed, paused, by, created, since, expires, last_due = row
    return ScheduleRecord(
        name=name,
        plan=plan,
        cron=cron,
        tz=tz,
        args=tuple(codec.json(args)),
        missed=missed,
        paused=bool(paused),
        created_by=by,
        created_at=codec.time(created),
        since=codec.time(since),
        expires_at=codec.maybe_time(expires),
        last_due=codec.maybe_time(last_due),
    )


def fire_from_row(row: tuple[Any, ...], codec: Codec) -> ScheduleFire:
    schedule, due, fired, by, outcome, run_id, detail = row
    return ScheduleFire(schedule, codec.time(due), codec.time(fired), by, outcome, run_id, detail)


def audit_from_row(row: tuple[Any, ...], codec: Codec) -> AuditEntry:
    seq, at, action, operator, user, machine, pid, run_id, host, detail = row
    return AuditEntry(
        seq=seq,
        at=codec.time(at),
        action=action,
        actor=Actor(operator, user, machine, pid),
        run_id=run_id,
        host=host,
        detail=codec.json(detail) if detail else {},
    )
