#!/bin/bash
# First boot of a Renkei edge box: /usr/lib/renkei/firstboot, run by
# renkei-firstboot.service until /var/lib/renkei/identity/enrolled exists.
#
#   1. Data partition (PARTLABEL=renkei-data). If it is not LUKS yet: luksFormat with a
#      throw-away key, enrol the TPM2 (PCR 7) and a recovery key (shown ONCE on the
#      console, for the town's box register), drop the throw-away key, mkfs.ext4, mount.
#   2. Enrolment input, first found of:
#        /etc/renkei/enroll.env                      (typed in by IT staff, or baked in)
#        a USB stick labelled RENKEIENROL with renkei-enroll/enroll.env on it
#      enroll.env holds shell-style lines:
#        RENKEI_HUB=https://hub.renkei.lan           hub URL on the closed line (required)
#        RENKEI_TOKEN=…                              one-time enrolment token (required)
#        RENKEI_NTP=hub.renkei.lan                   NTP source (default: the hub's host)
#        RENKEI_UPS=ups@192.168.10.5 renkei-monitor PASSWORD   NUT MONITOR (optional)
#      Files beside it on the stick (server.crt/server.key/federation-ca.crt issued in the
#      ceremony, docs/tls.md) are handed to `renkei enroll --from DIR`; the hub may also
#      hand over TLS material staged with the token.
#   3. `renkei enroll --hub URL --token-file - --data /var/lib/renkei/box
#      --tls /var/lib/renkei/tls [--from DIR]` as the renkei user, the token on stdin (not
#      on a command line `ps` shows). It checks the certificate against the federation root
#      pinned in the image (/etc/renkei/federation-root.pub) and the hub's TLS against
#      /etc/renkei/federation-ca.crt; exit 0 and one JSON object {"town", "box_id", …} on
#      stdout after writing box.cert.json, federation.json and tls/; exit 1 with a Japanese
#      and English reason on stderr (token expired, used, revoked or unknown; hub
#      unreachable; a certificate that does not chain to the root), nothing written.
#   4. Write /etc/renkei/box.env (RENKEI_HUB, RENKEI_TOWN), the NTP and UPS settings, touch
#      identity/enrolled. renkei-edge.service starts after this.
#
# Every failure is shown on the console login screen (/run/issue.d) and in the journal;
# nothing is half-written: box.env and the enrolled marker come last.
set -euo pipefail

DATA=/var/lib/renkei
DEVICE=/dev/disk/by-partlabel/renkei-data
MAPPER=renkei-data
RENKEI=/opt/renkei/current/bin/renkei
ISSUE=/run/issue.d/50-renkei.issue
STICK_LABEL="RENKEIENROL"

say() { printf 'renkei-firstboot: %s\n' "$*"; }
fail() {
  mkdir -p /run/issue.d
  printf '\n*** 連携ボックス初回設定が完了していません / Renkei first boot incomplete ***\n%s\n\n' \
    "$*" >"$ISSUE"
  say "ERROR: $*" >&2
  exit 1
}

# ---------------------------------------------------------------- 1. data partition
setup_data_partition() {
  if mountpoint -q "$DATA"; then
    return 0
  fi
  [[ -b "$DEVICE" ]] || fail "データ領域 (PARTLABEL=renkei-data) がありません。イメージを確認してください。"
  if ! cryptsetup isLuks "$DEVICE"; then
    # grow renkei-data to the rest of the disk first (/usr/lib/repart.d/30-renkei-data.conf)
    systemd-repart --dry-run=no || say "WARNING: could not grow the data partition"
    udevadm settle
    say "encrypting the data partition (LUKS2)"
    local key
    key=$(mktemp -p /run renkei-luks.XXXXXX)
    head -c 64 /dev/urandom >"$key"
    cryptsetup luksFormat --batch-mode --type luks2 --key-file "$key" "$DEVICE"
    if systemd-cryptenroll --tpm2-device=list 2>/dev/null | grep -q /dev/; then
      systemd-cryptenroll --unlock-key-file="$key" --tpm2-device=auto --tpm2-pcrs=7 "$DEVICE"
      say "data partition bound to this box's TPM2 (PCR 7)"
    else
      say "WARNING: no TPM2: the recovery key must be typed at every boot"
    fi
    # The recovery key is printed once, on the console: IT staff write it into the town's
    # box register and keep it in the safe. It is the only way in without this TPM.
    {
      printf '\n==== 回復キー / recovery key (renkei-data) — 機器管理台帳に記録 ====\n'
      systemd-cryptenroll --unlock-key-file="$key" --recovery-key "$DEVICE" </dev/null
      printf '\n==== end of recovery key ====\n\n'
    } >/dev/console  # never to the journal: it is on the unencrypted root
    cryptsetup open --key-file "$key" "$DEVICE" "$MAPPER"
    # the throw-away key was a "password" slot: only the TPM2 and recovery slots remain
    systemd-cryptenroll --wipe-slot=password "$DEVICE"
    shred -u "$key"
    mkfs.ext4 -q -L renkei-data "/dev/mapper/$MAPPER"
  elif [[ ! -e "/dev/mapper/$MAPPER" ]]; then
    systemctl start "systemd-cryptsetup@$MAPPER.service" \
      || fail "データ領域を開けません (TPM)。回復キーで開いてください: docs/operations.md"
  fi
  # Mounted by systemd (the fstab unit), not by `mount` here: this service runs in its
  # own mount namespace, and a mount made in it would vanish when it exits.
  systemctl start var-lib-renkei.mount || fail "データ領域をマウントできません。"
  systemd-tmpfiles --create /usr/lib/tmpfiles.d/renkei.conf
}

