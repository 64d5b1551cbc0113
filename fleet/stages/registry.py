"""Every stage kind, registered here and only here: what the pipeline runs for each kind.

The kinds a plan may declare are named in :mod:`fleet.plan`; a test checks that each has its
entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fleet.stages import boot, call, ssh
from fleet.stages.context import Context, Outcome
from fleet.stages.reinstall.stage import reinstall

if TYPE_CHECKING:
    from fleet.plan import RenderedStage


@dataclass(frozen=True)
class StageKind:
    """How the pipeline runs a kind of stage.

    ``per_step``: the stage journals and resumes each of its steps itself (``ssh``); otherwise
    the whole stage is one step (``STAGE/KIND``), skipped when an earlier attempt finished it.
    ``fresh_session``: the host's SSH session is closed first (a provider stage reboots it).
    """

    run: Callable[[Context, RenderedStage], Outcome]
    per_step: bool = False
    fresh_session: bool = False


STAGES: dict[str, StageKind] = {
    "ssh": StageKind(ssh.run, per_step=True),
    "python": StageKind(call.run),
    "rescue": StageKind(boot.journaled(boot.rescue), fresh_session=True),
    "disk": StageKind(boot.journaled(boot.disk), fresh_session=True),
    "reboot": StageKind(boot.journaled(boot.reboot), fresh_session=True),
    "wait_ssh": StageKind(boot.journaled(boot.wait_ssh), fresh_session=True),
    "reinstall": StageKind(boot.journaled(reinstall), fresh_session=True),
}
