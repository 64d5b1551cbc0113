"""Pure parts of the sandbox hosts: keys, spec checks, the files written for sshd."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest

from fleet.errors import UsageError
from fleet.sandbox.account import rmtree
from fleet.sandbox.hosts import HostSpec, generate_ed25519
from fleet.sandbox.netinfo import proc_endpoint
from fleet.sandbox.runtime import validate_specs
from fleet.sandbox.sshd_files import force_command, hostname_script


def test_generated_key_loads_in_paramiko_and_matches_its_public_line() -> None:
    private, public = generate_ed25519("operator@sandbox")
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(private))
    key_type, blob, comment = public.split()
    assert (key_type, blob, comment) == (key.get_name(), key.get_base64(), "operator@sandbox")
    assert generate_ed25519()[1].split()[1] != blob


@pytest.mark.skipif(sys.byteorder != "little", reason="/proc/net/tcp spelling is native-endian")
def test_proc_endpoint_spells_addresses_as_proc_net_tcp() -> None:
    assert proc_endpoint("127.150.0.1", 2222) == "0100967F:08AE"
    assert proc_endpoint("127.0.0.1", 22) == "0100007F:0016"


@pytest.mark.parametrize(
    "specs",
    [
        [HostSpec("a", "10.0.0.1")],
        [HostSpec("a", "localhost")],
        [HostSpec("a", "127.1.0.1"), HostSpec("a", "127.1.0.2")],
        [HostSpec("a", "127.1.0.1"), HostSpec("b", "127.1.0.1")],
        [HostSpec("../a", "127.1.0.1")],
        [HostSpec("rescue", "127.1.0.1")],
        [HostSpec("a", "127.1.0.1", port=0)],
        [HostSpec("a", "127.1.0.1", hostname="x'; reboot")],
    ],
)
def test_bad_specs_are_refused(specs: list[HostSpec]) -> None:
    with pytest.raises(UsageError):
        validate_specs(specs)


def test_good_specs_pass() -> None:
    validate_specs(
        [HostSpec("ns1.ip-1-2-3.eu", "127.100.0.1"), HostSpec("ns2", "127.100.0.1", port=2223)]
    )


def test_hostname_script_prints_identity(tmp_path: Path) -> None:
    script = tmp_path / "hostname"
    script.write_text(hostname_script("ns1.ip-1-2-3.eu"))
    run = [["sh", str(script)], ["sh", str(script), "-f"], ["sh", str(script), "-s"]]
    outputs = [
        subprocess.run(cmd, capture_output=True, text=True, check=True).stdout for cmd in run
    ]
    assert outputs == ["ns1.ip-1-2-3.eu\n", "ns1.ip-1-2-3.eu\n", "ns1\n"]


def test_force_command_runs_bash_whatever_the_login_shell() -> None:
    inline = force_command("/bin/bash")
    assert inline.startswith('cd "$HOME"') and "SSH_ORIGINAL_COMMAND" in inline
    assert force_command("/usr/bin/fish") == f"exec /bin/bash -c '{inline}'"


def test_force_command_runs_the_original_command_in_home(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "SSH_ORIGINAL_COMMAND": "pwd; exit 3", "PATH": "/usr/bin:/bin"}
    for shell in ("/bin/bash", "/bin/sh"):
        command = force_command(shell)
        done = subprocess.run([shell, "-c", command], env=env, capture_output=True, text=True)
        assert (done.returncode, done.stdout) == (3, f"{tmp_path}\n")


def test_rmtree_removes_closed_directories_and_keeps_symlink_targets(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    home = tmp_path / "home"
    (home / "closed").mkdir(parents=True)
    (home / "closed" / "file").write_text("x")
    (home / "link").symlink_to(outside)
    (home / "closed").chmod(0)
    rmtree(home)
    assert not home.exists()
    assert (outside / "precious").read_text() == "keep"
