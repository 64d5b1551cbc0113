"""Checks of a plan that its schema cannot express: file steps' fields, and the local code and
files it uses (resolved and digested through :mod:`fleet.plancode`)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from fleet import plancode

if TYPE_CHECKING:
    from fleet.plan import Plan, Step

MODE = re.compile(r"0?[0-7]{3}")
OWNER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?")


def step_problems(step: Step) -> list[tuple[str, str]]:
    """(key, message) of what is wrong with one step's action fields."""
    actions = [k for k in ("apply", "put", "template") if getattr(step, k)]
    if not actions:
        return [("apply", "Field required: a step has one of `apply`, `put`, `template`")]
    if len(actions) > 1:
        return [(actions[1], f"a step has one of `apply`, `put`, `template`, not {actions}")]
    file_keys = [k for k in ("dest", "mode", "owner") if getattr(step, k)]
    if actions == ["apply"]:
        return [(k, f"`{k}` goes with `put` or `template`, not `apply`") for k in file_keys]
    problems = []
    if not step.dest or not step.dest.startswith(("/", "~/", "{{")):
        problems.append(
            ("dest", f"`{actions[0]}` needs `dest`, an absolute path on the host (or ~/...)")
        )
    if step.check:
        problems.append(("check", "a file step's check is the host's checksum: drop `check`"))
    if step.mode is not None and not MODE.fullmatch(step.mode):
        problems.append(("mode", f'mode {step.mode!r} is not octal like "0644"'))
    if step.owner is not None and not OWNER.fullmatch(step.owner):
        problems.append(("owner", f"owner {step.owner!r} is not USER or USER:GROUP"))
    return problems


def code_digests(plan: Plan) -> tuple[dict[str, str], list[tuple[tuple[Any, ...], str]]]:
    """sha256 of every local file the plan uses, keyed by its name in the plan; problems."""
    base = plancode.base_dir(plan.source)
    digests: dict[str, str] = {}
    problems: list[tuple[tuple[Any, ...], str]] = []
    for i, stage in enumerate(plan.stages):
        for key in ("call", "check", "verify"):
            call = getattr(stage, key)
            try:
                path = plancode.call_file(call, base) if call else None
            except plancode.CodeError as exc:
                problems.append((("stages", i, key), str(exc)))
                continue
            if path is not None:
                digests[call] = plancode.digest(path)
        for j, step in enumerate(stage.steps):
            for key in ("put", "template"):
                name = getattr(step, key)
                try:
                    path = plancode.local_path(name, base, key) if name else None
                except plancode.CodeError as exc:
                    problems.append((("stages", i, "steps", j, key), str(exc)))
                    continue
                if path is not None:
                    digests[name] = plancode.digest(path)
    return digests, problems


#: Keys added to the models after plans were first hashed: left out of the hash while unset, so
#: that a plan which does not use them keeps its hash across upgrades (a run started before one
#: resumes without "plan changed").
_LATER_KEYS = {
    "Plan": ("code",),
    "Stage": ("check", "verify"),
    "Step": ("put", "template", "dest", "mode", "owner", "sudo"),
}


def _drop_unset(body: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        if body.get(key) in (None, False, {}):
            body.pop(key, None)


def stable_body(body: dict[str, Any]) -> dict[str, Any]:
    """A plan's dump without the later keys it leaves unset (see :data:`_LATER_KEYS`)."""
    _drop_unset(body, _LATER_KEYS["Plan"])
    for stage in body["stages"]:
        _drop_unset(stage, _LATER_KEYS["Stage"])
        for step in stage["steps"]:
            _drop_unset(step, _LATER_KEYS["Step"])
    return body
