"""The disk images of the sandbox's VM hosts, and reading a VM's disks from this machine's side.

``scripts/vm-images.sh`` builds the images from Debian packages (see its header) into a cache
directory named by the script's content hash; :func:`ensure_images` runs it only when that
directory is missing, so an unchanged script costs nothing after the first build.

The VMs boot the installed system by QEMU's direct kernel boot, but from the kernel and initramfs
that the installed system itself keeps in ``/boot`` (md2, RAID1 of the NVMe p2s), read from the
VM's own qcow2 at every power-on (:func:`extract_boot_files`), like a boot loader: so a plan that
runs ``update-initramfs -u`` boots its new initramfs, and a broken one fails to boot, as on a real
server. Like GRUB, the reader does not replay the ext4 journal: files written without a clean
unmount or a ``sync`` may be seen stale, as a real boot loader would see them.

Disks are only ever read here, from qcow2 files this sandbox made, with ``qemu-img`` (through
its ``raw`` driver's ``offset``/``size``) and ``debugfs`` (read-only): never a block device of this
machine, never a mount.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from fleet.errors import ConfigError, FleetError
from fleet.resources import shipped

log = logging.getLogger(__name__)

SCRIPT = shipped("scripts/vm-images.sh")
SECTOR = 512
MD_MAGIC = 0xA92B4EFC
_BUILD_TIMEOUT = 3600.0
_QEMU_IMG_TIMEOUT = 300.0
_SAFE_PATH = re.compile(r"[A-Za-z0-9/._+-]+")  # qemu's option syntax would need escaping beyond


def default_cache() -> Path:
    """``$FLEET_VM_CACHE``, else ``$XDG_CACHE_HOME/fleet/vm-images`` (``~/.cache``)."""
    if os.environ.get("FLEET_VM_CACHE"):
        return Path(os.environ["FLEET_VM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fleet" / "vm-images"


def script_hash(script: Path = SCRIPT) -> str:
    """The cache key: the first 16 hex digits of the build script's SHA-256 (as the script)."""
    return hashlib.sha256(script.read_bytes()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# the image set


@dataclass(frozen=True)
class VmImages:
    """One built image set (a cache directory) and what ``image.json`` says of it."""

    dir: Path
    kernel: str
    root_uuid: str
    cmdline: str
    nvme_mib: int
    hdd_stub_mib: int
    build_seconds: int

    @property
    def rescue_kernel(self) -> Path:
        return self.dir / "rescue.vmlinuz"

    @property
    def rescue_initrd(self) -> Path:
        return self.dir / "rescue.initrd"

    @property
    def nvme_bases(self) -> tuple[Path, Path]:
        return (self.dir / "nvme0.qcow2", self.dir / "nvme1.qcow2")

    @property
    def hdd_stub(self) -> Path:
        return self.dir / "hdd-stub.qcow2"


def load_images(directory: Path) -> VmImages:
    """The image set in ``directory`` (raises :class:`ConfigError` if incomplete)."""
    path = directory / "image.json"
    try:
        data = json.loads(path.read_text())
        images = VmImages(
            dir=directory,
            kernel=str(data["kernel"]),
            root_uuid=str(data["root_uuid"]),
            cmdline=str(data["cmdline"]),
            nvme_mib=int(data["nvme_mib"]),
            hdd_stub_mib=int(data["hdd_stub_mib"]),
            build_seconds=int(data.get("build_seconds", 0)),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path}: no usable VM image description",
            hint="build the images: scripts/vm-images.sh (as root)",
        ) from exc
    files = [images.rescue_kernel, images.rescue_initrd, *images.nvme_bases, images.hdd_stub]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ConfigError(f"VM images incomplete, missing: {', '.join(missing)}")
    return images


def find_images(cache: Path | None = None, script: Path = SCRIPT) -> VmImages | None:
    """The cached image set of the current build script, None when not built yet."""
    directory = (cache or default_cache()) / script_hash(script)
    if not (directory / "image.json").is_file():
        return None
    return load_images(directory)


