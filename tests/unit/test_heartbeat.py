"""Heartbeats from journal events, on a fake clock: what is awaited, for how long, how often;
and paramiko's log records folded to one line each."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from fleet.clock import FakeClock
from fleet.heartbeat import SHOWN, Heartbeat
from fleet.store.base import Event
from fleet.transport.logs import log_channel, route_paramiko_logs

T0 = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)


def ev(kind: str, at: float, host: str | None = None, **kw: Any) -> Event:
    return Event("r1", kind, T0 + timedelta(seconds=at), host=host, **kw)


def beating(interval: float = 10.0, extra: Any = None) -> tuple[Heartbeat, FakeClock]:
    clock = FakeClock(T0)
    return Heartbeat(interval, io.StringIO(), clock=clock, extra=extra), clock


def lines_at(hb: Heartbeat, seconds: float) -> list[str]:
    return hb.due(T0 + timedelta(seconds=seconds))


def test_a_wait_is_named_every_interval_with_its_age_and_limit() -> None:
    hb, _ = beating()
    what = {"what": "OVH task 42 (hardReboot)", "timeout": 900}
    hb.event(ev("host.wait", 0, "srv-001", stage="rescue", step="rescue", data=what))
    assert lines_at(hb, 9.9) == []
    assert lines_at(hb, 10) == [
        "srv-001 still waiting for OVH task 42 (hardReboot): 10s so far, up to 15m00s"
    ]
    assert lines_at(hb, 15) == []  # told 5 s ago
    assert lines_at(hb, 20) == [
        "srv-001 still waiting for OVH task 42 (hardReboot): 20s so far, up to 15m00s"
    ]
    hb.event(ev("step.end", 21, "srv-001", stage="rescue", step="rescue", outcome="applied"))
    assert lines_at(hb, 40) == []  # over


def test_a_long_step_a_lease_and_a_window_are_waits_too() -> None:
    hb, _ = beating()
    hb.event(ev("step.start", 0, "srv-002", stage="persist", step="update-initramfs"))
    hb.event(ev("host.wait", 0, "srv-003", data={"what": "the lease (held by run r2)"}))
    window = {"until": "2026-11-26T02:00:00.000+00:00", "reason": "outside the maintenance window"}
    hb.event(ev("window.wait", 0, None, data=window))
    assert sorted(lines_at(hb, 12)) == [
        "run still waiting for the maintenance window (outside the maintenance window): "
        "12s so far, until 2026-11-26T02:00:00.000+00:00",
        "srv-002 still running step persist/update-initramfs: 12s so far",
        "srv-003 still waiting for the lease (held by run r2): 12s so far",
    ]
    hb.event(ev("batch.start", 13, data={"index": 1}))
    assert all(not x.startswith("run ") for x in lines_at(hb, 30))


def test_paramiko_lines_say_why_the_wait_goes_on() -> None:
    hb, _ = beating()
    hb.event(ev("host.wait", 0, "srv-004", data={"what": "SSH with the rescue host key"}))
    hb.event(ev("host.ssh", 3, "srv-004", excerpt="ssh: Error reading SSH protocol banner"))
    assert lines_at(hb, 10) == [
        "srv-004 still waiting for SSH with the rescue host key: 10s so far "
        "(last: ssh: Error reading SSH protocol banner)"
    ]


def test_many_waits_make_one_line_that_counts_them() -> None:
    hb, _ = beating()
    for i in range(SHOWN + 3):
        what = f"OVH task {100 + i} (hardReboot)" if i % 2 else "SSH with the disk host key"
        hb.event(ev("host.wait", i, f"srv-{i:03d}", data={"what": what}))
    (line,) = lines_at(hb, 30)
    assert line.startswith("still busy: 8 hosts (")
    assert "4 waiting for SSH with the disk host key" in line
    assert "4 waiting for OVH task N (hardReboot)" in line
    assert line.endswith("longest srv-000: waiting for SSH with the disk host key, 30s")


def test_the_rate_limit_is_named_when_it_holds_calls_back() -> None:
    notes = iter(["OVH rate limit (60 requests/min): 12 call(s) waiting, the longest for 9s"])
    hb, _ = beating(extra=lambda: next(notes, None))
    hb.event(ev("host.wait", 0, "srv-005", data={"what": "OVH task 7 (hardReboot)"}))
    assert lines_at(hb, 10)[-1].startswith("OVH rate limit (60 requests/min): 12 call(s)")


def test_the_beat_writes_timestamped_escaped_lines() -> None:
    hb, clock = beating()
    hb.event(ev("host.wait", 0, "srv-\x1b[31m6", data={"what": "SSH\x07"}))
    clock.advance(timedelta(seconds=11))
    hb.beat()
    text = hb.stream.getvalue()  # type: ignore[attr-defined]
    assert text.startswith(
        "2026-11-25T17:00:11.000+00:00 srv-\\x1b[31m6 still waiting for SSH\\x07"
    )
    assert "\x1b" not in text and "\x07" not in text


def test_paramiko_records_become_one_line_each_with_their_host() -> None:
    got: list[tuple[str | None, str]] = []
    undo = route_paramiko_logs(lambda host, line: got.append((host, line)))
    try:
        log = logging.getLogger(log_channel("srv-007"))
        log.error("Exception (client): Error reading SSH protocol banner")
        for line in (
            "Traceback (most recent call last):",
            '  File "/x/paramiko/transport.py", line 2227, in _check_banner',
            "    buf = self.packetizer.readline(timeout)",
            "paramiko.ssh_exception.SSHException: Error reading SSH protocol banner",
            "",
            "During handling of the above exception, another exception occurred:",
        ):
            log.error(line)
        logging.getLogger("paramiko.transport").warning("Oops, unhandled type 3")
        logging.getLogger("paramiko.transport").info("Connected (version 2.0)")  # below WARNING
    finally:
        undo()
    assert got == [
        ("srv-007", "ssh: Error reading SSH protocol banner"),
        (None, "ssh: Oops, unhandled type 3"),
    ]
    assert logging.getLogger("paramiko").propagate  # put back as it was


def test_routing_nests_and_restores_the_previous_sink() -> None:
    outer: list[str] = []
    inner: list[str] = []
    undo_outer = route_paramiko_logs(lambda host, line: outer.append(line))
    undo_inner = route_paramiko_logs(lambda host, line: inner.append(line))
    logging.getLogger("paramiko").error("first")
    undo_inner()
    logging.getLogger("paramiko").error("second")
    undo_outer()
    assert (outer, inner) == (["ssh: second"], ["ssh: first"])
