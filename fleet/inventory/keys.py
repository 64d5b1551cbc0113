"""The variables fleet reads: Ansible's connection variables and fleet's own ``fleet:`` mapping.

Every key of an inventory host is a variable, as in Ansible. fleet reads two kinds:

- Ansible's connection variables (:data:`CONNECTION_VARS`), every spelling Ansible accepts for
  the SSH connection, with Ansible's precedence: when both spellings of a setting are defined,
  at any level, ``ansible_ssh_host`` beats ``ansible_host`` (and ``ansible_ssh_port``,
  ``ansible_ssh_user``, ``ansible_ssh_private_key_file`` likewise), as Ansible's ssh connection
  resolves them;
- the mapping under the variable ``fleet`` (:data:`FLEET_KEYS`), so that fleet's settings
  never collide with a user variable.

A variable whose name is a near miss of a name Ansible knows (``ansible_prot``, ``ansible-host``)
or a key of ``fleet:`` fleet does not know is an error with a suggestion: a typo never silently
sends fleet to the wrong place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import Any

#: fleet's own keys, under the variable ``fleet``; ``labels`` merge label by label. The last four
#: say how to reach the host (see :mod:`fleet.inventory.connection`).
FLEET_KEYS = (
    "ovh_service", "datacenter", "rack", "labels",
    "bastion", "connect_timeout", "command_timeout", "sudo_password",
)  # fmt: skip
#: The name of the variable that holds fleet's keys.
FLEET_VAR = "fleet"

#: The SSH connection settings fleet honours: setting -> variables, weakest spelling first
#: (the order of Ansible's ssh connection plugin; the last defined wins).
CONNECTION_VARS: dict[str, tuple[str, ...]] = {
    "address": ("ansible_host", "ansible_ssh_host"),
    "port": ("ansible_port", "ansible_ssh_port"),
    "user": ("ansible_user", "ansible_ssh_user"),
    "key_file": ("ansible_private_key_file", "ansible_ssh_private_key_file"),
}
#: The extra spelling each setting has when ``ansible_connection`` is paramiko (strongest).
PARAMIKO_VARS = {
    "address": "ansible_paramiko_host",
    "port": "ansible_paramiko_port",
    "user": "ansible_paramiko_user",
    "key_file": "ansible_paramiko_private_key_file",
}
#: Values of ``ansible_connection`` that mean SSH (fleet connects over SSH, with paramiko).
SSH_CONNECTIONS = frozenset(
    {"ssh", "smart", "paramiko", "paramiko_ssh"}
    | {f"ansible.builtin.{n}" for n in ("ssh", "smart", "paramiko", "paramiko_ssh")}
)
#: Set on a host, these change how Ansible authenticates or where it connects, in a way fleet
#: cannot follow: such a host is refused when fleet is about to connect to it (listing it works).
UNSUPPORTED_VARS = {
    "ansible_password": "password logins",
    "ansible_ssh_pass": "password logins",
    "ansible_ssh_password": "password logins",
    "ansible_paramiko_pass": "password logins",
    "ansible_paramiko_password": "password logins",
    "ansible_private_key": "a private key given inline",
    "ansible_ssh_private_key": "a private key given inline",
    "ansible_private_key_passphrase": "a key passphrase in the inventory (fleet reads "
    "FLEET_SSH_KEY_PASSPHRASE, or uses ssh-agent)",
    "ansible_ssh_private_key_passphrase": "a key passphrase in the inventory (fleet reads "
    "FLEET_SSH_KEY_PASSPHRASE, or uses ssh-agent)",
    "ansible_paramiko_proxy_command": "a proxy command",
}
#: SSH arguments that change where or as whom a connection goes (in ansible_ssh_*_args), but
#: ProxyJump (``-J``), which fleet follows (a bastion, see :mod:`fleet.inventory.connection`).
_ROUTING_SSH_OPTIONS = re.compile(
    r"(?i)^-[Wpli]|^-o\s*(proxycommand|hostname|port|user|identityfile)\b"
)
#: Ansible's ssh options, in the order ssh reads them (the first value of an option wins).
SSH_ARGS_VARS = ("ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_ssh_args")

#: Every ``ansible_*`` variable of ansible-core's connection, become and shell plugins and of
#: its play context (ansible-core 2.19); a test compares it with the installed ansible-core.
_KNOWN_NAMES = """
    admin_users async_dir become become_exe become_flags become_method become_pass
    become_password become_user common_remote_group connection connection_user control_path
    control_path_dir deprecation_warnings docker_extra_args facts_modules group_priority host
    host_key_checking interpreter_python_fallback local_become_strip_preamble
    local_become_success_timeout module_compression network_os no_target_syslog paramiko_host
    paramiko_host_key_checking paramiko_pass paramiko_password paramiko_port
    paramiko_private_key_file paramiko_proxy_command paramiko_timeout
    paramiko_use_rsa_sha2_algorithms paramiko_user password pipelining port private_key
    private_key_file private_key_passphrase psrp_auth psrp_ca_cert psrp_cert_trust_path
    psrp_cert_validation psrp_certificate_key_pem psrp_certificate_pem psrp_configuration_name
    psrp_connection_backoff psrp_connection_timeout psrp_credssp_auth_mechanism
    psrp_credssp_disable_tlsv1_2 psrp_credssp_minimum_version psrp_host psrp_ignore_proxy
    psrp_max_envelope_size psrp_message_encryption psrp_negotiate_delegate
    psrp_negotiate_hostname_override psrp_negotiate_send_cbt psrp_negotiate_service
    psrp_operation_timeout psrp_path psrp_port psrp_protocol psrp_proxy psrp_read_timeout
    psrp_reconnection_backoff psrp_reconnection_retries psrp_user python_interpreter
    python_module_rlimit_nofile remote_tmp runas_flags runas_pass runas_user scp_executable
    scp_extra_args sftp_batch_mode sftp_executable sftp_extra_args
    shell_allow_world_readable_temp shell_executable shell_type ssh_args ssh_common_args
    ssh_executable ssh_extra_args ssh_host ssh_host_key_checking ssh_pass ssh_password
    ssh_password_mechanism ssh_pipelining ssh_pkcs11_provider ssh_port ssh_private_key
    ssh_private_key_file ssh_private_key_passphrase ssh_retries ssh_timeout
    ssh_transfer_method ssh_use_tty ssh_user ssh_verbosity sshpass_prompt su_exe su_flags
    su_pass su_prompt_l10n su_user sudo_chdir sudo_exe sudo_flags sudo_pass sudo_user
    system_tmpdirs target_log_info timeout user win_async_startup_timeout
    winrm_connection_timeout winrm_host winrm_kinit_args winrm_kinit_cmd winrm_kinit_env_vars
    winrm_kinit_mode winrm_pass winrm_password winrm_path winrm_port winrm_scheme
    winrm_transport winrm_user
