"""The hybrid-raid plan's shell steps. Commands use only ``facts.*`` values (validated per host
by the guard) and plan vars for the plan-level ``converged`` check; every value arrives
shell-quoted. Each destructive step first re-checks every disk's serial (:data:`IDENTITY`).
"""

from __future__ import annotations

#: Written into the installed system after update-initramfs: the hash of the mdadm.conf it saw.
INITRAMFS_STAMP = "/var/lib/fleet/hybrid-raid.initramfs"

#: Before anything destructive: each disk path still is the disk with the serial the guard saw.
IDENTITY = (
    "for pair in {{ facts.disk_ids }}; do d=${pair%%=*}; s=${pair#*=}; "
    '[ "$(lsblk -dno SERIAL "$d" 2>/dev/null | sed \'s/^ *//;s/ *$//\')" = "$s" ] || '
    '{ echo "$d is not the disk with serial $s: refusing" >&2; exit 1; }; done'
)
#: udev stays out of the way while arrays are stopped and signatures erased: its queued events
#: run afterwards, on devices that carry nothing any more (else it re-assembles what was stopped).
_UDEV_PAUSE = (
    "udevadm settle 2>/dev/null || true\n"
    "udevadm control --stop-exec-queue\n"
    "trap 'udevadm control --start-exec-queue' EXIT\n"
)
_UDEV_RESUME = "udevadm control --start-exec-queue; trap - EXIT; udevadm settle 2>/dev/null || true"
_DEVS = 'devs() { lsblk -lnpo NAME,TYPE "$1" | awk \'$2=="disk" || $2=="part" {print $1}\'; }\n'
_ZERO_MD = (
    'if mdadm --examine --export "$x" 2>/dev/null | grep -q "^MD_UUID="; then '
    'mdadm --zero-superblock "$x"; fi\n'
)
#: The wipe-listed disks are blank: no partition, no signature, no md superblock.
BLANK = (
    "for d in {{ facts.wipe_disks }}; do\n"
    '  [ "$(lsblk -lnpo NAME "$d" | wc -l)" -eq 1 ] || exit 1\n'
    '  [ -z "$(wipefs -n "$d" 2>/dev/null)" ] || exit 1\n'
    '  blkid -p "$d" >/dev/null 2>&1; [ $? -eq 2 ] || exit 1\n'
    '  ! mdadm --examine --export "$d" 2>/dev/null | grep -q "^MD_UUID=" || exit 1\n'
    "done"
)
#: Stop every array using a wipe-listed disk, zero the superblocks, wipe partitions then disk.
WIPE = (
    "set -e; " + IDENTITY + "\n" + _DEVS + _UDEV_PAUSE + "for d in {{ facts.wipe_disks }}; do\n"
    '  for x in $(devs "$d"); do for h in /sys/class/block/${x##*/}/holders/md*; do\n'
    '    [ -e "$h" ] || continue; echo "stopping /dev/${h##*/} (it uses $x)"\n'
    '    mdadm --stop "/dev/${h##*/}"\n'
    "  done; done\n"
    "done\n"
    "for d in {{ facts.wipe_disks }}; do\n"
    '  for x in $(devs "$d" | sort -r); do ' + _ZERO_MD + '  wipefs -a "$x"; done\n'
    "done\n" + _UDEV_RESUME
)
#: One GPT partition with the raid flag on every disk (parted -m: disk line, then partitions).
LAYOUT = (
    'for d in {{ facts.disks }}; do parted -s -m "$d" unit s print 2>/dev/null | '
    'awk -F: \'NR==2 && $6!="gpt" {bad=1} NR>2 {n++; if ($7 !~ /raid/) bad=1} '
    "END {exit (bad || n!=1)}' || exit 1; done"
)
#: Partitioning cannot hold udev off (parted waits for it): instead the first and last 4 MiB of
#: each disk are zeroed first, where the new partition's md superblock would sit (1.x at its
#: start, 0.90/1.0 at its end), so that no old array's superblock shows through for udev.
PARTITION = (
    "set -e; " + IDENTITY + "\nudevadm settle 2>/dev/null || true\nfor d in {{ facts.disks }}; do\n"
    '  for x in $(lsblk -lnpo NAME,TYPE "$d" | awk \'$2=="part" {print $1}\'); do wipefs -a "$x"; done\n'
    '  wipefs -a "$d"; mib=$(( $(blockdev --getsize64 "$d") / 1048576 ))\n'
    '  dd if=/dev/zero of="$d" bs=1M count=4 conv=fsync,notrunc status=none\n'
    '  dd if=/dev/zero of="$d" bs=1M count=4 seek=$((mib - 4)) conv=fsync,notrunc status=none\n'
    '  parted -s -a optimal "$d" mklabel gpt mkpart primary 0% 100% set 1 raid on\n'
    "done\n"
    "udevadm settle 2>/dev/null || true\n"
    'for x in {{ facts.members }}; do i=0; while [ ! -b "$x" ] && [ $i -lt 40 ]; do sleep 0.5; '
    "i=$((i+1)); done; " + _ZERO_MD + '  wipefs -a "$x"; done'
)
ALIGNED = 'for d in {{ facts.disks }}; do parted -s "$d" align-check optimal 1 || exit 1; done'
#: Every member carries a superblock of one array fleet made here: its marker name (or the UUID
#: recorded for this host), our level and member count.
ARRAY_EXISTS = (
    "u=; for m in {{ facts.members }}; do\n"
    '  e=$(mdadm --examine --export "$m" 2>/dev/null) || exit 1\n'
    '  echo "$e" | grep -qx MD_LEVEL={{ facts.raid_level }} || exit 1\n'
    '  echo "$e" | grep -qx MD_DEVICES={{ facts.member_count }} || exit 1\n'
    "  n=$(echo \"$e\" | sed -n 's/^MD_NAME=//p'); x=$(echo \"$e\" | sed -n 's/^MD_UUID=//p')\n"
    '  [ -n "$x" ] || exit 1\n'
    '  [ "$n" = {{ facts.array_name }} ] || [ "$x" = {{ facts.existing_uuid }} ] || exit 1\n'
    '  [ -z "$u" ] || [ "$u" = "$x" ] || exit 1; u=$x\n'
    "done"
)
CREATE = (
    "set -e; " + IDENTITY + "\nmdadm --create {{ facts.md_path }} --run --metadata=1.2 "
    "--homehost={{ facts.homehost }} --name={{ facts.md_name }} --level={{ facts.level }} "
    "--raid-devices={{ facts.member_count }} {{ facts.create_flags | option }} {{ facts.members }}"
)
#: Every member is in an active array in /proc/mdstat.
ASSEMBLED = (
    'for m in {{ facts.members }}; do grep -Eq "^md[^ ]* : active .*[[:space:]]${m##*/}\\[" '
    "/proc/mdstat || exit 1; done"
)
#: Assemble fleet's own array by its UUID (never with --force: a failed array stays down).
ASSEMBLE = (
    "set -e; for m in {{ facts.members }}; do\n"
    '  for x in $(awk -v m="${m##*/}[" \'$2==":" && $3=="inactive" '
    '{for (i=4; i<=NF; i++) if (index($i, m)==1) print $1}\' /proc/mdstat); do mdadm --stop "/dev/$x"; done\n'
    "done\n"
    "set -- {{ facts.members }}\n"
    "u=$(mdadm --examine --export \"$1\" | sed -n 's/^MD_UUID=//p')\n"
    'mdadm --assemble {{ facts.md_path }} --run --uuid="$u" {{ facts.members }}'
)
FS_OK = (
    'e=$(blkid -p -o export {{ facts.md_device }}) && echo "$e" | grep -qx TYPE={{ facts.fs }} '
    '&& echo "$e" | grep -qx LABEL={{ facts.label }}'
)
MKFS = (
    "t=$(blkid -p -o export {{ facts.md_device }} 2>/dev/null | sed -n 's/^TYPE=//p')\n"
    'if [ -n "$t" ] && [ {{ facts.format_over }} != yes ]; then\n'
    '  echo {{ facts.md_device }} "already carries $t: not formatting over it '
    "(list the member disks' serials in wipe to allow it)\" >&2; exit 1\n"
    "fi\n"
    "{{ facts.mkfs | option }} -L {{ facts.label }} {{ facts.md_device }}"
)
MOUNT_ROOT_OK = (
    'R={{ facts.root }}; mountpoint -q "$R" && [ -f "$R/etc/os-release" ] && '
    "findmnt -n -o OPTIONS --mountpoint \"$R\" | grep -q '^rw' && "
    'mountpoint -q "$R/dev" && mountpoint -q "$R/proc" && mountpoint -q "$R/sys" && '
    '{ ! awk \'$1 !~ /^#/ && $2=="/boot"\' "$R/etc/fstab" | grep -q . || mountpoint -q "$R/boot"; }'
)
#: Mount the installed system read-write with /dev, /proc, /sys and /boot. Its root is the
#: filesystem the facts stage found (``root_uuid``: its /etc/fstab mounts "/" from itself); else
#: it is looked for by content, on the system's own arrays only. Only the system's arrays are
#: assembled (by UUID), never one fleet did not identify as the system's.
MOUNT_ROOT = (
    'set -e; R={{ facts.root }}; mkdir -p "$R"\n'
    'if ! mountpoint -q "$R"; then\n'
    "  for u in {{ facts.system_arrays }}; do "
    'mdadm --assemble --scan --uuid="$u" >/dev/null 2>&1 || true; done\n'
    "  udevadm settle 2>/dev/null || true\n"
    "  found=$(findfs UUID={{ facts.root_uuid }} 2>/dev/null || true)\n"
    '  if [ -z "$found" ]; then for u in {{ facts.system_arrays }}; do\n'
    '    md=$(readlink -f "/dev/disk/by-id/md-uuid-$u" 2>/dev/null) && [ -b "$md" ] || continue\n'
    '    mount -o ro "$md" "$R" 2>/dev/null || continue\n'
    '    want=$(awk \'$1 !~ /^#/ && $2=="/" {print $1}\' "$R/etc/fstab" 2>/dev/null || true)\n'
    "    have=UUID=$(blkid -p -o export \"$md\" | sed -n 's/^UUID=//p')\n"
    '    ok=; [ -f "$R/etc/os-release" ] && [ "$want" = "$have" ] && ok=1; umount "$R"\n'
    '    [ -z "$ok" ] || { found=$md; break; }\n'
    "  done; fi\n"
    "  [ -n \"$found\" ] || { echo 'no installed system found on the system disks' >&2; exit 1; }\n"
    '  echo "installed system: $found"; mount "$found" "$R"\n'
    '  [ -f "$R/etc/os-release" ] || { umount "$R"; echo "$found holds no installed system" >&2; exit 1; }\n'
    "fi\n"
    'for fs in dev proc sys; do mountpoint -q "$R/$fs" || mount --bind "/$fs" "$R/$fs"; done\n'
    'if awk \'$1 !~ /^#/ && $2=="/boot"\' "$R/etc/fstab" | grep -q . && ! mountpoint -q "$R/boot"; '
    'then chroot "$R" mount /boot; fi'
)
CONF = "{{ facts.root }}/etc/mdadm/mdadm.conf"
MDADM_CONF_OK = (
    f"grep -qxF {{{{ facts.mdadm_line }}}} {CONF} && "
    f'[ "$(grep -cF UUID={{{{ facts.array_uuid }}}} {CONF})" -eq 1 ] && '
    f'for u in {{{{ facts.wiped_arrays }}}}; do ! grep -qF "UUID=$u" {CONF} || exit 1; done'
)
#: Drop every line naming our UUID or an array the wipe destroyed (its ARRAY line would have the
#: boot wait for it), then append ours: replaced, never duplicated.
MDADM_CONF = (
    f'set -e; f={CONF}; mkdir -p "${{f%/*}}"; touch "$f"; cp "$f" "$f.fleet-new"\n'
    "for u in {{ facts.array_uuid }} {{ facts.wiped_arrays }}; do\n"
    '  grep -vF "UUID=$u" "$f.fleet-new" > "$f.fleet-tmp" || true; mv "$f.fleet-tmp" "$f.fleet-new"\n'
    "done\n"
    'echo {{ facts.mdadm_line }} >> "$f.fleet-new"; cat "$f.fleet-new" > "$f"; rm -f "$f.fleet-new"'
)
FSTAB = "{{ facts.root }}/etc/fstab"
_FSTAB_OURS = "'$1 !~ /^#/ && ($2 == m || $1 == u)'"
FSTAB_OK = (
    f"grep -qxF {{{{ facts.fstab_line }}}} {FSTAB} && "
    f'[ "$(awk -v m={{{{ facts.mount }}}} -v u=UUID={{{{ facts.fs_uuid }}}} {_FSTAB_OURS} {FSTAB} | wc -l)" -eq 1 ]'
)
#: Drop lines for our mount point or our filesystem (the seed's /dev/md4 line too), append ours.
FSTAB_WRITE = (
    f"set -e; f={FSTAB}\n"
    "awk -v m={{ facts.mount }} -v u=UUID={{ facts.fs_uuid }} "
    f'\'!({_FSTAB_OURS[1:-1]})\' "$f" > "$f.fleet-new"\n'
    'echo {{ facts.fstab_line }} >> "$f.fleet-new"\n'
    'cat "$f.fleet-new" > "$f"; rm -f "$f.fleet-new"'
)
STAMP = "{{ facts.root }}" + INITRAMFS_STAMP
INITRAMFS_OK = f'[ "$(sha256sum < {CONF})" = "$(cat {STAMP} 2>/dev/null)" ]'
INITRAMFS = (
    f"set -e; chroot {{{{ facts.root }}}} update-initramfs -u\n"
    f"mkdir -p {{{{ facts.root }}}}{INITRAMFS_STAMP.rsplit('/', 1)[0]}; sha256sum < {CONF} > {STAMP}"
)
#: The mount point exists and mounting there hides nothing (empty, or already a mount).
MOUNT_POINT_OK = (
    'd={{ facts.target_dir }}; test -d "$d" && { mountpoint -q "$d" || [ -z "$(ls -A "$d")" ]; }'
)
MOUNT_POINT = (
    'd={{ facts.target_dir }}; mkdir -p "$d"; mountpoint -q "$d" || [ -z "$(ls -A "$d")" ] || '
    '{ echo "$d is not empty: mounting the array over it would hide its files" >&2; exit 1; }'
)
UNMOUNTED = "! mountpoint -q {{ facts.root }}"
UNMOUNT = "sync; umount -R {{ facts.root }}"
LIVE_MOUNTED = "findmnt -n -o UUID --mountpoint {{ facts.mount }} | grep -qx {{ facts.fs_uuid }}"
LIVE_MOUNT = "systemctl daemon-reload 2>/dev/null || true; mount {{ facts.mount }}"

