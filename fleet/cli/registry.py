"""Every command of fleet, registered here and only here: name -> ``module:attribute``.

A command module defines its click command or group and imports nothing to register itself;
:mod:`fleet.cli.root` imports a module only when its command runs (or ``--help`` lists it).
"""

from __future__ import annotations

COMMANDS: dict[str, str] = {
    "plan": "fleet.cli.plan:plan_cmd",
    "preflight": "fleet.cli.preflight:preflight_cmd",
    "rollout": "fleet.cli.rollout:rollout_cmd",
    "resume": "fleet.cli.rollout:resume_cmd",
    "abort": "fleet.cli.rollout:abort_cmd",
    "run": "fleet.cli.run:run_cmd",
    "halt": "fleet.cli.halt:halt_cmd",
    "unhalt": "fleet.cli.halt:unhalt_cmd",
    "status": "fleet.cli.status:status_cmd",
    "report": "fleet.cli.report:report_cmd",
    "leases": "fleet.cli.leases:leases_group",
    "quarantine": "fleet.cli.quarantine:quarantine_group",
    "hostkeys": "fleet.cli.hostkeys:hostkeys_group",
    "inventory": "fleet.cli.inventory:inventory_group",
    "config": "fleet.cli.config:config_group",
    "ovh": "fleet.cli.ovh:ovh_group",
    "reinstall": "fleet.cli.reinstall:reinstall_cmd",
    "schedule": "fleet.cli.schedule:schedule_group",
    "scheduler": "fleet.cli.schedule:scheduler_group",
    "sandbox": "fleet.cli.sandbox:sandbox_group",
    "completion": "fleet.cli.completion:completion_cmd",
    "worker": "fleet.cli.worker:worker_cmd",
    "store": "fleet.cli.store:store_group",
    "audit": "fleet.cli.audit:audit_cmd",
}
