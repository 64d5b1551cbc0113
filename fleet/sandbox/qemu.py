"""QEMU processes of the sandbox's VM hosts, from outside: QMP, the accelerator, the SSH banner
and the record of running QEMUs (to kill them by PID after a crash of the process that ran them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from fleet.errors import ConfigError, FleetError
from fleet.sandbox.vm_images import VmImages
from fleet.sandbox.vm_spec import QEMU

log = logging.getLogger(__name__)

RECORD_FILE = "vms.json"
QUIT_TIMEOUT = 15.0
QMP_TIMEOUT = 10.0
_KVM_PROBE_TIMEOUT = 20.0


# ---------------------------------------------------------------------------------------------
# QMP


def qmp_lines(conn: socket.socket) -> Any:
    """Yield the JSON messages of a QMP connection (one per line)."""
    buffer = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)


def qmp_connect(path: Path, timeout: float = QMP_TIMEOUT) -> socket.socket:
    """A QMP connection past the greeting and capability negotiation."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(str(path))
        messages = qmp_lines(conn)
        next(messages)  # greeting
        conn.sendall(b'{"execute": "qmp_capabilities"}\n')
        for message in messages:
            if "return" in message or "error" in message:
                break
    except BaseException:
        conn.close()
        raise
    return conn


def qmp_execute(path: Path, command: str, timeout: float = QMP_TIMEOUT) -> Any:
    """Run one QMP command on the socket at ``path``; its ``return`` value."""
    try:
        with qmp_connect(path, timeout) as conn:
            conn.sendall(json.dumps({"execute": command}).encode() + b"\n")
            for message in qmp_lines(conn):
                if "error" in message:
                    raise FleetError(f"QMP {command}: {message['error']}")
                if "return" in message:
                    return message["return"]
    except (OSError, ValueError, StopIteration) as exc:
        raise FleetError(f"QMP {command} on {path}: {exc}") from exc
    return None  # the connection closed first: QEMU is exiting (as after "quit")


# ---------------------------------------------------------------------------------------------
# the accelerator


def _kvm_boots(images: VmImages, timeout: float) -> bool:
    """Does a KVM guest get as far as its kernel's first panic (no root: it reboots, and
    ``-no-reboot`` ends QEMU)? Here KVM guests were seen hanging before printing anything."""
    command = [QEMU, "-machine", "q35", "-accel", "kvm", "-cpu", "host", "-m", "256"]
    command += ["-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio"]
    command += ["-kernel", str(images.rescue_kernel), "-append", "console=ttyS0 panic=-1"]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False
    return b"Kernel panic" in done.stdout or b"Linux version" in done.stdout


def choose_accel(images: VmImages, *, timeout: float = _KVM_PROBE_TIMEOUT) -> str:
    """``kvm`` when a short KVM boot works, else ``tcg``; ``$FLEET_VM_ACCEL`` overrides. The
    probe's answer is kept next to the images for the rest of this machine's uptime."""
    forced = os.environ.get("FLEET_VM_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    memo = images.dir.parent / f".accel-{boot_id}"
    with contextlib.suppress(OSError):
        answer = memo.read_text().strip()
        if answer in ("kvm", "tcg"):
            return answer
    answer = "kvm" if _kvm_boots(images, timeout) else "tcg"
    with contextlib.suppress(OSError):
        memo.write_text(answer + "\n")
    log.info("VM accelerator: %s", answer)
    return answer


# ---------------------------------------------------------------------------------------------
# QEMU processes


def banner(address: str, port: int, timeout: float = 5.0) -> bool:
    """Does an SSH server answer on address:port (its ``SSH-`` banner)? QEMU accepts the TCP
    connection itself and closes it while the guest's sshd is not up yet."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            return conn.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def _qemu_pid_of(pid: int, marker: str) -> bool:
    """Is ``pid`` a QEMU of ours (its command line carries our ``-name`` marker)?"""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return marker.encode() in cmdline.read().split(b"\0")
    except OSError:
        return False


def stop_recorded(state_dir: Path) -> int:
    """Kill the QEMU processes recorded in ``state_dir`` (only those whose command line still
    carries our marker: a PID reused by another process is left alone) and delete the VMs'
    directories (overlays). The cleanup after a process that ran a :class:`VmFleet` died.
    Returns how many processes were killed."""
    path = Path(state_dir) / RECORD_FILE
    if not path.exists():
        return 0
    try:
        record = json.loads(path.read_text())
        qemus = {str(m): int(p) for m, p in record["qemu"].items()}
        dirs = [Path(d) for d in record["dirs"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path}: unreadable VM record") from exc
    killed = 0
    for marker, pid in qemus.items():
        if _qemu_pid_of(pid, marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
            _wait_gone(pid)
    for directory in dirs:
        if directory.parent == Path(state_dir).absolute() and directory.exists():
            shutil.rmtree(directory)
    path.unlink()
    return killed


def _wait_gone(pid: int, timeout: float = QUIT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        time.sleep(0.05)
    raise FleetError(f"QEMU {pid} survived SIGKILL")
