"""What Ansible makes of an inventory: ``ansible-inventory --list``, the hosts a ``--limit``
selects, and where its ssh connection would go. Each runs ansible-core in a subprocess with a
clean configuration, from the directory given (relative key paths resolve there, as in fleet).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_HOME=str(home / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(home / "ansible-tmp"),
        ANSIBLE_CONFIG=str(home / "ansible.cfg"),  # absent: built-in defaults only
        ANSIBLE_DEPRECATION_WARNINGS="False",
        ANSIBLE_HOST_PATTERN_MISMATCH="error",  # as fleet: a term matching nothing is an error
        ANSIBLE_INVENTORY_UNPARSED_FAILED="True",
        PYTHONWARNINGS="ignore",
    )
    return env


def _run(args: list[str], cwd: Path) -> str:
    proc = subprocess.run(
        args, cwd=cwd, env=_env(cwd), capture_output=True, text=True, timeout=300, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def inventory_list(paths: list[Path], cwd: Path) -> dict[str, Any]:
    """``ansible-inventory -i ... --list``, parsed."""
    args = [str(BIN / "ansible-inventory"), "--list"]
    for path in paths:
        args += ["-i", str(path.absolute())]
    return json.loads(_run(args, cwd))


def limits(paths: list[Path], patterns: list[str], cwd: Path) -> dict[str, Any]:
    """Per pattern: the host names ``--limit PATTERN`` selects (a set), or {"error": text}."""
    sources = json.dumps([str(p.absolute()) for p in paths])
    script = str(HERE / "_limits.py")
    return json.loads(_run([sys.executable, script, sources, json.dumps(patterns)], cwd))


def patterns(keys: list[str], cwd: Path) -> dict[str, Any]:
    """``{"keys": {key: [names, port] or "error"}, "known": [ansible_* variables]}``."""
    script = str(HERE / "_patterns.py")
    return json.loads(_run([sys.executable, script, json.dumps(keys)], cwd))


def connections(paths: list[Path], cwd: Path) -> dict[str, dict[str, Any]]:
    """Per host: the address, port, user and key file Ansible's ssh connection would use."""
    return json.loads(
        _run(
            [sys.executable, str(HERE / "_connections.py"), *(str(p.absolute()) for p in paths)],
            cwd,
        )
    )


def membership(listing: dict[str, Any]) -> dict[str, set[str]]:
    """Each group's hosts, descendants included, from ``ansible-inventory --list``."""
    names = set(listing) - {"_meta"}
    for body in listing.values():
        names.update(body.get("children", ()) if isinstance(body, dict) else ())
    direct = {g: set(listing.get(g, {}).get("hosts", ())) for g in names}
    children = {g: set(listing.get(g, {}).get("children", ())) for g in names}
    result: dict[str, set[str]] = {}
    for group in names:
        hosts, todo, seen = set(), [group], set()
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                hosts |= direct.get(current, set())
                todo += children.get(current, ())
        result[group] = hosts
    result["all"] = set(listing["_meta"]["hostvars"]) | set().union(*result.values())
    return result


def plain(value: Any) -> Any:
    """Ansible's JSON with its ``!unsafe`` wrapper removed."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