def ensure_images(
    cache: Path | None = None,
    script: Path = SCRIPT,
    *,
    log_file: Path | None = None,
    timeout: float = _BUILD_TIMEOUT,
) -> VmImages:
    """The cached image set, built first by the script when missing (as root: minutes)."""
    found = find_images(cache, script)
    if found is not None:
        return found
    env = dict(os.environ, FLEET_VM_CACHE=str(cache or default_cache()))
    log.info("building the VM images with %s (cold build: several minutes)", script)
    began = time.monotonic()
    with open(log_file or os.devnull, "ab") as sink:
        try:
            done = subprocess.run(
                ["bash", str(script)],
                stdout=subprocess.PIPE,
                stderr=sink,
                env=env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise FleetError(f"{script}: no VM images after {timeout:.0f} s") from exc
    if done.returncode != 0:
        where = f"; see {log_file}" if log_file else ""
        raise FleetError(f"{script} failed with exit status {done.returncode}{where}")
    log.info("VM images built in %.0f s", time.monotonic() - began)
    return load_images(Path(done.stdout.decode().strip().splitlines()[-1]))


# ---------------------------------------------------------------------------------------------
# reading a VM's disks


def _checked_path(path: Path) -> str:
    text = str(Path(path).absolute())
    if not _SAFE_PATH.fullmatch(text):
        raise ConfigError(f"{text}: VM disk paths must be plain [A-Za-z0-9/._+-]")
    return text


def _qemu_img(*args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        done = subprocess.run(
            ["qemu-img", *args], capture_output=True, timeout=_QEMU_IMG_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FleetError(f"qemu-img {args[0]}: {exc}") from exc
    if done.returncode != 0:
        raise FleetError(f"qemu-img {' '.join(args)}: {done.stderr.decode().strip()[-500:]}")
    return done


def copy_region(image: Path, offset: int, size: int, dest: Path) -> None:
    """Copy bytes ``offset .. offset+size`` of the qcow2 ``image`` (with its backing chain) into
    the sparse raw file ``dest``. Shared read: works while QEMU has the image open, but then
    only regions the guest is not writing are consistent."""
    if offset < 0 or size <= 0 or offset % SECTOR or size % SECTOR:
        raise ValueError(f"region {offset}+{size} of {image}: not whole sectors")
    opts = (
        f"driver=raw,offset={offset},size={size},"
        f"file.driver=qcow2,file.file.driver=file,file.file.filename={_checked_path(image)}"
    )
    _qemu_img("convert", "-U", "--image-opts", opts, "-O", "raw", _checked_path(dest))


def read_region(image: Path, offset: int, size: int) -> bytes:
    """Bytes ``offset .. offset+size`` of the qcow2 ``image`` (small regions)."""
    with tempfile.TemporaryDirectory(prefix="fleet-vm-read-") as tmp:
        dest = Path(tmp) / "region.raw"
        copy_region(image, offset, size, dest)
        return dest.read_bytes()


@dataclass(frozen=True)
class Partition:
    """One GPT entry; ``start`` and ``size`` in bytes."""

    number: int
    start: int
    size: int
    type_guid: str
    guid: str
    name: str


def parse_gpt(head: bytes) -> list[Partition]:
    """The partitions of a GPT disk from its first 34 sectors (header at LBA 1)."""
    header = head[SECTOR : 2 * SECTOR]
    if header[:8] != b"EFI PART":
        return []
    entries_lba, count, entry_size = struct.unpack_from("<QII", header, 72)
    table = head[entries_lba * SECTOR :]
    parts = []
    for i in range(min(count, len(table) // max(entry_size, 1))):
        entry = table[i * entry_size : (i + 1) * entry_size]
        if entry[:16] == bytes(16):
            continue
        first, last = struct.unpack_from("<QQ", entry, 32)
        parts.append(
            Partition(
                number=i + 1,
                start=first * SECTOR,
                size=(last - first + 1) * SECTOR,
                type_guid=str(uuid.UUID(bytes_le=entry[:16])),
                guid=str(uuid.UUID(bytes_le=entry[16:32])),
                name=entry[56:128].decode("utf-16-le").rstrip("\0"),
            )
        )
    return parts


def read_gpt(image: Path) -> list[Partition]:
    return parse_gpt(read_region(image, 0, 34 * SECTOR))


@dataclass(frozen=True)
class MdSuperblock:
    """The identity fields of an md 1.x superblock (not its counters, which change at every
    assembly). ``data_offset`` in bytes from the start of the member."""

    set_uuid: str
    name: str
    level: int
    raid_disks: int
    data_offset: int
    dev_number: int
    device_uuid: str


def parse_md_superblock(block: bytes) -> MdSuperblock | None:
    """An md 1.x superblock (as at 4 KiB into a 1.2 member), None when there is none."""
    if len(block) < 256 or struct.unpack_from("<I", block, 0)[0] != MD_MAGIC:
        return None
    (level,) = struct.unpack_from("<i", block, 72)
    (raid_disks,) = struct.unpack_from("<I", block, 92)
    (data_offset,) = struct.unpack_from("<Q", block, 128)
    (dev_number,) = struct.unpack_from("<I", block, 160)
    return MdSuperblock(
        set_uuid=block[16:32].hex(),
        name=block[32:64].rstrip(b"\0").decode(errors="replace"),
        level=level,
        raid_disks=raid_disks,
        data_offset=data_offset * SECTOR,
        dev_number=dev_number,
        device_uuid=block[168:184].hex(),
    )


def read_md_superblock(image: Path, part: Partition) -> MdSuperblock | None:
    """The md 1.2 superblock of a partition (4 KiB from its start), None when there is none."""
    return parse_md_superblock(read_region(image, part.start + 4096, 4096))


def _version_key(name: str) -> list[tuple[int, str]]:
    """Sort key for kernel file names, numbers compared as numbers (as GRUB's version sort)."""
    return [(int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"(\d+)", name) if p]


def pick_kernel(names: list[str]) -> tuple[str, str] | None:
    """(vmlinuz, initrd) of the newest kernel that has both, as Debian's GRUB menu's default."""
    versions = [n[len("vmlinuz-") :] for n in names if n.startswith("vmlinuz-")]
    usable = [v for v in versions if f"initrd.img-{v}" in names]
    if not usable:
        return None
    newest = max(usable, key=_version_key)
    return f"vmlinuz-{newest}", f"initrd.img-{newest}"


def _debugfs(fs_image: Path, request: str) -> str:
    try:
        done = subprocess.run(
            ["debugfs", "-R", request, _checked_path(fs_image)],
            capture_output=True,
            timeout=_QEMU_IMG_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FleetError(f"debugfs {request!r} on {fs_image}: {exc}") from exc
    if done.returncode != 0:
        raise FleetError(f"debugfs {request!r} on {fs_image}: {done.stderr.decode()[-300:]}")
    return done.stdout.decode(errors="replace")


def list_root(fs_image: Path) -> list[str]:
    """Names of the regular files at the top of an ext2/3/4 image (``debugfs ls -p``)."""
    names = []
    for line in _debugfs(fs_image, "ls -p /").splitlines():
        fields = line.split("/")  # /inode/mode/uid/gid/name/size/
        if len(fields) >= 7 and fields[2].startswith("100"):
            names.append(fields[5])
    return names


def extract_boot_files(image: Path, dest: Path, *, partition: int = 2) -> tuple[Path, Path]:
    """Copy the newest kernel and its initramfs out of ``/boot`` (the md RAID1 on ``partition``
    of the NVMe ``image``) into ``dest``: (kernel, initrd). What a boot loader would load."""
    parts = {p.number: p for p in read_gpt(image)}
    if partition not in parts:
        raise FleetError(f"{image}: no partition {partition} (no installed system to boot)")
    part = parts[partition]
    member = read_md_superblock(image, part)
    offset = part.start + (member.data_offset if member else 0)
    fs_image = dest / "boot-fs.raw"
    copy_region(image, offset, part.size - (offset - part.start), fs_image)
    try:
        chosen = pick_kernel(list_root(fs_image))
        if chosen is None:
            raise FleetError(f"{image}: /boot has no kernel with an initramfs: nothing to boot")
        out = []
        for name, target in zip(chosen, ("vmlinuz", "initrd.img"), strict=True):
            path = dest / target
            path.unlink(missing_ok=True)
            _debugfs(fs_image, f"dump /{name} {_checked_path(path)}")
            if not path.is_file() or path.stat().st_size == 0:
                raise FleetError(f"{image}: could not read /boot/{name}")
            out.append(path)
    finally:
        fs_image.unlink(missing_ok=True)
    return out[0], out[1]


def _hash_region(image: Path, offset: int, size: int, scratch: Path) -> str:
    copy_region(image, offset, size, scratch)
    digest = hashlib.sha256()
    with open(scratch, "rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    scratch.unlink()
    return digest.hexdigest()


def hash_image(image: Path, size: int) -> str:
    """SHA-256 of the first ``size`` bytes of the qcow2 ``image`` (its whole contents)."""
    with tempfile.TemporaryDirectory(prefix="fleet-vm-sum-") as tmp:
        return _hash_region(image, 0, size, Path(tmp) / "image.raw")


def disk_checksums(image: Path, prefix: str) -> dict[str, str]:
    """Fingerprints of what no plan may change on a system disk: the partition table, every
    partition that is not an md member (ESP, swap, config drive) byte for byte, and the
    identity of each md member (array UUID, level, slot; not the counters that every assembly
    bumps). Keys: ``<prefix>:gpt``, ``<prefix>p<N>``, ``<prefix>p<N>:md``."""
    sums = {f"{prefix}:gpt": hashlib.sha256(read_region(image, 0, 34 * SECTOR)).hexdigest()}
    with tempfile.TemporaryDirectory(prefix="fleet-vm-sum-") as tmp:
        scratch = Path(tmp) / "part.raw"
        for part in read_gpt(image):
            member = read_md_superblock(image, part)
            key = f"{prefix}p{part.number}"
            if member is not None:
                sums[f"{key}:md"] = hashlib.sha256(repr(member).encode()).hexdigest()
            else:
                sums[key] = _hash_region(image, part.start, part.size, scratch)
    return sums


def qemu_img_create(path: Path, size_mib: int, backing: Path | None = None) -> None:
    """A sparse qcow2 file; with ``backing``, a copy-on-write overlay on it."""
    args = ["create", "-q", "-f", "qcow2"]
    if backing is not None:
        args += ["-b", _checked_path(backing), "-F", "qcow2"]
    _qemu_img(*args, _checked_path(path), f"{size_mib}M")


def have_tools() -> list[str]:
    """The host tools the VM hosts need that are missing (empty: all there)."""
    tools = ("qemu-system-x86_64", "qemu-img", "debugfs")
    return [tool for tool in tools if shutil.which(tool) is None]
