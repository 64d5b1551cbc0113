"""The fake OVH API's state machine, driven by a hand-moved clock (no HTTP, no threads)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fleet.sandbox.ovh_catalogue import ServerSpec
from fleet.sandbox.ovh_checks import OvhApiError, validate_reinstall
from fleet.sandbox.ovh_model import OvhModel
from fleet.sandbox.ovh_tasks import PowerEvent, TaskTimings, timings_from_json

TIMINGS = TaskTimings(0.2, 0.2, 0.5, 1.0, 1.0, 5.0, 0.05)


class FakeClock:
    """Wall and monotonic time that move only when told."""

    def __init__(self) -> None:
        self.start = datetime(2024, 2, 29, 23, 59, 50, tzinfo=UTC)
        self.elapsed = 0.0

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)

    def monotonic(self) -> float:
        return 5000.0 + self.elapsed

    def sleep(self, seconds: float) -> None:
        self.elapsed += seconds


class StubChaos:
    def __init__(self, fate: str = "done", hidden: int = 0) -> None:
        self.fate = fate
        self.hidden = hidden

    def task_fate(self, function: str) -> str:
        return self.fate

    def hidden_gets(self, function: str) -> int:
        return self.hidden


def spec(index: int, *, hybrid: bool = True) -> ServerSpec:
    return ServerSpec(f"ns{index}.example", f"10.0.0.{index}", "sbg5", "S1", hybrid)


def make(
    count: int = 2, *, seed: int = 3, chaos: StubChaos | None = None
) -> tuple[OvhModel, FakeClock]:
    clock = FakeClock()
    specs = [spec(i, hybrid=i % 2 == 0) for i in range(count)]
    model = OvhModel(specs, clock=clock, rng=random.Random(seed), timings=TIMINGS, chaos=chaos)
    return model, clock


def kernel_id(model: OvhModel, name: str, kernel: str) -> int:
    return next(i for i in model.boot_ids(name) if model.boot_json(name, i)["kernel"] == kernel)


def status(model: OvhModel, name: str, task_id: int) -> str:
    return str(model.task_json(name, task_id, api_get=False)["status"])


def test_reboot_walks_init_todo_doing_done_on_time() -> None:
    model, clock = make()
    name = "ns0.example"
    model.update_server(
        name, {"bootId": kernel_id(model, name, "rescue12-customer"), "rescueSshKey": "K"}
    )
    task_id = model.reboot(name)["taskId"]
    timeline = []
    for _ in range(10):
        events = model.tick()
        timeline.append((round(clock.elapsed, 1), status(model, name, task_id), events))
        clock.sleep(0.1)
    assert [(t, s) for t, s, _ in timeline] == [
        (0.0, "init"), (0.1, "init"), (0.2, "todo"), (0.3, "todo"), (0.4, "doing"),
        (0.5, "doing"), (0.6, "doing"), (0.7, "doing"), (0.8, "doing"), (0.9, "done"),
    ]  # fmt: skip
    assert timeline[4][2] == [(name, PowerEvent("off", "disk", None))]
    assert timeline[9][2] == [(name, PowerEvent("on", "rescue", "K"))]
    assert model.snapshot(name).mode == "rescue"


def test_a_late_tick_runs_every_due_step_and_keeps_the_event_order() -> None:
    model, clock = make()
    name = "ns1.example"
    task_id = model.reboot(name)["taskId"]
    clock.sleep(10)
    events = model.tick()
    assert [e.kind for _, e in events] == ["off", "on"]
    task = model.task_json(name, task_id, api_get=False)
    assert (task["status"], task["doneDate"]) == ("done", "2024-03-01T01:00:00+01:00")


def test_the_boot_and_key_are_those_of_when_the_reboot_was_asked() -> None:
    model, clock = make()
    name = "ns0.example"
    model.update_server(
        name, {"bootId": kernel_id(model, name, "rescue-customer"), "rescueSshKey": "OLD"}
    )
    model.reboot(name)
    model.update_server(name, {"bootId": kernel_id(model, name, "hd"), "rescueSshKey": "NEW"})
    clock.sleep(10)
    assert model.tick()[-1] == (name, PowerEvent("on", "rescue", "OLD"))
    assert model.snapshot(name).rescue_ssh_key == "NEW"
    assert model.snapshot(name).boot_kernel == "hd"


def test_failed_task_touches_nothing() -> None:
    model, clock = make(chaos=StubChaos(fate="ovhError"))
    name = "ns0.example"
    task_id = model.reboot(name)["taskId"]
    clock.sleep(10)
    assert model.tick() == []
    task = model.task_json(name, task_id, api_get=False)
    assert (task["status"], task["note"]) == ("ovhError", "hardReboot failed (ovhError)")
    assert model.snapshot(name).mode == "disk"


def test_hidden_task_answers_404_to_api_gets_only() -> None:
    model, _ = make(chaos=StubChaos(hidden=2))
    name = "ns0.example"
    task_id = model.reboot(name)["taskId"]
    assert model.task_json(name, task_id, api_get=False)["taskId"] == task_id
    for _ in range(2):
        with pytest.raises(OvhApiError) as err:
            model.task_json(name, task_id)
        assert err.value.status == 404
    assert model.task_json(name, task_id)["taskId"] == task_id


def test_install_status_follows_the_reinstall() -> None:
    model, clock = make()
    name = "ns0.example"
    with pytest.raises(OvhApiError):
        model.install_status(name)
    model.reinstall(name, {"operatingSystem": "debian12_64"})
    seen = []
    for _ in range(7):
        model.tick()
        steps = [s["status"] for s in model.install_status(name)["progress"]]
        seen.append(steps)
        clock.sleep(1.0)
    assert seen[0] == ["todo"] * 5
    assert seen[2] == ["doing", "todo", "todo", "todo", "todo"]
    assert seen[4] == ["done", "done", "doing", "todo", "todo"]
    assert seen[6] == ["done", "done", "done", "done", "doing"]
    assert model.install_status(name)["elapsedTime"] == 7
    model.tick()
    with pytest.raises(OvhApiError):
        model.install_status(name)
    assert model.snapshot(name).installs == 1


def test_boot_ids_are_seeded_and_differ_per_server() -> None:
    first, _ = make(count=50, seed=9)
    again, _ = make(count=50, seed=9)
    other, _ = make(count=50, seed=10)
    names = first.server_names()
    ids = [tuple(first.boot_ids(n)) for n in names]
    assert ids == [tuple(again.boot_ids(n)) for n in names]
    assert ids != [tuple(other.boot_ids(n)) for n in names]
    assert len(set(ids)) == 50
    orders = set()
    for name in names:
        rescue = [first.boot_json(name, i)["kernel"] for i in first.boot_ids(name, "rescue")]
        assert rescue[0] == "ipxe-shell"
        orders.add(tuple(rescue))
    assert len(orders) == 2  # both customer kernels come second on some server


def test_duplicate_server_names_are_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        OvhModel([spec(1), spec(1)])


@pytest.mark.parametrize(
    "body",
    [
        {"operatingSystem": "debian12_64"},
        {
            "operatingSystem": "debian12_64",
            "customizations": {"hostname": "h", "enableLacpBonding": True},
        },
        {"operatingSystem": "debian12_64", "properties": {"role": "db"}},
        {
            "operatingSystem": "debian12_64",
            "storage": [
                {
                    "diskGroupId": 2,
                    "hardwareRaid": [{"raidLevel": 5}],
                    "partitioning": {
                        "layout": [{"fileSystem": "ext4", "mountPoint": "/", "size": 0}]
                    },
                }
            ],
        },
    ],
)
def test_valid_reinstall_bodies(body: dict[str, Any]) -> None:
    assert validate_reinstall(body, ["debian12_64"], [1, 2], "ns") == body


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ([], 400),
        ({"operatingSystem": 12}, 400),
        ({"operatingSystem": "debian12_64", "customizations": {"sshKey": 1}}, 400),
        ({"operatingSystem": "debian12_64", "customizations": {"imageType": "vmdk"}}, 400),
        ({"operatingSystem": "debian12_64", "customizations": {"httpHeaders": {"a": 1}}}, 400),
        ({"operatingSystem": "debian12_64", "properties": ["x"]}, 400),
        ({"operatingSystem": "debian12_64", "storage": {}}, 400),
        ({"operatingSystem": "debian12_64", "storage": [{"hardwareRaid": [{"level": 1}]}]}, 400),
        ({"operatingSystem": "debian12_64", "storage": [{"partitioning": {"scheme": "x"}}]}, 400),
        (
            {
                "operatingSystem": "debian12_64",
                "storage": [{"partitioning": {"layout": [{"fileSystem": "ext4"}]}}],
            },
            400,
        ),
        (
            {
                "operatingSystem": "debian12_64",
                "storage": [
                    {
                        "partitioning": {
                            "layout": [{"fileSystem": "ext4", "mountPoint": "/", "raidLevel": 3}]
                        }
                    }
                ],
            },
            400,
        ),
        ({"operatingSystem": "debian12_64", "storage": [{"diskGroupId": 2}]}, 404),
        ({"operatingSystem": "debian12_64", "storage": [{}, {}]}, 501),
    ],
)
def test_invalid_reinstall_bodies(body: Any, status: int) -> None:
    with pytest.raises(OvhApiError) as err:
        validate_reinstall(body, ["debian12_64"], [1], "ns")
    assert err.value.status == status


def test_timings_from_json() -> None:
    assert timings_from_json(TIMINGS, {"reboot_doing": 2}).reboot_doing == 2.0
    assert timings_from_json(TIMINGS, {"reboot_doing": 2}).reboot_init == TIMINGS.reboot_init
    bad: Any
    for bad in ({"reboot": 1}, {"tick": -1}, {"tick": True}, {"tick": "1"}, []):
        with pytest.raises(OvhApiError):
            timings_from_json(TIMINGS, bad)
