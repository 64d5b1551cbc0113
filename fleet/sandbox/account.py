"""The account sandbox sshd runs as, and the files and directories it reads."""

from __future__ import annotations

import os
import pwd
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from fleet.errors import ConfigError


@dataclass(frozen=True)
class Account:
    """Who sshd and its sessions run as. ``as_root``: we are root, so we chown and drop to it."""

    name: str
    uid: int
    gid: int
    home: str
    shell: str
    as_root: bool


def account_for(user: str) -> Account:
    """The sandbox account when root, else the current user."""
    if os.geteuid() != 0:
        try:
            me = pwd.getpwuid(os.geteuid())
        except KeyError as exc:
            raise ConfigError(f"uid {os.geteuid()} has no passwd entry: sshd needs one") from exc
        return Account(me.pw_name, me.pw_uid, me.pw_gid, me.pw_dir, me.pw_shell, as_root=False)
    try:
        entry = pwd.getpwnam(user)
    except KeyError as exc:
        raise ConfigError(
            f"the unprivileged account {user!r} the sandbox hosts run as does not exist",
            hint="run scripts/bootstrap.sh as root: it creates that account",
        ) from exc
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise ConfigError(f"the sandbox account {user!r} has uid or gid 0: refusing to use it")
    return Account(
        entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir, entry.pw_shell, as_root=True
    )


def write_file(path: Path, text: str, account: Account, mode: int) -> None:
    """Atomically write a file sshd or a session reads (root-owned, group = the account's)."""
    tmp = path.with_name(f".{path.name}.new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    if account.as_root:
        os.chown(tmp, 0, account.gid)
    tmp.chmod(mode if account.as_root else mode & 0o700)
    tmp.replace(path)


def make_dir(path: Path, account: Account, *, owned: bool) -> None:
    """A directory for sshd: ``owned`` ones (HOMEs, run/) belong to the account."""
    path.mkdir(exist_ok=True)
    if account.as_root:
        os.chown(path, account.uid if owned else 0, account.gid)
    path.chmod(0o700 if owned or not account.as_root else 0o750)


def fresh_dir(path: Path, account: Account) -> None:
    """Empty ``path`` (a HOME) and make it again, as a newly booted ramdisk or install has."""
    if path.exists():
        rmtree(path)
    make_dir(path, account, owned=True)


def rmtree(path: Path) -> None:
    """Remove a tree sessions wrote to. Never follows the symlinks they may have planted; makes
    the directories they closed (chmod 0) writable again, which matters when not root."""

    def unlock(_function: object, failed: str, _exc: object) -> None:
        parent = Path(failed).parent
        parent.chmod(0o700)
        if Path(failed).is_dir() and not Path(failed).is_symlink():
            Path(failed).chmod(0o700)
            shutil.rmtree(failed)
        else:
            Path(failed).unlink(missing_ok=True)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=unlock)
    else:
        shutil.rmtree(path, onerror=unlock)


def check_traversable(path: Path, account: Account) -> None:
    """Every parent of ``path`` must let the account through, or sshd cannot read its files."""
    for parent in path.parents:
        mode = parent.stat()
        ok = (
            mode.st_mode & 0o001
            or (mode.st_gid == account.gid and mode.st_mode & 0o010)
            or (mode.st_uid == account.uid and mode.st_mode & 0o100)
        )
        if not ok:
            raise ConfigError(
                f"{parent}: the account {account.name!r} cannot enter this directory",
                hint="choose a runtime_root under a world-traversable directory, e.g. /var/tmp",
            )
