#!/usr/bin/env bash
# Builds the disk images of the sandbox's VM hosts (fleet/sandbox/vm.py): QEMU machines that look
# like OVH hybrid servers. Everything comes from Debian packages (mmdebstrap, bookworm):
#
#   rescue.vmlinuz, rescue.initrd  OVH-style Debian rescue, booted by QEMU's direct kernel boot; the
#                                  whole system is the initramfs (a RAM disk, like OVH's), so every
#                                  boot starts from scratch: new SSH host key, only the rescueSshKey
#                                  that the VM manager passes in through fw_cfg authorised; with
#                                  lvm2 and open-iscsi, as OVH's rescue has its disk tools.
#   nvme0.qcow2, nvme1.qcow2       the installed Debian system laid out as OVH's soft-RAID install:
#                                  per disk p1 ESP (511 MiB, EFI_SYSPART), p2 /boot (md2), p3 / (md3),
#                                  p4 swap (swap-<dev>), and p5 config-2 (iso9660) on nvme0 only.
#   hdd-stub.qcow2                 an HDD carrying OVH's leftover 511 MiB partition (the seed's case).
#   image.json                     what the VM manager needs: root filesystem UUID, kernel, sizes.
#
# The partitioning, mdadm and mkfs work runs INSIDE a VM (the rescue image itself, given a
# provisioning script through fw_cfg), on qcow2 files made here: never on this machine's disks.
# The result is cached under $FLEET_VM_CACHE (default ~/.cache/fleet/vm-images) in a directory
# named by this script's content hash, so an unchanged script builds nothing.
#
# Usage: scripts/vm-images.sh [--force] [--print-dir] [--install-deps-only]
#   prints the image directory on stdout; progress goes to stderr. Run as root (apt, mmdebstrap).
set -euo pipefail

suite=bookworm
mirror=${FLEET_VM_MIRROR:-http://deb.debian.org/debian}
nvme_mib=8192   # each NVMe disk
hdd_mib=4096    # each HDD (the stub image only: blank HDDs are made per VM at any size)
cache=${FLEET_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fleet/vm-images}
self=$(readlink -f "${BASH_SOURCE[0]}")
hash=$(sha256sum "$self" | cut -c1-16)
out=$cache/$hash
say() { echo "vm-images: $*" >&2; }

force=0; print_dir=0; deps_only=0
for arg in "$@"; do
  case $arg in
    --force) force=1 ;;
    --print-dir) print_dir=1 ;;
    --install-deps-only) deps_only=1 ;;
    *) say "unknown argument $arg"; exit 2 ;;
  esac
done
if [ "$print_dir" = 1 ]; then echo "$out"; exit 0; fi

# -- host tools (idempotent) ------------------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v xorriso >/dev/null || need+=(xorriso)
command -v cpio >/dev/null || need+=(cpio)
command -v zstd >/dev/null || need+=(zstd)
command -v debugfs >/dev/null || need+=(e2fsprogs)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { say "needs root to install: ${need[*]}"; exit 1; }
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
[ "$deps_only" = 1 ] && exit 0

if [ -e "$out/image.json" ] && [ "$force" = 0 ]; then
  say "cached: $out"
  echo "$out"
  exit 0
fi
[ "$(id -u)" = 0 ] || { say "run as root (mmdebstrap builds the root file systems as root)"; exit 1; }

