"""The fake OVH API's call counter: routes by shape, calls charged to the server they name."""

from __future__ import annotations

import threading

import pytest

from fleet.sandbox.ovh_calls import NO_SERVER, CallCounter, CallSnapshot, route_of

SN = "ns3100001.ip-127-0-1-1.eu"


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/auth/time", (NO_SERVER, "GET /auth/time")),
        ("GET", "/dedicated/server", (NO_SERVER, "GET /dedicated/server")),
        ("GET", f"/dedicated/server/{SN}", (SN, "GET /dedicated/server/{sn}")),
        ("PUT", f"/dedicated/server/{SN}/", (SN, "PUT /dedicated/server/{sn}")),
        ("GET", f"/dedicated/server/{SN}/task/123", (SN, "GET /dedicated/server/{sn}/task/{id}")),
        ("GET", f"/dedicated/server/{SN}/boot/7", (SN, "GET /dedicated/server/{sn}/boot/{id}")),
        ("POST", f"/dedicated/server/{SN}/reboot", (SN, "POST /dedicated/server/{sn}/reboot")),
        ("GET", "/dedicated/server/ns%2F1/boot", ("ns/1", "GET /dedicated/server/{sn}/boot")),
    ],
)
def test_routes_are_counted_by_shape(method: str, path: str, expected: tuple[str, str]) -> None:
    assert route_of(method, path) == expected


def test_snapshots_subtract_and_keep_failed_answers_apart() -> None:
    counter = CallCounter()
    counter.count("GET", "/auth/time", 200)
    before = counter.snapshot()
    counter.count("GET", f"/dedicated/server/{SN}/task/1", 404)
    counter.count("GET", f"/dedicated/server/{SN}/task/1", 200)
    counter.count("POST", f"/dedicated/server/{SN}/reboot", 200)
    calls = counter.snapshot().since(before)
    assert calls.total == 3 and calls.per_server == {SN: 3}
    assert calls.failed == {SN: 1}
    assert calls.routes_of(SN) == {
        "GET /dedicated/server/{sn}/task/{id}": 2,
        "POST /dedicated/server/{sn}/reboot": 1,
    }
    again = CallSnapshot.from_json(calls.to_json())
    assert (again.per_server, again.per_route, again.failed) == (
        calls.per_server,
        calls.per_route,
        calls.failed,
    )


def test_threads_counting_at_once_lose_nothing() -> None:
    counter = CallCounter()

    def work() -> None:
        for _ in range(500):
            counter.count("GET", f"/dedicated/server/{SN}", 200)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert counter.snapshot().per_server[SN] == 4000
