"""How the controller's "stop" reaches the pipelines running on workers.

In-process, the pipelines share the controller's :class:`~fleet.engine.leases.StopSignal`: a
spent budget, a global halt or a Ctrl-C stops them before their next stage, and a second Ctrl-C
cuts their commands. Across processes the controller writes the same request to one Redis key
per run and owner (its run token), and each worker copies it into its own signal within
:data:`POLL` seconds. The key names the run's token so that a resume (a new token) never reads
the stop of the execution before it.
"""

from __future__ import annotations

import json
import threading

import redis

from fleet.engine.leases import StopSignal

#: Seconds between a worker's reads of the key.
POLL = 0.5
#: The key outlives any rollout, then goes away by itself.
KEY_TTL = 7 * 86400


def stop_key(run_id: str, run_token: int) -> str:
    return f"fleet:stop:{run_id}:{run_token}"


class StopPublisher:
    """The controller's side: publish its signal's requests (soft, then hard), once each."""

    def __init__(self, client: redis.Redis, key: str, stop: StopSignal) -> None:
        self.client, self.key, self.stop = client, key, stop
        self._sent = 0  # 0 nothing, 1 soft, 2 hard
        self._lock = threading.Lock()

    def sync(self) -> None:
        level = 2 if self.stop.hard.is_set() else 1 if self.stop.soft.is_set() else 0
        with self._lock:
            if level <= self._sent:
                return
            body = json.dumps({"reason": self.stop.reason, "hard": level == 2})
            self.client.set(self.key, body, ex=KEY_TTL)
            self._sent = level


class StopFollower:
    """A worker's side: a thread that copies the controller's requests into ``stop``."""

    def __init__(self, client: redis.Redis, key: str, stop: StopSignal) -> None:
        self.client, self.key, self.stop = client, key, stop
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="fleet-stop", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while not self._done.wait(POLL):
            try:
                raw = self.client.get(self.key)
            except redis.RedisError:  # the broker is away: the pipelines go on, as in-process
                continue
            if raw is None:
                continue
            said = json.loads(raw)
            if said.get("hard") or not self.stop.soft.is_set():
                self.stop.request(str(said.get("reason") or "stopped"), hard=bool(said.get("hard")))
            if said.get("hard"):
                return

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)
