#!/usr/bin/env bash
# One idempotent set-up script for a fresh Debian 12 machine (run as root).
#
#   bash scripts/setup.sh
#
# 1. Debian packages (skipped entirely when all are already installed).
# 2. .venv (python3 -m venv) + uv, then the equivalent of
#    `uv pip sync requirements.lock && uv pip install -e . --no-deps`
#    (done as one sync, see below).
#
# Playwright uses Debian's Chromium at /usr/bin/chromium: we never run
# `playwright install` (browser downloads are not reachable from here).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT="$(pwd)"

log() { printf '[setup] %s\n' "$*"; }
CLEANUP=()
cleanup() { if ((${#CLEANUP[@]})); then rm -f "${CLEANUP[@]}"; fi; }
trap cleanup EXIT
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# Keep this list in sync with the capability tests (tests/capabilities/).
DEBIAN_PACKAGES=(
  fonts-ipamj-mincho   # Japanese Mincho (IPAmj) for printed forms
  fonts-ipaexfont      # IPAex Gothic/Mincho for PDFs and the web UI
  fontconfig           # fc-list / fc-match (font lookup for Chromium)
  chromium             # headless browser driven by Playwright (/usr/bin/chromium)
  cups                 # cupsd print scheduler
  cups-client          # lp, lpstat, lpadmin, cancel
  cups-ipp-utils       # ippeveprinter (IPP Everywhere test printer), ipptool
  cups-bsd             # lpr/lpq compatibility
  avahi-daemon         # mDNS/DNS-SD responder
  avahi-utils          # avahi-publish, avahi-browse
  dbus                 # system bus (avahi and cups talk over it)
  iproute2             # ip netns / veth for multi-box tests
  iputils-ping         # ping across test network namespaces
  poppler-utils        # pdftotext, pdftoppm
  zbar-tools           # zbarimg (QR codes on printed forms)
  sqlite3              # sqlite3 CLI
  libnss3-tools        # certutil: trust the federation TLS CA in Chromium's NSS db (tests)
  systemd              # systemd-analyze verify/security of firmware/units (tests/firmware)
  strace               # power-cut model: records writes and fsyncs (tests/firmware)
  debootstrap          # the appliance root file system (firmware/image, slow test)
)

if [[ "$(id -u)" -ne 0 ]]; then
  die "must run as root (apt-get install and services need it)"
fi

# ---------------------------------------------------------------- apt ----
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)"
  if [[ "$status" != ii* ]]; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  log "Debian packages: all ${#DEBIAN_PACKAGES[@]} already installed, skipping apt"
else
  log "Debian packages missing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Keep maintainer scripts from starting cups/avahi/dbus with their stock
  # configs (stock avahi would multicast on every interface): services are
  # started by scripts/services.sh.  Only when no policy-rc.d is in place.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# temporary, from renkei scripts/setup.sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    CLEANUP+=(/usr/sbin/policy-rc.d)
  fi
  log "apt-get update"
  apt-get update
  log "apt-get install -y ${DEBIAN_PACKAGES[*]}"
  apt-get install -y "${DEBIAN_PACKAGES[@]}" </dev/null
  log "Debian packages installed"
fi

for cmd in python3 /usr/bin/chromium ip ping cupsd lpadmin ippeveprinter avahi-daemon \
           avahi-publish avahi-browse dbus-daemon pdftotext zbarimg sqlite3 fc-list; do
  command -v "$cmd" >/dev/null 2>&1 || die "required command '$cmd' not found after apt install"
done

# --------------------------------------------------------------- venv ----
VENV="$REPO_ROOT/.venv"
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating virtualenv $VENV"
  # Debian's python3 needs python3-venv for ensurepip; install it on demand.
  if ! python3 -m venv "$VENV"; then
    log "python3 -m venv failed; installing python3-venv and retrying"
    rm -rf "$VENV"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y python3-venv </dev/null
    python3 -m venv "$VENV"
  fi
else
  log "virtualenv $VENV exists"
fi

if [[ ! -x "$VENV/bin/uv" ]]; then
  log "pip install uv"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q uv
else
  log "uv present ($("$VENV/bin/uv" --version))"
fi

[[ -f requirements.lock ]] || die "requirements.lock not found at $REPO_ROOT"

# Equivalent to `uv pip sync requirements.lock && uv pip install -e . --no-deps`,
# but in ONE sync: a plain sync would first uninstall the editable renkei
# (it is not in the lock) and then rebuild it on every run, breaking
# `import renkei` for anything running from this venv meanwhile.  Syncing the
# lock plus "-e ." leaves an up-to-date venv untouched ("Checked N packages").
log "uv pip sync requirements.lock + editable install of . (no deps beyond the lock)"
EDITABLE_REQ="$(mktemp)"
CLEANUP+=("$EDITABLE_REQ")
echo "-e $REPO_ROOT" >"$EDITABLE_REQ"
VIRTUAL_ENV="$VENV" "$VENV/bin/uv" pip sync --python "$VENV/bin/python" \
  requirements.lock "$EDITABLE_REQ"

# Playwright: no `playwright install`; tests launch executable_path=/usr/bin/chromium.
"$VENV/bin/python" -c 'import playwright.sync_api' \
  || die "playwright python package not importable from $VENV"

log "done (python: $("$VENV/bin/python" --version), chromium: $(/usr/bin/chromium --version 2>/dev/null || echo '?'))"
