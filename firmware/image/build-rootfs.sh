#!/usr/bin/env bash
# Build the Renkei edge box's root file system (Debian 12 "bookworm", x86-64) with
# debootstrap: the first half of the appliance image (build-image.sh assembles the disk).
#
#   bash firmware/image/build-rootfs.sh [--profile full|test] ROOT WHEELS_DIR
#
# ROOT        an empty (or absent) directory to build into
# WHEELS_DIR  renkei-*.whl and every runtime dependency as wheels (`renkei update build`
#             takes the same wheels; see docs/appliance.md "Building the image")
#
# Profiles: `full` is the appliance (kernel, boot loader, cryptsetup + TPM2, CUPS, Avahi,
# chrony, NUT, fonts); `test` is the minimum to run renkei and systemd-analyze in a chroot
# (tests/firmware/test_debootstrap.py). Both install Renkei, its user, units and config
# the same way.
#
# Reproducible: packages come from a dated snapshot of the Debian archive
# (DEBIAN_MIRROR, default the snapshot below), SOURCE_DATE_EPOCH fixes the timestamps
# debootstrap and dpkg write, and Renkei is installed from the given wheels only
# (--no-index). Same inputs, same package versions and same Python environment.
#
# Environment: DEBIAN_MIRROR, RELEASE_KEY (a release verify key file to pin at
# /etc/renkei/release-key.pub), FEDERATION_ROOT (the federation root's verify key, 64 hex
# digits in a file, pinned at /etc/renkei/federation-root.pub: `renkei enroll` checks the
# box certificate against it), FEDERATION_CA (the federation TLS CA certificate, pinned at
# /etc/renkei/federation-ca.crt), DEBOOTSTRAP_CACHE (a directory for downloaded .debs).
set -euo pipefail

