#!/usr/bin/env bash
# Boot a built disk image in QEMU/KVM with UEFI (OVMF) and a software TPM 2.0 (swtpm), with
# a USB stick labelled RENKEIENROL (a FAT label: 11 characters at most), and follow the serial console:
#
#   bash firmware/image/boot-test.sh renkei-box.raw [HUB_URL]
#
# Boot 1 checks: UEFI → systemd-boot → kernel → root by PARTLABEL; first boot grows,
# encrypts (LUKS2), TPM2-enrols and mounts the data partition and reaches the enrolment
# step. Boot 2 (same disk, same TPM) checks that the data partition unlocks unattended
# through the TPM and mounts at /var/lib/renkei. The image itself is not modified (a
# qcow2 overlay takes the writes). Needs root, /dev/kvm, qemu-system-x86, ovmf, swtpm,
# dosfstools, mtools. Not part of any test run (minutes).
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: $0 IMAGE.raw [HUB_URL]" >&2; exit 2; }
IMAGE="$(realpath "$1")"
HUB="${2:-https://hub.renkei.lan}"
WORK=$(mktemp -d /var/tmp/renkei-boot.XXXXXX)
SWTPM_PID=""
cleanup() {
  [[ -n "$SWTPM_PID" ]] && kill "$SWTPM_PID" 2>/dev/null || true
  [[ -n "${KEEP:-}" ]] || rm -rf "$WORK"
}
trap cleanup EXIT
log() { printf '[boot-test] %s\n' "$*"; }

qemu-img create -q -f qcow2 -b "$IMAGE" -F raw "$WORK/disk.qcow2" 16G
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$WORK/vars.fd"

# the enrolment stick
truncate -s 64M "$WORK/stick.img"
mkfs.vfat -n RENKEIENROL "$WORK/stick.img" >/dev/null
printf 'RENKEI_HUB=%s\nRENKEI_TOKEN=boot-test-token\n' "$HUB" >"$WORK/enroll.env"
MTOOLS_SKIP_CHECK=1 mmd -i "$WORK/stick.img" ::/renkei-enroll
MTOOLS_SKIP_CHECK=1 mcopy -i "$WORK/stick.img" "$WORK/enroll.env" ::/renkei-enroll/

mkdir -p "$WORK/tpm"
start_tpm() {  # one swtpm per boot; its state (the TPM's NVRAM and seeds) stays in tpm/
  [[ -n "$SWTPM_PID" ]] && { kill "$SWTPM_PID" 2>/dev/null || true; wait "$SWTPM_PID" 2>/dev/null || true; }
  rm -f "$WORK/swtpm.sock"
  swtpm socket --tpm2 --tpmstate dir="$WORK/tpm" --ctrl type=unixio,path="$WORK/swtpm.sock" &
  SWTPM_PID=$!
  for _ in $(seq 1 50); do [[ -S "$WORK/swtpm.sock" ]] && return 0; sleep 0.1; done
  log "swtpm did not start"; return 1
}

boot() {  # boot N, wait for a pattern on the serial console or time out
  local n=$1 pattern=$2 limit=$3
  local console="$WORK/console-$n.log"
  : >"$console"
  start_tpm
  qemu-system-x86_64 -machine "q35,accel=${ACCEL:-kvm}" -cpu "${QEMU_CPU:-qemu64}" -m 2048 -smp 2 -nographic \
    -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
    -drive if=pflash,format=raw,file="$WORK/vars.fd" \
    -drive if=virtio,format=qcow2,file="$WORK/disk.qcow2" \
    -drive if=none,id=stick,format=raw,file="$WORK/stick.img" \
    -device qemu-xhci -device usb-storage,drive=stick \
    -chardev socket,id=chrtpm,path="$WORK/swtpm.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm \
    -device tpm-tis,tpmdev=tpm0 -nic none \
    -serial file:"$console" -monitor none -display none </dev/null &
  local qemu=$! start=$SECONDS
  while ((SECONDS - start < limit)); do
    if grep -aqE "$pattern" "$console"; then
      log "boot $n: found /$pattern/ after $((SECONDS - start)) s"
      kill "$qemu"; wait "$qemu" 2>/dev/null || true
      return 0
    fi
    kill -0 "$qemu" 2>/dev/null || break
    sleep 2
  done
  kill "$qemu" 2>/dev/null || true; wait "$qemu" 2>/dev/null || true
  log "boot $n: /$pattern/ not seen within $limit s; console tail:"
  tail -40 "$console" | sed 's/^/    /'
  return 1
}

# Boot 1: first boot reaches enrolment (an image without renkei enroll or without the
# pinned federation root, or a hub that is unreachable or refuses the test token: each
# message means everything before it worked; with a hub and a real token: enrolled).
boot 1 "renkei-firstboot: ERROR|enrolled: town" 1200
grep -aqE "enroll コマンドがありません|連合ルートの公開鍵|ハブへの登録に失敗|enrolled: town" "$WORK/console-1.log" \
  || { log "first boot failed before enrolment"; exit 1; }
grep -a "renkei-firstboot" "$WORK/console-1.log" | sed 's/^/    /' | head -20
grep -aq "data partition bound to this box's TPM2" "$WORK/console-1.log" \
  || { log "the TPM2 was not enrolled"; exit 1; }
# Boot 2: the data partition opens through the TPM without a key typed.
boot 2 "Mounted .*/var/lib/renkei" 900
grep -aiE "cryptsetup|renkei-data" "$WORK/console-2.log" | sed 's/^/    /' | head -10
log "OK"