started=$(date +%s)
mkdir -p "$cache"
work=$(mktemp -d "$cache/.build-$hash.XXXXXX")
cleanup() {
  [ -e "$work/provision.log" ] && cp "$work/provision.log" "$cache/last-provision.log"
  if [ "${FLEET_VM_KEEP_WORK:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
mkdir "$work/out" "$work/files"

# -- files both systems share -------------------------------------------------------------------
f=$work/files
cat > "$f/network" <<'EOF'
# QEMU user networking always gives the guest 10.0.2.15 (its DHCP answer): set it statically,
# which spares a DHCP exchange at every (emulated, slow) boot.
[Match]
Name=en* eth*

[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
EOF
cat > "$f/timeouts.conf" <<'EOF'
# fleet VM image: emulated VMs sharing few cores boot slowly; systemd's 90 s waits for devices
# and services would drop a busy VM into emergency mode (no SSH) instead of letting it finish.
[Manager]
DefaultTimeoutStartSec=15min
DefaultDeviceTimeoutSec=15min
EOF
cat > "$f/blacklist.conf" <<'EOF'
# fleet VM image: drivers of QEMU's virtual hardware that a server does not need; loading them
# costs seconds per boot under emulation.
blacklist kvm
blacklist kvm_intel
blacklist kvm_amd
blacklist ccp
blacklist cfg80211
blacklist iTCO_wdt
blacklist iTCO_vendor_support
blacklist lpc_ich
blacklist i2c_i801
blacklist psmouse
blacklist serio_raw
blacklist evdev
blacklist pcspkr
blacklist joydev
EOF
cat > "$f/sshd.conf" <<'EOF'
# fleet VM image: keys only, root allowed with a key (as on OVH's servers and rescue).
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
EOF
# Settings that only slow a TCG-emulated boot down, or wait for a network that is never "online".
cat > "$f/common.sh" <<'EOF'
root=$1
rm -f "$root"/etc/ssh/ssh_host_*
install -m 644 "$FILES/sshd.conf" "$root/etc/ssh/sshd_config.d/fleet.conf"
install -D -m 644 "$FILES/network" "$root/etc/systemd/network/80-dhcp.network"
ln -sf /lib/systemd/system/systemd-networkd.service \
  "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
for unit in systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
    dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
    mdcheck_start.timer mdcheck_continue.timer mdmonitor-oneshot.timer getty@tty1.service \
    systemd-pstore.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
echo qemu_fw_cfg > "$root/etc/modules-load.d/fleet.conf"
install -m 644 "$FILES/blacklist.conf" "$root/etc/modprobe.d/fleet-vm.conf"
install -D -m 644 "$FILES/timeouts.conf" "$root/etc/systemd/system.conf.d/fleet-vm.conf"
# Drivers for hardware no server of this sandbox has (GPUs, Wi-Fi, sound...): smaller images,
# faster emulated boots. Storage (USB sticks and BMC virtual media too), network, md, the iSCSI
# target and initiator, and file system modules all stay.
mods=$(echo "$root"/usr/lib/modules/*)
for dir in drivers/gpu drivers/media drivers/net/wireless drivers/net/ethernet drivers/net/usb \
    drivers/net/can drivers/infiniband drivers/staging drivers/bluetooth drivers/iio \
    drivers/isdn drivers/mtd drivers/video drivers/comedi drivers/hwmon drivers/thunderbolt \
    drivers/mmc sound net/wireless net/mac80211 net/bluetooth \
    fs/ocfs2 fs/nfs fs/nfsd fs/smb fs/cifs fs/ceph fs/gfs2 fs/ubifs fs/f2fs fs/afs fs/coda \
    fs/orangefs fs/dlm fs/ntfs3 fs/ntfs fs/jffs2 fs/nilfs2 fs/reiserfs fs/jfs fs/hfsplus fs/hfs; do
  rm -rf "${mods:?}/kernel/$dir"
done
chroot "$root" depmod -a "$(basename "$mods")"
passwd --root "$root" --lock root >/dev/null
EOF

# -- the rescue system --------------------------------------------------------------------------
cat > "$f/rescue-boot" <<'EOF'
#!/bin/sh
# At every rescue boot, as OVH's rescue does: a new SSH host key, and the rescueSshKey of this
# boot (QEMU fw_cfg item opt/fleet/rescue_key) as the only key that may log in as root.
set -eu
modprobe qemu_fw_cfg 2>/dev/null || true
fw=/sys/firmware/qemu_fw_cfg/by_name/opt/fleet
rm -f /etc/ssh/ssh_host_*
ssh-keygen -q -t ed25519 -N '' -C root@rescue12-customer-eu -f /etc/ssh/ssh_host_ed25519_key
install -d -m 700 /root/.ssh
if [ -r "$fw/rescue_key/raw" ]; then
  install -m 600 "$fw/rescue_key/raw" /root/.ssh/authorized_keys
else
  install -m 600 /dev/null /root/.ssh/authorized_keys
fi
# Image builds only: a provisioning script to run once the system is up.
if [ -r "$fw/provision/raw" ]; then install -m 700 "$fw/provision/raw" /run/fleet-provision; fi
EOF
cat > "$f/rescue-boot.service" <<'EOF'
[Unit]
Description=Rescue boot settings: new SSH host key, the rescue key of this boot
Before=ssh.service
DefaultDependencies=no
After=systemd-modules-load.service local-fs.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/fleet-rescue-boot
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
EOF
cat > "$f/provision.service" <<'EOF'
[Unit]
Description=Image build: provision the installed system's disks, then power off
ConditionPathExists=/run/fleet-provision
After=fleet-rescue-boot.service systemd-udev-settle.service

[Service]
Type=oneshot
StandardOutput=journal+console
StandardError=journal+console
ExecStart=/bin/sh -c '/run/fleet-provision; echo "FLEET-PROVISION-EXIT=$?"; systemctl --no-block poweroff'

[Install]
WantedBy=multi-user.target
EOF
cat > "$f/rescue.sh" <<'EOF'
root=$1
. "$FILES/common.sh"
echo rescue12-customer-eu > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\trescue12-customer-eu\n' > "$root/etc/hosts"
install -m 755 "$FILES/rescue-boot" "$root/usr/local/sbin/fleet-rescue-boot"
install -m 644 "$FILES/rescue-boot.service" "$root/etc/systemd/system/fleet-rescue-boot.service"
install -m 644 "$FILES/provision.service" "$root/etc/systemd/system/fleet-provision.service"
ln -sf ../fleet-rescue-boot.service "$root/etc/systemd/system/multi-user.target.wants/"
ln -sf ../fleet-provision.service "$root/etc/systemd/system/multi-user.target.wants/"
ln -sf /lib/systemd/systemd "$root/init"
: > "$root/etc/fstab"
# A RAM disk: no hardware database (it only names devices for desktops).
rm -f "$root/usr/lib/udev/hwdb.bin" "$root/etc/udev/hwdb.bin"
# LVM and the iSCSI initiator are there as in OVH's rescue (pvs, iscsiadm), but nothing of theirs
# runs at boot: no volume monitoring, no iSCSI login (iscsid starts when iscsiadm asks for it).
for unit in lvm2-monitor.service blk-availability.service open-iscsi.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
EOF

# -- the installed system -----------------------------------------------------------------------
cat > "$f/firstboot" <<'EOF'
#!/bin/sh
# The installed system's first-boot settings, as OVH's installer leaves them: this server's SSH
# host key, the operator's key for root, its hostname (QEMU fw_cfg items opt/fleet/*). Only what
# is not there yet is set, so later changes on the server stay.
set -eu
modprobe qemu_fw_cfg 2>/dev/null || true
fw=/sys/firmware/qemu_fw_cfg/by_name/opt/fleet
if [ ! -s /etc/ssh/ssh_host_ed25519_key ]; then
  if [ -r "$fw/host_key/raw" ]; then
    install -m 600 "$fw/host_key/raw" /etc/ssh/ssh_host_ed25519_key
    ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key > /etc/ssh/ssh_host_ed25519_key.pub
  else
    ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
  fi
fi
if [ ! -e /root/.ssh/authorized_keys ] && [ -r "$fw/authorized_keys/raw" ]; then
  install -d -m 700 /root/.ssh
  install -m 600 "$fw/authorized_keys/raw" /root/.ssh/authorized_keys
fi
if [ "$(cat /etc/hostname)" = fleet-unconfigured ] && [ -r "$fw/hostname/raw" ]; then
  name=$(cat "$fw/hostname/raw")
  echo "$name" > /etc/hostname
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$name" > /etc/hosts
  hostname "$name"
fi
# Durable before anything else happens: a hard reset soon after would otherwise leave these
# files empty (ext4 writes new files' data back up to 30 s later).
sync
EOF
cat > "$f/firstboot.service" <<'EOF'
[Unit]
Description=First boot settings of the installed system: host key, operator key, hostname
Before=ssh.service
After=systemd-modules-load.service local-fs.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/fleet-firstboot
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
EOF
cat > "$f/installed.sh" <<'EOF'
root=$1
. "$FILES/common.sh"
echo fleet-unconfigured > "$root/etc/hostname"
install -m 755 "$FILES/firstboot" "$root/usr/local/sbin/fleet-firstboot"
install -m 644 "$FILES/firstboot.service" "$root/etc/systemd/system/fleet-firstboot.service"
ln -sf ../fleet-firstboot.service "$root/etc/systemd/system/multi-user.target.wants/"
# initramfs-tools: only the modules this machine needs (MODULES=most makes update-initramfs
# take minutes under emulation).
sed -i 's/^MODULES=.*/MODULES=dep/' "$root/etc/initramfs-tools/initramfs.conf"
EOF
cat > "$f/mdadm.conf" <<'EOF'
# mdadm.conf
#
# !NB! Run update-initramfs -u after updating this file.
# !NB! This will ensure that initramfs has an uptodate copy.
#
# Please refer to mdadm.conf(5) for information about this file.
#

# by default (built-in), scan all partitions (/proc/partitions) and all
# containers for MD superblocks. alternatively, specify devices to scan, using
# wildcards if desired.
#DEVICE partitions containers

# automatically tag new arrays as belonging to the local system
HOMEHOST <system>

# instruct the monitoring daemon where to send mail alerts
MAILADDR root

# definitions of existing MD arrays
EOF

common_pkgs=linux-image-amd64,systemd,systemd-sysv,udev,kmod,openssh-server,mdadm,parted,xfsprogs
common_pkgs=$common_pkgs,e2fsprogs,dosfstools,util-linux,fdisk,iproute2,procps,less,zstd
debstrap() {  # target, extra packages, customize script
  # INITRD=No: no initramfs in the chroot (the installed one is made inside the VM, MODULES=dep).
  # The mdadm.conf written first keeps mdadm's postinst from scanning for arrays.
  FILES=$f INITRD=No mmdebstrap --variant=apt --mode=root --include="$common_pkgs$2" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --setup-hook='mkdir -p "$1/etc/mdadm" && cp "$FILES/mdadm.conf" "$1/etc/mdadm/mdadm.conf"' \
    --customize-hook="sh -eu \"\$FILES/$3\" \"\$1\"" \
    "$suite" "$1" "$mirror" >"$work/$(basename "$1").log" 2>&1 \
    || { tail -30 "$work/$(basename "$1").log" >&2; say "mmdebstrap failed for $1"; exit 1; }
}

say "building the rescue and installed root file systems (mmdebstrap, $suite)"
debstrap "$work/rescue" ,gdisk,lvm2,open-iscsi rescue.sh &
rescue_pid=$!
debstrap "$work/installed.tar" "" installed.sh
wait "$rescue_pid"

say "packing the rescue RAM disk"
kernel=$(basename "$(ls -d "$work"/rescue/usr/lib/modules/*)")
cp "$work/rescue/boot/vmlinuz-$kernel" "$work/out/rescue.vmlinuz"
rm -rf "$work/rescue/boot/"*
# Uncompressed: the kernel unpacks 400 MB in 4 s under TCG, but needs 14 s to un-zstd 100 MB.
(cd "$work/rescue" && find . -xdev | LC_ALL=C sort | cpio --quiet -o -H newc) \
  > "$work/out/rescue.initrd"
rm -rf "$work/rescue"

# -- provisioning inside a VM -------------------------------------------------------------------
mkdir "$work/config-2"
mkdir -p "$work/config-2/openstack/latest"
echo '{"uuid": "fleet-sandbox", "hostname": "fleet-unconfigured"}' \
  > "$work/config-2/openstack/latest/meta_data.json"
xorriso -as mkisofs -quiet -V config-2 -J -R -o "$work/config-2.iso" "$work/config-2" 2>/dev/null

cat > "$work/provision" <<'EOF'
#!/bin/sh
# Runs in the rescue VM: lays the NVMe pair out as OVH's soft-RAID install and installs Debian.
set -eu
say() { echo "provision: $*"; }
wait_block() {
  i=0
  while [ ! -b "$1" ]; do i=$((i + 1)); [ $i -lt 600 ] || { say "no $1"; exit 1; }; sleep 0.1; done
}
rootfs=/dev/disk/by-id/virtio-fleet-rootfs
config2=/dev/disk/by-id/virtio-fleet-config2
udevadm settle
for dev in /dev/nvme0n1 /dev/nvme1n1 /dev/sda $rootfs $config2; do wait_block "$dev"; done
for disk in /dev/nvme0n1 /dev/nvme1n1; do
  parted -s -a optimal "$disk" -- mklabel gpt \
    mkpart primary fat32 1MiB 512MiB \
    mkpart primary ext4 512MiB 1536MiB \
    mkpart primary ext4 1536MiB -516MiB \
    mkpart primary linux-swap -516MiB -4MiB \
    set 1 esp on set 2 raid on set 3 raid on set 4 swap on
done
parted -s -a optimal /dev/nvme0n1 -- mkpart config-2 -4MiB -2MiB
# The HDD of the stub image: OVH's leftover partition (the seed's "1 1049kB 537MB primary boot").
parted -s -a optimal /dev/sda -- mklabel gpt mkpart primary 1MiB 512MiB set 1 boot on
udevadm settle
for md in 2 3; do
  # An internal write-intent bitmap, as mdadm gives the arrays of real (>100 GB) disks: after a
  # hard power cut only the dirty regions resync, not the whole array.
  mdadm --create "/dev/md$md" --run --assume-clean --level=1 --raid-devices=2 --metadata=1.2 \
    --bitmap=internal --homehost='<none>' --name="md$md" "/dev/nvme0n1p$md" "/dev/nvme1n1p$md"
done
for disk in nvme0n1 nvme1n1; do
  mkfs.vfat -F 32 -n EFI_SYSPART "/dev/${disk}p1" >/dev/null
  mkswap -L "swap-${disk}p4" "/dev/${disk}p4" >/dev/null
done
dd if=$config2 of=/dev/nvme0n1p5 bs=64k status=none
mkfs.ext4 -q -L boot /dev/md2
mkfs.ext4 -q -L root /dev/md3
mount /dev/md3 /mnt
mkdir -p /mnt/boot
mount /dev/md2 /mnt/boot
mkdir -p /mnt/boot/efi
mount /dev/nvme0n1p1 /mnt/boot/efi
say "extracting the installed system"
tar -x -p --numeric-owner --xattrs --xattrs-include='*' -f $rootfs -C /mnt
uuid() { blkid -s UUID -o value "$1"; }
{
  echo "# /etc/fstab: static file system information."
  echo "UUID=$(uuid /dev/md3)	/	ext4	defaults	0	1"
  # No boot-time fsck of /boot and the ESP: under emulation each costs about 9 s per boot.
  echo "UUID=$(uuid /dev/md2)	/boot	ext4	defaults	0	0"
  echo "UUID=$(uuid /dev/nvme0n1p1)	/boot/efi	vfat	defaults	0	0"
  echo "UUID=$(uuid /dev/nvme0n1p4)	swap	swap	defaults	0	0"
  echo "UUID=$(uuid /dev/nvme1n1p4)	swap	swap	defaults	0	0"
} > /mnt/etc/fstab
mdadm --detail --scan >> /mnt/etc/mdadm/mdadm.conf
for fs in dev proc sys run; do mount --bind "/$fs" "/mnt/$fs"; done
say "update-initramfs (MODULES=dep)"
chroot /mnt update-initramfs -c -k all
for fs in run sys proc dev boot/efi boot ""; do umount "/mnt/$fs"; done
root_uuid=$(uuid /dev/md3)
mdadm --stop /dev/md2 /dev/md3
sync
echo "FLEET-RESULT root_uuid=$root_uuid"
echo "FLEET-RESULT mdadm_scan=$(mdadm --examine --scan | tr '\n' ';')"
EOF

say "provisioning the installed system's disks in a VM"
qemu-img create -q -f qcow2 "$work/out/nvme0.qcow2" "${nvme_mib}M"
qemu-img create -q -f qcow2 "$work/out/nvme1.qcow2" "${nvme_mib}M"
qemu-img create -q -f qcow2 "$work/out/hdd-stub.qcow2" "${hdd_mib}M"
accel=tcg
timeout 1800 qemu-system-x86_64 -machine q35 -accel "$accel" -cpu qemu64 -smp 1 -m 2048 \
  -nodefaults -display none -no-reboot -serial "file:$work/provision.log" \
  -kernel "$work/out/rescue.vmlinuz" -initrd "$work/out/rescue.initrd" \
  -append "console=ttyS0 panic=-1" \
  -fw_cfg "name=opt/fleet/provision,file=$work/provision" \
  -drive "if=none,id=nvme0,file=$work/out/nvme0.qcow2,format=qcow2,cache=unsafe" \
  -device nvme,drive=nvme0,serial=FLEETNVME0 \
  -drive "if=none,id=nvme1,file=$work/out/nvme1.qcow2,format=qcow2,cache=unsafe" \
  -device nvme,drive=nvme1,serial=FLEETNVME1 \
  -drive "if=none,id=hdd0,file=$work/out/hdd-stub.qcow2,format=qcow2,cache=unsafe" \
  -device ide-hd,bus=ide.0,drive=hdd0,model=HGST_HUS726040AL,serial=FLEETHDD0 \
  -drive "if=none,id=rootfs,file=$work/installed.tar,format=raw,readonly=on" \
  -device virtio-blk-pci,drive=rootfs,serial=fleet-rootfs \
  -drive "if=none,id=config2,file=$work/config-2.iso,format=raw,readonly=on" \
  -device virtio-blk-pci,drive=config2,serial=fleet-config2 \
  || { tail -40 "$work/provision.log" >&2; say "the provisioning VM failed"; exit 1; }
if ! grep -q 'FLEET-PROVISION-EXIT=0' "$work/provision.log"; then
  tail -40 "$work/provision.log" >&2
  say "provisioning failed (log above)"
  exit 1
fi
result() {  # the console prefixes lines ("sh[149]: "): match anywhere in the line
  { grep -a -o "FLEET-RESULT $1=.*" "$work/provision.log" || true; } | tail -1 | cut -d= -f2- | tr -d '\r'
}
root_uuid=$(result root_uuid)
[ -n "$root_uuid" ] || { say "no root UUID in the provisioning log"; exit 1; }
cp "$work/provision.log" "$work/out/provision.log"

took=$(( $(date +%s) - started ))
cat > "$work/out/image.json" <<EOF
{
  "hash": "$hash",
  "suite": "$suite",
  "kernel": "$kernel",
  "root_uuid": "$root_uuid",
  "cmdline": "root=UUID=$root_uuid ro console=ttyS0",
  "nvme_mib": $nvme_mib,
  "hdd_stub_mib": $hdd_mib,
  "build_seconds": $took
}
EOF
rm -rf "$out"
mv "$work/out" "$out"
say "built in ${took}s: $out"
echo "$out"
