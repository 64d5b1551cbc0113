"""The files a sandbox host's sshd and sessions read: sshd_config, and the stand-ins for the
commands whose answer depends on the host (``hostname``, ``sudo``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")


def force_command(shell: str) -> str:
    """sshd's ForceCommand: start in HOME, as a login on the real server does, then run the
    client's command (or an interactive shell) with bash. Inline, so that it costs no process
    when the account's shell is bash already (sshd runs it as ``$SHELL -c``)."""
    inline = 'cd "$HOME" 2>/dev/null || cd /; eval "${SSH_ORIGINAL_COMMAND:-exec /bin/bash -i}"'
    if Path(shell).name == "bash":
        return inline
    return f"exec /bin/bash -c '{inline}'"


def hostname_script(identity: str) -> str:
    return (
        "#!/bin/sh\n"
        "# The identity of this fleet sandbox host in its current boot mode.\n"
        f"name='{identity}'\n"
        'case "${1:-}" in\n'
        '  -s|--short) echo "${name%%.*}" ;;\n'
        '  *) echo "$name" ;;\n'
        "esac\n"
    )


def sudo_script(password_file: Path) -> str:
    """A stand-in for sudo: the sandbox's sshd runs unprivileged, so nothing can become root.

    It speaks sudo's protocol as fleet and Fabric use it (``-S``: the password on stdin after
    the ``-p`` prompt on stderr; ``-u``, ``-H`` and the like accepted), checks the password
    against the SHA-256 in ``password_file`` (3 tries, as sudo), then runs the command as the
    login user with ``SUDO_USER`` set. Without that file no password is asked (NOPASSWD).
    """
    return f"""#!/bin/sh
# sudo of a fleet sandbox host (see fleet.sandbox.sshd_files.sudo_script)
prompt='[sudo] password for '"$(id -un)"': '
while [ $# -gt 0 ]; do
  case "$1" in
    -p) prompt=$2; shift 2 ;;
    -u|-g|-C|-D|-h|-U) shift 2 ;;
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
if [ -s '{password_file}' ]; then
  want=$(cat '{password_file}')
  tries=0
  while :; do
    printf '%s' "$prompt" >&2
    IFS= read -r given || {{ echo 'sudo: no password was provided' >&2; exit 1; }}
    got=$(printf '%s' "$given" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$want" ] && break
    tries=$((tries + 1))
    [ "$tries" -ge 3 ] && {{ echo 'sudo: 3 incorrect password attempts' >&2; exit 1; }}
    echo 'Sorry, try again.' >&2
  done
fi
SUDO_USER=$(id -un) exec "$@"
"""


@dataclass(frozen=True)
class SshdConfig:
    """What one host's sshd_config says; :meth:`text` renders it.

    ``forwarding``: a jump host lets its clients open TCP channels onward (ProxyJump); the
    others refuse forwarding, as fleet never needs it on a target.
    """

    name: str
    mode: str
    address: str
    port: int
    dir: Path
    login: str
    shell: str
    marker: str
    forwarding: bool = False

    def text(self) -> str:
        d = self.dir
        path = f"{d}/bin:/usr/local/bin:/usr/bin:/bin"
        sftp = f"Subsystem sftp {SFTP_SERVER}\n" if SFTP_SERVER.exists() else ""
        forward = (
            "AllowTcpForwarding local\nPermitOpen any\n"
            if self.forwarding
            else ("AllowTcpForwarding no\n")
        )
        return (
            f"# {self.name}, {self.mode} boot: written by fleet.sandbox.hosts at every boot\n"
            f"ListenAddress {self.address}:{self.port}\n"
            f"HostKey {d}/{self.mode}_host_key\n"
            f"PidFile {d}/run/sshd.pid\n"
            f"AuthorizedKeysFile {d}/authorized_keys.{self.mode}\n"
            f"AllowUsers {self.login}\n"
            "PubkeyAuthentication yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nHostbasedAuthentication no\n"
            "UsePAM no\nStrictModes no\nUseDNS no\nPermitUserEnvironment no\n"
            "PrintMotd no\nPrintLastLog no\nX11Forwarding no\n"
            f"{forward}"
            "AllowAgentForwarding no\nPermitTunnel no\nLoginGraceTime 30\n"
            # VERBOSE logs every connection ("Connection from ..."): the sandbox's own count
            # of SSH contacts, which tests read to prove a refused command reached no host
            "MaxStartups 100:30:200\nMaxSessions 20\nLogLevel VERBOSE\n"
            f"{sftp}"
            f"ForceCommand {force_command(self.shell)}\n"
            f"SetEnv HOME={d}/{self.mode} PATH={path} FLEET_SANDBOX_MODE={self.mode} "
            f"{self.marker}\n"
        )