PROFILE=full
if [[ "${1:-}" == "--profile" ]]; then PROFILE="$2"; shift 2; fi
[[ $# -eq 2 ]] || { echo "usage: $0 [--profile full|test] ROOT WHEELS_DIR" >&2; exit 2; }
ROOT="$(realpath -m "$1")"
WHEELS="$(realpath "$2")"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
UNITS="$HERE/../units"
SNAPSHOT=20250520T000000Z
MIRROR="${DEBIAN_MIRROR:-http://snapshot.debian.org/archive/debian/$SNAPSHOT}"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1747699200}"  # 2025-05-20T00:00:00Z
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
log() { printf '[rootfs] %s\n' "$*"; }

[[ "$(id -u)" -eq 0 ]] || { echo "must run as root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "install debootstrap (apt-get install debootstrap)" >&2; exit 1; }
WHEEL=$(find "$WHEELS" -maxdepth 1 -name 'renkei-*.whl' | sort | tail -1)
[[ -n "$WHEEL" ]] || { echo "no renkei-*.whl in $WHEELS" >&2; exit 1; }
VERSION=$(basename "$WHEEL" | cut -d- -f2)

BASE_PACKAGES=(python3 python3-venv ca-certificates systemd systemd-sysv dbus tzdata)
FULL_PACKAGES=(
  linux-image-amd64 systemd-boot initramfs-tools   # kernel, UEFI boot loader
  cryptsetup cryptsetup-initramfs tpm2-tools libtss2-esys-3.0.2-0 libtss2-rc0  # LUKS2 + TPM2
  e2fsprogs dosfstools                              # data partition, ESP
  chrony                                            # time (BRIEF §3: expiry depends on it)
  cups cups-client cups-ipp-utils                   # printing to the host's printers
  avahi-daemon libnss-mdns                          # mDNS on the LAN
  fonts-ipamj-mincho fonts-ipaexfont fontconfig     # 外字 (Moji_Joho IVS) and body text
  nut-client                                        # UPS → clean shutdown (upsmon)
  iproute2 ifupdown isc-dhcp-client less nano       # console maintenance
)
PACKAGES=("${BASE_PACKAGES[@]}")
[[ "$PROFILE" == full ]] && PACKAGES+=("${FULL_PACKAGES[@]}")
[[ "$PROFILE" == full || "$PROFILE" == test ]] || { echo "unknown profile $PROFILE" >&2; exit 2; }

MOUNTS=()
cleanup() {
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }

# ------------------------------------------------------------------------ debootstrap
log "debootstrap bookworm ($PROFILE, ${#PACKAGES[@]} packages) from $MIRROR"
mkdir -p "$ROOT"
CACHE_ARGS=()
[[ -n "${DEBOOTSTRAP_CACHE:-}" ]] && { mkdir -p "$DEBOOTSTRAP_CACHE"; CACHE_ARGS=(--cache-dir="$(realpath "$DEBOOTSTRAP_CACHE")"); }
debootstrap --variant=minbase "${CACHE_ARGS[@]}" --include="$(IFS=,; echo "${PACKAGES[*]}")" \
  bookworm "$ROOT" "$MIRROR"
mount -t proc proc "$ROOT/proc" && MOUNTS+=("$ROOT/proc")
printf 'renkei-box\n' >"$ROOT/etc/hostname"
ln -sf /usr/share/zoneinfo/Asia/Tokyo "$ROOT/etc/localtime"
printf 'deb %s bookworm main\n' "$MIRROR" >"$ROOT/etc/apt/sources.list"

# ------------------------------------------------------------------------ renkei user, dirs
install -D -m 0644 "$HERE/rootfs/sysusers.d/renkei.conf" "$ROOT/usr/lib/sysusers.d/renkei.conf"
install -D -m 0644 "$HERE/rootfs/tmpfiles.d/renkei.conf" "$ROOT/usr/lib/tmpfiles.d/renkei.conf"
in_root systemd-sysusers
in_root systemd-tmpfiles --create /usr/lib/tmpfiles.d/renkei.conf
install -d -m 0755 "$ROOT/etc/renkei"
if [[ -n "${RELEASE_KEY:-}" ]]; then
  install -m 0644 "$RELEASE_KEY" "$ROOT/etc/renkei/release-key.pub"
else
  log "WARNING: no RELEASE_KEY given: this root will refuse every update bundle"
fi
if [[ -n "${FEDERATION_ROOT:-}" ]]; then
  install -m 0644 "$FEDERATION_ROOT" "$ROOT/etc/renkei/federation-root.pub"
else
  log "WARNING: no FEDERATION_ROOT given: first boot cannot enrol this box"
fi
if [[ -n "${FEDERATION_CA:-}" ]]; then
  install -m 0644 "$FEDERATION_CA" "$ROOT/etc/renkei/federation-ca.crt"
fi

# ------------------------------------------------------------------------ renkei itself
# The same layout `renkei update install` maintains: versions/<v> + current symlink.
log "installing renkei $VERSION into /opt/renkei/versions/$VERSION"
install -d "$ROOT/tmp/renkei-wheels"
cp "$WHEELS"/*.whl "$ROOT/tmp/renkei-wheels/"
in_root python3 -m venv "/opt/renkei/versions/$VERSION"
in_root "/opt/renkei/versions/$VERSION/bin/pip" install --no-index --no-cache-dir \
  --disable-pip-version-check --find-links /tmp/renkei-wheels renkei
# pip itself goes in as a wheel too when the bundle carries one (see updates.py)
rm -rf "$ROOT/tmp/renkei-wheels"
ln -sfn "versions/$VERSION" "$ROOT/opt/renkei/current"
in_root /opt/renkei/current/bin/renkei --version

# ------------------------------------------------------------------------ units, first boot
for unit in "$UNITS"/*.service "$UNITS"/*.timer; do
  [[ -e "$unit" ]] && install -m 0644 "$unit" "$ROOT/etc/systemd/system/"
done
install -D -m 0755 "$HERE/firstboot.sh" "$ROOT/usr/lib/renkei/firstboot"
systemctl --root="$ROOT" enable renkei-edge.service renkei-firstboot.service \
  renkei-alerts.timer

if [[ "$PROFILE" == full ]]; then
  # data partition: LUKS2 unlocked by the TPM2 (enrolled at first boot), mounted for renkei
  install -m 0644 "$HERE/rootfs/crypttab" "$ROOT/etc/crypttab"
  install -m 0644 "$HERE/rootfs/fstab" "$ROOT/etc/fstab"
  install -D -m 0644 "$HERE/repart.d/30-data.conf" "$ROOT/usr/lib/repart.d/30-renkei-data.conf"
  install -D -m 0644 "$HERE/rootfs/chrony/renkei.conf" "$ROOT/etc/chrony/conf.d/renkei.conf"
  install -D -m 0640 "$HERE/rootfs/nut/upsmon.conf" "$ROOT/etc/nut/upsmon.conf"
  install -D -m 0640 "$HERE/rootfs/nut/nut.conf" "$ROOT/etc/nut/nut.conf"
  install -D -m 0644 "$HERE/rootfs/sysctl.d/renkei.conf" "$ROOT/etc/sysctl.d/90-renkei.conf"
  systemctl --root="$ROOT" enable chrony.service nut-monitor.service cups.service \
    avahi-daemon.service
  systemctl --root="$ROOT" disable systemd-timesyncd.service 2>/dev/null || true
  # No Internet under 三層の対策: drop the Debian pool; sources come from sources.d
  sed -i "/^pool /d" "$ROOT/etc/chrony/chrony.conf"
fi

# ------------------------------------------------------------------------ reproducibility
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/*.log
: >"$ROOT/etc/machine-id"   # a fresh id on first boot, not one shared by every box
find "$ROOT/opt/renkei" -name '__pycache__' -prune -exec rm -rf {} +
log "root file system ready in $ROOT (renkei $VERSION, profile $PROFILE)"