"""
KNOWN_ANSIBLE_VARS = frozenset(f"ansible_{name}" for name in _KNOWN_NAMES.split())
#: Plausible spellings Ansible does not know, and the variable meant.
_CONFUSABLE = {
    "ansible_ssh_key": "ansible_ssh_private_key_file",
    "ansible_ssh_key_file": "ansible_ssh_private_key_file",
    "ansible_key_file": "ansible_ssh_private_key_file",
    "ansible_identity_file": "ansible_ssh_private_key_file",
    "ansible_ssh_identity_file": "ansible_ssh_private_key_file",
    "ansible_address": "ansible_host",
    "ansible_ip": "ansible_host",
    "ansible_username": "ansible_user",
    "ansible_ssh_username": "ansible_ssh_user",
    "ansible_remote_user": "ansible_user",
}
#: The names a near miss is measured against: the ones that decide where and how to connect.
_CONNECTION_NAMES = tuple(
    sorted(
        {n for names in CONNECTION_VARS.values() for n in names}
        | set(PARAMIKO_VARS.values())
        | {
            "ansible_connection",
            "ansible_become",
            "ansible_become_user",
            "ansible_python_interpreter",
        }
    )
)

_near_miss_memo: dict[str, str | None] = {}
#: Distinct Ansible-like names measured for near misses in this process at most: past it (a file
#: of thousands of made-up ``ansible_*`` names), names are taken as they are.
NEAR_MISS_BUDGET = 5000


def near_miss(name: str) -> str | None:
    """The Ansible variable ``name`` is probably a typo of (within two edits), or None."""
    folded = name.lower()
    if not (folded.startswith("ans") or "sible" in folded) or name in KNOWN_ANSIBLE_VARS:
        return None
    if name in _near_miss_memo:
        return _near_miss_memo[name]
    if name in _CONFUSABLE:
        return _CONFUSABLE[name]
    if len(_near_miss_memo) >= NEAR_MISS_BUDGET:
        return None
    if name.startswith("ansible_"):
        found = _closest(name[len("ansible_") :], _suffix_index())
        meant = None if found is None else f"ansible_{found}"
    else:  # ansible-host, ansble_user, Ansible_Host
        meant = _closest(name, _connection_index())
    _near_miss_memo[name] = meant
    return meant


def like_fleet(name: str) -> bool:
    """``flet``, ``fleets``, ``Fleet``: one edit away from the ``fleet`` variable."""
    return (
        name != FLEET_VAR and abs(len(name) - 5) <= 1 and _distance(name.lower(), FLEET_VAR, 1) <= 1
    )


def _deletions(word: str) -> set[str]:
    """``word`` with up to two characters deleted (the keys of a near-miss index)."""
    once = {word[:i] + word[i + 1 :] for i in range(len(word))}
    return {word} | once | {w[:i] + w[i + 1 :] for w in once for i in range(len(w))}


def _index(words: Iterable[str]) -> dict[str, set[str]]:
    """Words within two edits share a deletion variant: looking up a name's variants finds
    every candidate at once, instead of measuring against each known name."""
    index: dict[str, set[str]] = {}
    for word in words:
        for variant in _deletions(word):
            index.setdefault(variant, set()).add(word)
    return index


@cache
def _suffix_index() -> dict[str, set[str]]:
    return _index(name[len("ansible_") :] for name in KNOWN_ANSIBLE_VARS)


@cache
def _connection_index() -> dict[str, set[str]]:
    return _index(_CONNECTION_NAMES)


def _closest(name: str, index: dict[str, set[str]]) -> str | None:
    candidates: set[str] = set()
    for variant in _deletions(name):
        candidates |= index.get(variant, set())
    scored = [(_distance(name, c, limit=2), c) for c in candidates]
    best = min((item for item in scored if item[0] <= 2), default=None)
    return best[1] if best else None


def _distance(a: str, b: str, limit: int) -> int:
    """Edit distance with transpositions (optimal string alignment), capped above ``limit``."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                value = min(value, previous2[j - 2] + 1)
            current.append(value)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def routing_ssh_args(value: Any) -> bool:
    """Whether ansible_ssh_*_args would change where or as whom ssh connects."""
    if not isinstance(value, str):
        return False
    words = value.split()
    for i, word in enumerate(words):
        option = f"{word} {words[i + 1]}" if word == "-o" and i + 1 < len(words) else word
        if _ROUTING_SSH_OPTIONS.match(option):
            return True
    return False
