#!/usr/bin/env bash
# Assemble the bootable disk image of a Renkei edge box from a root file system made by
# build-rootfs.sh --profile full:
#
#   bash firmware/image/build-image.sh ROOT renkei-box.raw
#
# GPT with three partitions (firmware/image/repart.d): ESP (systemd-boot + kernel + initrd),
# renkei-root (ext4, the tree), renkei-data (empty; grown, encrypted and formatted at first
# boot by firstboot.sh).
# Write it to the box's disk with `dd if=renkei-box.raw of=/dev/sdX bs=4M conv=fsync`, or
# boot it in a VM (docs/appliance.md "Building the image").
#
# Needs root, systemd-repart (systemd 252+), mkfs.vfat/mkfs.ext4, mtools and loop devices
# (systemd 252's repart formats and fills the root through a loop device; the ESP is
# filled with mtools, so the build host's kernel needs ext4 but not vfat). SOURCE_DATE_EPOCH and the fixed --seed make
# partition UUIDs and file system UUIDs repeatable.
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 ROOT IMAGE.raw" >&2; exit 2; }
ROOT="$(realpath "$1")"
IMAGE="$(realpath -m "$2")"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1747699200}"
SEED="${REPART_SEED:-5c1f4a7e-3b5d-4c1e-9a0d-72656e6b6569}"  # fixed: repeatable UUIDs
log() { printf '[image] %s\n' "$*"; }

[[ "$(id -u)" -eq 0 ]] || { echo "must run as root" >&2; exit 1; }
for cmd in systemd-repart mkfs.vfat mkfs.ext4 mcopy sfdisk; do
  command -v "$cmd" >/dev/null || { echo "missing $cmd (apt-get install systemd dosfstools e2fsprogs mtools fdisk)" >&2; exit 1; }
done
KERNEL=$(find "$ROOT/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -1)
[[ -n "$KERNEL" ]] || { echo "no kernel in $ROOT/boot: build the rootfs with --profile full" >&2; exit 1; }
VERSION=${KERNEL##*/vmlinuz-}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# ---------------------------------------------------------------- ESP: systemd-boot + entry
ESP="$WORK/esp"
install -D -m 0644 "$ROOT/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$ESP/EFI/BOOT/BOOTX64.EFI"
install -D -m 0644 "$ROOT/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$ESP/EFI/systemd/systemd-bootx64.efi"
install -D -m 0644 "$KERNEL" "$ESP/renkei/vmlinuz"
install -D -m 0644 "$ROOT/boot/initrd.img-$VERSION" "$ESP/renkei/initrd"
install -D -m 0644 /dev/stdin "$ESP/loader/loader.conf" <<CONF
default renkei.conf
timeout 0
editor no
CONF
install -D -m 0644 /dev/stdin "$ESP/loader/entries/renkei.conf" <<CONF
title   Renkei edge box (Debian 12, kernel $VERSION)
linux   /renkei/vmlinuz
initrd  /renkei/initrd
options root=PARTLABEL=renkei-root ro panic=10 console=tty0 console=ttyS0,115200
CONF
find "$ESP" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# ---------------------------------------------------------------- partitions
DEFS="$WORK/repart.d"
mkdir -p "$DEFS"
for def in "$HERE"/repart.d/*.conf; do
  sed -e "s|@ROOT@|$ROOT|g" -e "s|@ESP@|$ESP|g" "$def" >"$DEFS/$(basename "$def")"
done
rm -f "$IMAGE"
log "systemd-repart → $IMAGE"
systemd-repart --empty=create --size=auto --dry-run=no --seed="$SEED" \
  --definitions="$DEFS" "$IMAGE"
# Fill the ESP with mtools at its offset in the image (sector size 512).
START=$(sfdisk --json "$IMAGE" | python3 -c '
import json, sys
parts = json.load(sys.stdin)["partitiontable"]["partitions"]
print(next(p["start"] for p in parts if p.get("name") == "ESP"))')
export MTOOLS_SKIP_CHECK=1
mcopy -s -p -m -i "$IMAGE@@$((START * 512))" "$ESP"/* ::/
mdir -/ -i "$IMAGE@@$((START * 512))" ::/ | sed 's/^/[image]   /' | head -20
log "done: $(du -h --apparent-size "$IMAGE" | cut -f1) $IMAGE"
sfdisk --dump "$IMAGE" 2>/dev/null | sed 's/^/[image]   /' || true
