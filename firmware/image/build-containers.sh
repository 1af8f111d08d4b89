#!/usr/bin/env bash
# Build Dockerfile.edge and Dockerfile.cloud with podman, then start both images and wait
# for their HEALTHCHECKs. Not part of the default test run (minutes, needs the Debian and
# PyPI mirrors). Run as root from the repository:
#
#   bash firmware/image/build-containers.sh            # build + smoke test
#   KEEP=1 bash firmware/image/build-containers.sh     # leave the containers running
#
# Where the registry is unreachable (as on the project's build machines), the pinned base
# image cannot be pulled; the script then builds a stand-in of the same Debian release
# with debootstrap, imports it as localhost/renkei-base:bookworm-slim and passes it as
# --build-arg BASE_IMAGE. Everything after FROM is then exactly the Dockerfiles' steps.
#
# Workarounds for running podman inside an unprivileged container (harmless elsewhere):
# runc instead of crun (crun refuses hybrid cgroup v1/v2 hosts), explicit --ulimit values
# (the default ones cannot be raised without CAP_SYS_RESOURCE), host networking for RUN,
# and the host's CA bundle for pip (below). `--format docker`: the OCI image format has no
# HEALTHCHECK, and podman drops it silently when building OCI images.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
log() { printf '[containers] %s\n' "$*"; }

PINNED_BASE="$(sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile.edge)"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
WORK="${WORK:-/var/tmp/renkei-containers}"
mkdir -p "$WORK"

need=()
for cmd in podman runc debootstrap; do command -v "$cmd" >/dev/null || need+=("$cmd"); done
if ((${#need[@]})); then
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y podman runc debootstrap </dev/null >/dev/null
fi

PODMAN=(podman --runtime runc)
LIMITS=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
# No systemd here to run the health checks on a timer: `podman healthcheck run` below runs
# the image's HEALTHCHECK on demand instead.
RUN_OPTS=("${LIMITS[@]}" --health-interval=disable)

if "${PODMAN[@]}" pull "$PINNED_BASE" >/dev/null 2>&1; then
  BASE="$PINNED_BASE"
  log "base image: $BASE (pulled)"
else
  BASE=localhost/renkei-base:bookworm-slim
  if ! "${PODMAN[@]}" image exists "$BASE"; then
    log "registry unreachable: building a stand-in base ($BASE) with debootstrap"
    rm -rf "$WORK/base"
    debootstrap --variant=minbase bookworm "$WORK/base" "$MIRROR" >"$WORK/debootstrap.log"
    rm -rf "$WORK/base/var/lib/apt/lists/"* "$WORK/base/var/cache/apt/archives/"*.deb
    tar -C "$WORK/base" -c . | "${PODMAN[@]}" import - "$BASE" >/dev/null
  fi
  log "base image: $BASE (stand-in for $PINNED_BASE)"
fi

# Build context: tracked and untracked-but-not-ignored files only (no .venv, no var/).
CTX="$WORK/context"
rm -rf "$CTX" && mkdir -p "$CTX"
git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents {} "$CTX" 2>/dev/null || true

# A TLS-intercepting proxy between the build and PyPI (as on the project's build machines)
# has its CA in the host's bundle, not in Debian's: hand pip the host's bundle during RUN
# steps through a mounted /etc/pip.conf, without touching the Dockerfiles.
BUILD_MOUNTS=()
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
  printf '[global]\ncert = /run/renkei-host-ca.crt\n' >"$WORK/pip.conf"
  BUILD_MOUNTS=(-v "/etc/ssl/certs/ca-certificates.crt:/run/renkei-host-ca.crt:ro"
                -v "$WORK/pip.conf:/etc/pip.conf:ro")
fi

for image in edge cloud; do
  start=$(date +%s)
  log "building renkei-$image from Dockerfile.$image"
  "${PODMAN[@]}" build --format docker --network host "${LIMITS[@]}" "${BUILD_MOUNTS[@]}" --build-arg "BASE_IMAGE=$BASE" \
    -f "$CTX/Dockerfile.$image" -t "localhost/renkei-$image:dev" "$CTX" >"$WORK/build-$image.log" 2>&1 \
    || { tail -40 "$WORK/build-$image.log"; exit 1; }
  log "built renkei-$image in $(( $(date +%s) - start )) s ($("${PODMAN[@]}" image inspect --format '{{.Size}}' "localhost/renkei-$image:dev") bytes)"
done

# --------------------------------------------------------------------- smoke test
DATA="$WORK/data"
rm -rf "$DATA" && mkdir -p "$DATA/hub" "$DATA/edge"
chown -R 10001:10001 "$DATA"
"${PODMAN[@]}" rm -f renkei-hub-smoke renkei-edge-smoke >/dev/null 2>&1 || true
cleanup() {
  if [[ -z "${KEEP:-}" ]]; then
    "${PODMAN[@]}" rm -f renkei-hub-smoke renkei-edge-smoke >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

wait_healthy() {
  local name=$1
  for _ in $(seq 1 90); do
    if "${PODMAN[@]}" healthcheck run "$name" >/dev/null 2>&1; then
      log "$name: HEALTHCHECK passes"
      return 0
    fi
    sleep 2
  done
  "${PODMAN[@]}" logs "$name" | tail -20
  log "$name: HEALTHCHECK never passed"
  return 1
}

HUB_PORT=${HUB_PORT:-18700}
# The hub with its image's own CMD, on podman's bridge, published on loopback only.
"${PODMAN[@]}" run -d --name renkei-hub-smoke "${RUN_OPTS[@]}" -p "127.0.0.1:$HUB_PORT:8700" \
  -v "$DATA/hub:/var/lib/renkei" localhost/renkei-cloud:dev >/dev/null
wait_healthy renkei-hub-smoke

# A throwaway TLS CA and server certificate, made with the image's own code.
"${PODMAN[@]}" run --rm --network none "${LIMITS[@]}" -v "$DATA/edge:/var/lib/renkei" \
  localhost/renkei-edge:dev python -c '
from edge.tls import create_ca, issue_server_cert, write_server_files
ca, key = create_ca()
cert, server_key = issue_server_cert(ca, key, ["localhost"], ["127.0.0.1"])
write_server_files("/var/lib/renkei/tls", cert, server_key)'
"${PODMAN[@]}" run -d --name renkei-edge-smoke --network host "${RUN_OPTS[@]}" \
  -v "$DATA/edge:/var/lib/renkei" -e "RENKEI_HUB=http://127.0.0.1:$HUB_PORT" -e RENKEI_TOWN=15307 \
  localhost/renkei-edge:dev >/dev/null
wait_healthy renkei-edge-smoke
"${PODMAN[@]}" exec renkei-edge-smoke fc-list | grep -q IPAmj || { log "IPAmj font missing"; exit 1; }
log "IPAmj明朝 present in renkei-edge"
"${PODMAN[@]}" exec renkei-edge-smoke id -u | grep -qx 10001
log "containers run as uid 10001"
log "OK"
