"""Confirmation and approval: a reinstall wipes the system disks, so a run reinstalls only the
hosts its record approves (``fleet reinstall --confirm``, ``fleet rollout --approve-reinstall``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fleet.errors import UsageError
from fleet.stages.reinstall.spec import ReinstallRefused, parse_params

if TYPE_CHECKING:
    from fleet.inventory import Host
    from fleet.plan import Plan

#: Run option listing the hosts a run may reinstall.
APPROVAL_OPTION = "approve_reinstall"


def check_confirmation(hosts: Sequence[Host], named: str | None, flag: str) -> list[str]:
    """The selected hosts' names, if ``named`` lists exactly them (comma-separated)."""
    chosen = sorted(h.name for h in hosts)
    given = {name.strip() for name in (named or "").split(",") if name.strip()}
    if given == set(chosen):
        return chosen
    missing, extra = sorted(set(chosen) - given), sorted(given - set(chosen))
    parts = [f"not named: {', '.join(missing)}"] if missing else []
    parts += [f"not selected: {', '.join(extra)}"] if extra else []
    raise UsageError(
        f"a reinstall wipes the system disks: {flag} must name exactly the {len(chosen)} "
        f"selected host(s), comma-separated ({'; '.join(parts)}); nothing was changed",
        hint=f"selected: {','.join(chosen)}",
    )


def reinstall_stages(plan: Plan) -> list[str]:
    return [stage.name for stage in plan.stages if stage.kind == "reinstall"]


def approval(plan: Plan, hosts: Sequence[Host], approve: str | None) -> dict[str, Any]:
    """The run options that approve ``plan``'s reinstall stages on ``hosts`` (``{}`` when it
    has none); refuses a plan with reinstall stages unless ``approve`` is ``all`` or names
    exactly the selected hosts. Params are checked here, before any host is contacted."""
    stages = [stage for stage in plan.stages if stage.kind == "reinstall"]
    if not stages:
        return {}
    for stage in stages:
        try:
            parse_params(stage.params, f"stage {stage.name}")
        except ReinstallRefused as exc:
            raise UsageError(exc.message, hint=exc.hint) from exc
    names = ", ".join(stage.name for stage in stages)
    if not approve:
        raise UsageError(
            f"plan {plan.name} reinstalls servers (stage {names}: wipes their system disks); "
            "nothing was changed",
            hint="approve with --approve-reinstall HOST,HOST... (exactly the selected hosts) or all",
        )
    if approve.strip() == "all":
        return {APPROVAL_OPTION: sorted(h.name for h in hosts)}
    return {APPROVAL_OPTION: check_confirmation(hosts, approve, "--approve-reinstall")}


def check_approved(options: Mapping[str, Any], host: str) -> None:
    """Refuse a host that the run's record does not approve for a reinstall."""
    approved = options.get(APPROVAL_OPTION)
    if isinstance(approved, list) and host in approved:
        return
    raise ReinstallRefused(
        host,
        "approval",
        "this run was not approved to reinstall this host",
        hint="use `fleet reinstall HOSTS --confirm HOSTS` or `fleet rollout --approve-reinstall`",
    )


def describe_stage(params: Mapping[str, Any]) -> str:
    """One line for ``fleet plan``: what a reinstall stage would install where."""
    parts = [f"reinstall {params.get('os', '?')} through the OVH API"]
    if params.get("disk_group") is not None:
        parts.append(f"on disk group {params['disk_group']}")
    else:
        parts.append("on the system (NVMe/SSD) disk group")
    if params.get("layout"):
        layout = params["layout"]
        parts.append("layout " + " ".join(layout if isinstance(layout, list) else [str(layout)]))
    return " ".join(parts) + ": wipes the system disks, needs approval"