# ---------------------------------------------------------------- 2. enrolment input
STICK_MOUNT=""
cleanup() {
  if [[ -n "$STICK_MOUNT" ]]; then
    umount "$STICK_MOUNT" 2>/dev/null || true
    rmdir "$STICK_MOUNT" 2>/dev/null || true
  fi
}
trap cleanup EXIT

find_enroll_env() {
  if [[ -f /etc/renkei/enroll.env ]]; then
    ENROLL_DIR=/etc/renkei
    return 0
  fi
  local stick=/dev/disk/by-label/$STICK_LABEL
  for _ in $(seq 1 60); do  # give IT staff a minute to plug the stick in
    [[ -b "$stick" ]] && break
    sleep 1
  done
  [[ -b "$stick" ]] || return 1
  STICK_MOUNT=$(mktemp -d -p /run renkei-stick.XXXXXX)
  mount -o ro,nosuid,nodev,noexec "$stick" "$STICK_MOUNT"
  [[ -f "$STICK_MOUNT/renkei-enroll/enroll.env" ]] || return 1
  ENROLL_DIR="$STICK_MOUNT/renkei-enroll"
}

read_value() {  # KEY FILE -> value of KEY=... (no shell evaluation of the file)
  sed -n "s/^$1=//p" "$2" | tail -1 | tr -d '\r'
}

# ---------------------------------------------------------------- main
setup_data_partition
[[ -x "$RENKEI" ]] || fail "$RENKEI がありません。"
find_enroll_env || fail "登録情報がありません: USB メモリ (ラベル $STICK_LABEL) を挿して再起動するか、/etc/renkei/enroll.env を作成してください。"
HUB=$(read_value RENKEI_HUB "$ENROLL_DIR/enroll.env")
TOKEN=$(read_value RENKEI_TOKEN "$ENROLL_DIR/enroll.env")
NTP=$(read_value RENKEI_NTP "$ENROLL_DIR/enroll.env")
UPS=$(read_value RENKEI_UPS "$ENROLL_DIR/enroll.env")
[[ "$HUB" =~ ^https?://[][A-Za-z0-9.:-]+(/.*)?$ ]] || fail "RENKEI_HUB が正しくありません: $HUB"
[[ -n "$TOKEN" ]] || fail "RENKEI_TOKEN がありません。"

"$RENKEI" enroll --help >/dev/null 2>&1 \
  || fail "この版の renkei には enroll コマンドがありません。更新してください。"

FROM_ARGS=()
if [[ -n "$STICK_MOUNT" ]]; then
  FROM_ARGS=(--from "$ENROLL_DIR")
fi
[[ -s /etc/renkei/federation-root.pub ]] \
  || fail "連合ルートの公開鍵 (/etc/renkei/federation-root.pub) がイメージにありません。"
say "enrolling with $HUB"
ERRORS=$(mktemp -p /run renkei-enroll.XXXXXX)
RESULT=$(printf 'RENKEI_TOKEN=%s\n' "$TOKEN" | runuser -u renkei -- "$RENKEI" enroll \
  --hub "$HUB" --token-file - --data "$DATA/box" --tls "$DATA/tls" "${FROM_ARGS[@]}" \
  2>"$ERRORS") || fail "ハブへの登録に失敗しました: $(head -c 600 "$ERRORS")"
rm -f "$ERRORS"
TOWN=$(printf '%s' "$RESULT" | /opt/renkei/current/bin/python -c \
  'import json, sys; print(json.load(sys.stdin)["town"])') || fail "renkei enroll の出力が不正です。"
[[ "$TOWN" =~ ^[0-9]{5}$ ]] || fail "町村コードが不正です: $TOWN"

# ---------------------------------------------------------------- 4. configuration
HUB_HOST=$(printf '%s' "$HUB" | sed -E 's|^https?://([^/:]+).*|\1|')
mkdir -p /etc/chrony/sources.d
printf 'server %s iburst\n' "${NTP:-$HUB_HOST}" >/etc/chrony/sources.d/renkei-hub.sources
systemctl try-reload-or-restart chrony.service 2>/dev/null || true
if [[ -n "$UPS" && -f /etc/nut/upsmon.conf ]]; then
  read -r ups_name ups_user ups_password <<<"$UPS"
  [[ "$ups_name" =~ ^[A-Za-z0-9_.-]+@[A-Za-z0-9_.:-]+$ && -n "$ups_password" ]] \
    || fail "RENKEI_UPS は「ups@ホスト ユーザー パスワード」の形式で指定してください。"
  sed -i "s|^MONITOR .*|MONITOR $ups_name 1 $ups_user $ups_password secondary|" \
    /etc/nut/upsmon.conf
  systemctl try-restart nut-monitor.service 2>/dev/null || true
fi
umask 022
tmp=$(mktemp -p /etc/renkei box.env.XXXXXX)
printf 'RENKEI_HUB=%s\nRENKEI_TOWN=%s\n' "$HUB" "$TOWN" >"$tmp"
chmod 0644 "$tmp"
mv "$tmp" /etc/renkei/box.env
rm -f /etc/renkei/enroll.env  # the token is single-use; do not keep it
touch "$DATA/identity/enrolled"
rm -f "$ISSUE"
say "enrolled: town $TOWN, hub $HUB"