#: Plan-level check, run first on the host as it is: everything already holds, nothing to do.
#: The array must carry fleet's marker (``fleet-...:NAME``); the guard checks its identity.
CONVERGED = (
    'm={{ mount }}; src=$(findmnt -n -o SOURCE --mountpoint "$m") || exit 1\n'
    'u=$(findmnt -n -o UUID --mountpoint "$m"); [ -n "$u" ] || exit 1\n'
    '[ "$(findmnt -n -o FSTYPE --mountpoint "$m")" = {{ fs }} ] || exit 1\n'
    'blkid -p -o export "$src" | grep -qx LABEL={{ label }} || exit 1\n'
    'awk -v m="$m" -v u="UUID=$u" \'$1 == u && $2 == m\' /etc/fstab | grep -q . || exit 1\n'
    'd=$(mdadm --detail --export "$src") || exit 1\n'
    'echo "$d" | grep -qx MD_LEVEL=raid{{ level }} || exit 1\n'
    "n=$(echo \"$d\" | sed -n 's/^MD_NAME=//p')\n"
    'case "$n" in fleet-*:{{ md_name }}) ;; *) exit 1;; esac\n'
    'a=$(echo "$d" | sed -n \'s/^MD_UUID=//p\'); [ -n "$a" ] || exit 1\n'
    'grep -q "^ARRAY .*UUID=$a" /etc/mdadm/mdadm.conf || exit 1\n'
    'g=/sys/block/$(basename "$(readlink -f "$src")")/md/degraded  # RAID0 has none\n'
    '[ ! -e "$g" ] || [ "$(cat "$g")" = 0 ] || exit 1\n'
    f'[ "$(sha256sum < /etc/mdadm/mdadm.conf)" = "$(cat {INITRAMFS_STAMP} 2>/dev/null)" ]'
)
