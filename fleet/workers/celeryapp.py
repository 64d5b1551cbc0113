"""The Celery application fleet's controller and workers share: Redis as broker and result
backend, JSON only, and the delivery rules that make a worker's death safe.

* ``task_acks_late``: a task is acknowledged when it ends, not when a worker takes it, so a
  worker killed mid-task leaves it in the broker; Redis delivers it again after
  ``workers.visibility_timeout`` seconds (to another worker, or the same one restarted).
* ``task_reject_on_worker_lost``: a pool process that dies mid-task gives its task back at once.
* ``worker_prefetch_multiplier = 1``: a worker reserves no more tasks than it runs, so the tasks
  of a dead worker are the ones it was running, nothing queued behind them.
* Kombu's Redis transport looks for tasks past their visibility timeout only every 100 s by
  default (a sweep every 10 s, scanning on one sweep in 10): fleet scans on every sweep, and
  sweeps four times per visibility timeout (at most every 10 s, at least every second).

A task delivered twice is safe because the worker asks the journal what already ran and the
host's lease (a fencing token) before touching the host: see :mod:`fleet.workers.runtime`.
"""

from __future__ import annotations

from typing import Any

from celery import Celery


def make_app(broker: str, visibility_timeout: float) -> Any:
    """A Celery app on ``broker`` (a ``redis://`` URL) for fleet's one task."""
    app = Celery("fleet", broker=broker, backend=broker, set_as_current=False)
    transport = {
        "visibility_timeout": visibility_timeout,
        "unacked_restore_interval": max(1, min(10, int(visibility_timeout / 4))),
        "unacked_restore_throttle": 1,
    }
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        result_extended=False,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        enable_utc=True,
        timezone="UTC",
    )
    return app
