"""The sandbox's VM hosts: QEMU machines that look like OVH hybrid servers to fleet over SSH.

Each VM has

* two NVMe disks (``nvme0n1``, ``nvme1n1``): copy-on-write qcow2 overlays on the installed-system
  image (``scripts/vm-images.sh``), laid out as OVH's soft-RAID install: p1 ESP (511 MiB, label
  ``EFI_SYSPART``), p2 ``/boot`` (md2, RAID1), p3 ``/`` (md3, RAID1), p4 swap (``swap-nvme0n1p4``),
  p5 ``config-2`` (iso9660) on ``nvme0n1`` only; arrays named ``md2``/``md3`` (no host prefix);
* ``hdd_count`` HDDs (default 2, ``sda``/``sdb``) on the q35's AHCI controller: SATA, rotational
  (``rotation_rate=7200``, lsblk ``ROTA=1 TRAN=sata``), model ``HGST HUS726040AL``, a serial per VM
  and disk (:attr:`VmSpec.hdd_serials`), sparse qcow2 of ``hdd_size_mib`` (default 4 GiB), blank,
  or with ``hdd_stub=True`` OVH's leftover 511 MiB partition (GPT, ``primary``, ``boot`` flag);
* optionally other shapes (:mod:`fleet.sandbox.vm_spec`): HDDs of mixed sizes or on swapped
  ports, a removable USB stick, a BMC virtual-media disk, system disks on SATA HDDs;
* user-mode networking, the guest reachable only as ``address:port`` -> guest port 22, on
  loopback (``restrict=on``: the guest cannot reach any network);
* two boot modes, as the fake OVH API's boot id selects:

  - ``disk``: the installed Debian. QEMU boots, like a boot loader would, the newest kernel and
    initramfs found in the VM's own ``/boot`` (md2), read from its qcow2 at every power-on; the
    initramfs assembles md3 and mounts it as ``/``. Host key and authorised key (the operator's)
    are set at the first boot of an install and kept from then on; hostname ``spec.hostname``.
  - ``rescue``: OVH-style Debian rescue (hostname ``rescue12-customer-eu``), a RAM disk: a new
    SSH host key at every boot, only the ``rescueSshKey`` of that boot authorised (none given:
    nobody gets in). Its udev may auto-assemble the NVMe arrays (as md127...), as OVH's does.

Power, as :class:`fleet.sandbox.hosts.HostFleet`: :meth:`VmFleet.on_power` takes the fake API's
power events (``off`` when a reboot task reaches ``doing``, ``on`` in the new mode at ``done``)
and applies them on a worker thread per VM, so the API's ticker never waits for QEMU; a reboot is
a power cycle (QEMU quit, QEMU started again on the same disks), not a firmware reboot, which
would cost minutes under TCG. A reboot from inside the guest (``reboot``) exits QEMU
(``-no-reboot``); the VM is then started again in the mode the API's boot id selects *now*
(``boot_mode`` callback), as a server netbooting from OVH would. A guest ``poweroff`` leaves it
off. QEMU is driven through QMP (``quit``, ``system_powerdown``, ``query-status``).

Under TCG (2 cores, no usable KVM) a VM answers SSH 70-80 s after power-on on disk, 45-50 s in
rescue, longer when several boot at once. Writes the guest has not synced when the power is cut
(an API hard reboot) can be lost, as on real hardware: ``sync`` before rebooting.

Use from tests and plans::

    images = ensure_images()                       # builds once (root, minutes), then cached
    vms = VmFleet([VmSpec("vm-01", "127.0.0.1", 22201)], state_dir=d, images=images,
                  operator_public_key=pub, sandbox_id="t1")
    vms.start()                                    # boots all in disk mode, waits for SSH
    vms.port("vm-01"), vms.address("vm-01"), vms.login_user   # ssh root@127.0.0.1 -p 22201
    vms.disk_host_key("vm-01")                     # (type, base64) of the installed system
    vms.power_on("vm-01", "rescue", rescue_ssh_key=pub)    # or via the fake API's reboot
    vms.wait_ssh("vm-01")
    vms.nvme_checksums("vm-01")                    # system-disk fingerprints
    vms.stop()                                     # no QEMU process, no overlay left

Files and processes: :mod:`fleet.sandbox.vm_machine`, :mod:`fleet.sandbox.qemu`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet.errors import FleetError, UsageError
from fleet.sandbox.hosts import PowerEventLike
from fleet.sandbox.qemu import (
    RECORD_FILE,
    banner,
    choose_accel,
    qmp_execute,
    stop_recorded,
)
from fleet.sandbox.vm_images import (
    VmImages,
)
from fleet.sandbox.vm_machine import VmMachine, check_public_key
from fleet.sandbox.vm_spec import (
    NAME_PATTERN,
    BootSpec,
    Mode,
    VmSpec,
    free_port,
    qemu_command,
    validate,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "BootSpec", "Mode", "VmFleet", "VmSpec", "banner", "free_port", "qemu_command",
    "stop_recorded",
]  # fmt: skip

log = logging.getLogger(__name__)

RESCUE_HOSTNAME = "rescue12-customer-eu"
LOGIN_USER = "root"
_MODE_ALIASES: dict[str, Mode] = {"disk": "disk", "harddisk": "disk", "rescue": "rescue"}
_SLOT_TIMEOUT = 900.0


# ---------------------------------------------------------------------------------------------
# the fleet


class VmFleet:
    """The sandbox's VM hosts: start, power, stop. Thread-safe per VM.

    ``start`` and ``stop`` must not run concurrently with other calls. ``boot_mode(name)``
    returns the (mode, rescue key) a reboot lands in now (the fake API's boot id), used when
    the guest reboots itself; without it the VM comes back in its current mode.
    """

    def __init__(
        self,
        specs: Sequence[VmSpec],
        *,
        state_dir: Path,
        images: VmImages,
        operator_public_key: str,
        sandbox_id: str,
        boot_mode: Callable[[str], tuple[str | None, str | None]] | None = None,
        accel: str | None = None,
        boot_concurrency: int | None = None,
    ) -> None:
        validate(specs)
        if not NAME_PATTERN.fullmatch(sandbox_id):
            raise UsageError(f"sandbox id {sandbox_id!r}: use [A-Za-z0-9._-] only")
        for spec in specs:
            if spec.hdd_stub and spec.hdd_size_mib != images.hdd_stub_mib:
                raise UsageError(
                    f"{spec.name}: hdd_stub needs hdd_size_mib={images.hdd_stub_mib} "
                    "(the size of the stub image)"
                )
        self._operator_key = check_public_key(operator_public_key, "operator public key")
        self._state_dir = Path(state_dir).absolute()
        self._images = images
        self._sandbox_id = sandbox_id
        self._boot_mode = boot_mode
        self._accel = accel
        self._sockets = Path(tempfile.mkdtemp(prefix="fleet-vm-"))
        keys = self._state_dir / "host-keys"
        self._vms = {
            s.name: VmMachine(s, self._state_dir / s.name, self._sockets, images, keys,
                              f"fleet-vm:{sandbox_id}:{s.name}")
            for s in specs
        }  # fmt: skip
        self._started = False
        self._record_lock = threading.Lock()
        # Emulated boots share the cores: more at once than cores makes every one of them slow
        # enough to hit the guests' own timeouts. A boot holds a slot until SSH answers.
        slots = boot_concurrency or os.cpu_count() or 1
        self._boot_slots = threading.BoundedSemaphore(max(1, slots))

    # -- queries ---------------------------------------------------------------------------

    @property
    def specs(self) -> tuple[VmSpec, ...]:
        return tuple(vm.spec for vm in self._vms.values())

    @property
    def login_user(self) -> str:
        """The user fleet logs in as, on the installed system and in rescue alike."""
        return LOGIN_USER

    @property
    def accel(self) -> str | None:
        """``kvm`` or ``tcg`` once started."""
        return self._accel

    def address(self, name: str) -> str:
        return self._vm(name).spec.address

    def port(self, name: str) -> int:
        return self._vm(name).spec.port

    def mode(self, name: str) -> Mode | None:
        """The mode the VM was last powered on in, None when off."""
        return self._vm(name).mode

    def boots(self, name: str) -> int:
        """How many times QEMU was started for this VM."""
        return self._vm(name).boots

    def disk_host_key(self, name: str) -> tuple[str, str]:
        """(type, base64) of the installed system's host key."""
        key_type, blob = self._vm(name).disk_public.split()[:2]
        return key_type, blob

    def console_log(self, name: str) -> Path:
        """The VM's serial console (kernel and boot messages), appended across boots."""
        return self._vm(name).console

    def last_error(self, name: str) -> str | None:
        """The last failure of a power event applied in the background, if any."""
        return self._vm(name).last_error

    def pids(self) -> dict[str, int]:
        """QEMU PID of every running VM."""
        return {n: vm.process.pid for n, vm in self._vms.items() if vm.process is not None}

    def known_hosts_lines(self) -> list[str]:
        """The installed systems' host keys in known_hosts format."""
        lines = []
        for vm in self._vms.values():
            key_type, blob = vm.disk_public.split()[:2]
            lines.append(f"[{vm.spec.address}]:{vm.spec.port} {key_type} {blob}")
        return lines

    def qmp(self, name: str, command: str) -> Any:
        """Run a QMP command (e.g. ``query-status``) on the VM's QEMU."""
        return qmp_execute(self._vm(name).qmp, command)

    def nvme_checksums(self, name: str) -> dict[str, str]:
        """Fingerprints of both system disks (see :meth:`VmMachine.system_checksums`)."""
        return self._vm(name).system_checksums()

    def usb_checksums(self, name: str) -> dict[str, str]:
        """SHA-256 of the USB stick's and the virtual-media disk's whole contents."""
        return self._vm(name).usb_checksums()

    def _vm(self, name: str) -> VmMachine:
        try:
            return self._vms[name]
        except KeyError:
            raise UsageError(f"{name}: no such VM host") from None

    def _require_started(self) -> None:
        if not self._started:
            raise UsageError(f"sandbox {self._sandbox_id}: VM hosts are not started")

    # -- start and stop --------------------------------------------------------------------

    def start(
        self, initial_mode: Mode = "disk", *, wait: bool = True, timeout: float = 600.0
    ) -> None:
        """Make every VM's disks and boot them all; with ``wait``, return once all answer SSH."""
        if initial_mode not in ("disk", "rescue"):
            raise UsageError(f"unknown boot mode {initial_mode!r}")
        if self._started:
            raise UsageError(f"sandbox {self._sandbox_id}: VM hosts already started")
        began = time.monotonic()
        stop_recorded(self._state_dir)  # a previous run of this sandbox that crashed
        if self._accel is None:
            self._accel = choose_accel(self._images)
        self._started = True
        try:
            for vm in self._vms.values():
                vm.prepare(self._operator_key)
                vm.worker = ThreadPoolExecutor(1, thread_name_prefix=f"vm-{vm.spec.name}")
                self.power_on(vm.spec.name, initial_mode)
            if wait:
                self.wait_ssh_all(timeout)
        except BaseException:
            self.stop()
            raise
        log.info(
            "%d VM hosts up in %.0f s (%s)", len(self._vms), time.monotonic() - began, self._accel
        )

    def stop(self) -> None:
        """Quit every QEMU (SIGKILL by PID if it does not), delete the overlays. Idempotent."""
        self._started = False  # from now on power calls are refused
        for vm in self._vms.values():
            if vm.worker is not None:
                vm.worker.shutdown(wait=True, cancel_futures=True)
                vm.worker = None
        for vm in self._vms.values():
            with vm.lock:
                self._halt(vm)
            if vm.dir.exists():
                shutil.rmtree(vm.dir)
        stop_recorded(self._state_dir)
        shutil.rmtree(self._sockets, ignore_errors=True)

    # -- power -----------------------------------------------------------------------------

    def power_on(
        self,
        name: str,
        mode: Mode,
        rescue_ssh_key: str | None = None,
        reinstalled: bool = False,
        installed_ssh_key: str | None = None,
    ) -> None:
        """Boot ``name`` in ``mode`` (a running VM is powered off first). Returns once QEMU
        runs, not when SSH answers (:meth:`wait_ssh`). ``reinstalled``: fresh installed-system
        disks from the image, a new host key, ``installed_ssh_key`` (default: the operator's)."""
        if mode not in ("disk", "rescue"):
            raise UsageError(f"{name}: unknown boot mode {mode!r}")
        if rescue_ssh_key:
            rescue_ssh_key = check_public_key(rescue_ssh_key, f"{name}: rescue key")
        vm = self._vm(name)
        with vm.lock:
            self._require_started()
            self._halt(vm)
            if reinstalled:
                vm.reinstall(installed_ssh_key or self._operator_key)
            boot = vm.boot_spec(mode, rescue_ssh_key)
            self._take_boot_slot(vm)
            try:
                self._spawn(vm, boot)
            except BaseException:
                self._boot_slots.release()
                raise
            threading.Thread(
                target=self._hold_boot_slot, args=(vm, vm.process), daemon=True
            ).start()

    def _take_boot_slot(self, vm: VmMachine) -> None:
        """Wait for a free boot slot (bounded; given up when the fleet stops)."""
        deadline = time.monotonic() + _SLOT_TIMEOUT
        while not self._boot_slots.acquire(timeout=1.0):
            if not self._started:
                raise UsageError(f"{vm.spec.name}: VM hosts stopped while waiting to boot")
            if time.monotonic() > deadline:
                raise FleetError(f"{vm.spec.name}: no boot slot free for {_SLOT_TIMEOUT:.0f} s")

    def _hold_boot_slot(self, vm: VmMachine, process: subprocess.Popen[bytes] | None) -> None:
        """Free the boot slot once SSH answers, QEMU exits, or after a bounded time."""
        deadline = time.monotonic() + _SLOT_TIMEOUT
        try:
            while process is not None and process.poll() is None and self._started:
                if time.monotonic() > deadline or banner(vm.spec.address, vm.spec.port):
                    break
                time.sleep(1.0)
        finally:
            self._boot_slots.release()

    def power_off(self, name: str) -> None:
        """Cut the power: QEMU quits at once (the guest does not shut down)."""
        vm = self._vm(name)
        with vm.lock:
            self._require_started()
            self._halt(vm)

    def shutdown(self, name: str, timeout: float = 120.0) -> None:
        """Press the power button (ACPI): the guest shuts down cleanly, then QEMU quits."""
        vm = self._vm(name)
        with vm.lock:
            self._require_started()
            process = vm.process
            if process is None:
                return
            vm.expected_exit = True
            qmp_execute(vm.qmp, "system_powerdown")
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s: no clean shutdown within %.0f s; cutting power", name, timeout)
            self._halt(vm)

    def on_power(self, name: str, event: PowerEventLike) -> None:
        """Queue a power event of the fake OVH API (``kind`` "off" or "on") for this VM's
        worker; returns at once (a VM boot takes longer than the API's ticker may wait)."""
        vm = self._vm(name)
        mode = _MODE_ALIASES.get(event.mode)
        if event.kind not in ("off", "on") or mode is None:
            raise UsageError(f"{name}: unknown power event {event.kind!r} / {event.mode!r}")
        installed = getattr(event, "installed_ssh_key", None)
        action: Callable[[], None]
        if event.kind == "off":
            action = lambda: self.power_off(name)  # noqa: E731
        else:
            action = lambda: self.power_on(  # noqa: E731
                name,
                mode,
                rescue_ssh_key=event.rescue_ssh_key,
                reinstalled=event.reinstalled,
                installed_ssh_key=installed if isinstance(installed, str) else None,
            )
        self._submit(vm, action, f"power {event.kind} {event.mode}")

    def _submit(self, vm: VmMachine, action: Callable[[], None], what: str) -> None:
        worker = vm.worker
        if worker is None:
            return  # stopped
        with vm.lock:
            vm.queued += 1
        try:
            worker.submit(self._run_logged, vm, action, what)
        except RuntimeError:
            with vm.lock:
                vm.queued -= 1  # shut down meanwhile

    def _run_logged(self, vm: VmMachine, action: Callable[[], None], what: str) -> None:
        try:
            action()
            vm.last_error = None
        except Exception as exc:
            vm.last_error = f"{what}: {exc}"
            log.exception("%s: %s failed", vm.spec.name, what)
        finally:
            with vm.lock:
                vm.queued -= 1

    # -- QEMU processes --------------------------------------------------------------------

    def _spawn(self, vm: VmMachine, boot: BootSpec) -> None:
        """Start QEMU for ``boot`` and a thread that watches it (caller holds ``vm.lock``)."""
        assert self._accel is not None
        process = vm.launch(boot, self._accel)
        self._record()
        watcher = threading.Thread(
            target=self._watch, args=(vm, process), name=f"qmp-{vm.spec.name}", daemon=True
        )
        watcher.start()

    def _halt(self, vm: VmMachine) -> None:
        """Power off (see :meth:`VmMachine.halt`) and update the record of QEMU processes."""
        vm.halt()
        self._record()

    def _watch(self, vm: VmMachine, process: subprocess.Popen[bytes]) -> None:
        """Follow QEMU's events until it exits; a guest reboot powers the VM on again."""
        reason = None
        try:
            reason = vm.shutdown_reason(process)
        except Exception:
            log.exception("%s: watching QEMU %d failed", vm.spec.name, process.pid)
        process.wait()
        with vm.lock:  # the reboot is queued under the lock: wait_ssh never sees a gap
            if vm.process is not process or vm.expected_exit:
                return  # we stopped it, or it was replaced
            vm.process, vm.mode = None, None
            if reason == "guest-reset":
                log.info("%s: the guest rebooted; booting it again", vm.spec.name)
                self._submit(vm, lambda: self._reboot_after_guest(vm), "guest reboot")
                return
        if reason == "guest-shutdown":
            log.info("%s: the guest powered off", vm.spec.name)
        else:
            vm.last_error = f"QEMU exited ({process.returncode}, {reason}): {vm.console_tail()}"
            log.error("%s: %s", vm.spec.name, vm.last_error)

    def _reboot_after_guest(self, vm: VmMachine) -> None:
        """After a guest reboot: boot what the API's boot id selects now (or the same mode)."""
        with vm.lock:
            if not self._started or vm.process is not None:
                return  # stopped, or powered on by an API event meanwhile
            mode: str | None = "disk"
            key = vm.rescue_key
            if self._boot_mode is not None:
                mode, key = self._boot_mode(vm.spec.name)
            if mode not in ("disk", "rescue"):
                log.info("%s: rebooted to %s: stays off", vm.spec.name, mode)
                return
            self.power_on(vm.spec.name, "rescue" if mode == "rescue" else "disk", key)

    def _record(self) -> None:
        """What :func:`stop_recorded` needs to find our QEMU processes after a crash."""
        with self._record_lock:
            record = {
                "sandbox_id": self._sandbox_id,
                "qemu": {
                    vm.marker: vm.process.pid for vm in self._vms.values() if vm.process is not None
                },
                "dirs": [str(vm.dir) for vm in self._vms.values()],
            }
            self._state_dir.mkdir(parents=True, exist_ok=True)
            tmp = self._state_dir / f".{RECORD_FILE}.new"
            tmp.write_text(json.dumps(record, indent=1) + "\n")
            tmp.replace(self._state_dir / RECORD_FILE)

    # -- waiting for SSH -------------------------------------------------------------------

    def wait_ssh(self, name: str, timeout: float = 600.0) -> float:
        """Wait until the VM's sshd sends its banner; the seconds waited. Raises with the
        console's last lines when QEMU dies or the time runs out."""
        vm = self._vm(name)
        began = time.monotonic()
        while True:
            if banner(vm.spec.address, vm.spec.port):
                return time.monotonic() - began
            process = vm.process  # no lock: a power-on may hold it while waiting for a slot
            off = process is None or process.poll() is not None
            if off and not vm.queued:  # and no power-on on its way
                raise FleetError(
                    f"{name}: powered off while waiting for SSH "
                    f"({vm.last_error or 'no error'}): {vm.console_tail()[-600:]}"
                )
            if time.monotonic() - began > timeout:
                raise FleetError(
                    f"{name}: no SSH on {vm.spec.address}:{vm.spec.port} after {timeout:.0f} s; "
                    f"console: {vm.console_tail()[-600:]}"
                )
            time.sleep(1.0)

    def wait_ssh_all(self, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        for name in self._vms:
            self.wait_ssh(name, max(1.0, deadline - time.monotonic()))
