"""`renkei update build|verify|install|rollback`: signed update bundles (firmware/updates.py).

IT staff run `verify` and `install` on a box as root (the code under /opt/renkei is not
writable by the renkei user); the release manager runs `build` on the offline release
machine that holds the release signing key. Exit status 0 on success, 1 when a bundle is
refused or an install is rolled back, with the reason on stderr.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

DEFAULT_ROOT = Path("/opt/renkei")
DEFAULT_KEY = Path("/etc/renkei/release-key.pub")
DEFAULT_UNIT = "renkei-edge.service"
DEFAULT_HEALTH_URL = "https://127.0.0.1:443/api/health"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "update",
        help="verify, install or roll back a signed update bundle",
        description="Signed update bundles: wheels plus a manifest signed by the "
        "federation's release key. See docs/appliance.md.",
    )
    actions = parser.add_subparsers(
        dest="action", metavar="ACTION", required=True, help="build, verify, install or rollback"
    )

    build = actions.add_parser("build", help="build and sign a bundle (release machine)")
    build.add_argument("wheels", nargs="+", type=Path, help="wheel files to put in the bundle")
    build.add_argument("--version", required=True, help="the release version, e.g. 0.2.0")
    build.add_argument("--min-from", default="0", help="oldest version it upgrades from")
    build.add_argument(
        "--signing-key", type=Path, required=True, help="release signing key file (hex seed)"
    )
    build.add_argument("--out", type=Path, default=Path("."), help="folder to write it to")
    build.set_defaults(func=run_build)

    verify = actions.add_parser("verify", help="check a bundle's signature, hashes, version")
    verify.add_argument("bundle", type=Path, help="the bundle (.tar)")
    _common(verify)
    verify.add_argument(
        "--installed-version",
        help="compare against this version instead of the one under --root",
    )
    verify.set_defaults(func=run_verify)

    install = actions.add_parser(
        "install", help="install beside the running version, switch, check, roll back"
    )
    install.add_argument("bundle", type=Path, help="the bundle (.tar)")
    _common(install)
    install.add_argument(
        "--unit", default=DEFAULT_UNIT, help=f"systemd unit to restart (default {DEFAULT_UNIT})"
    )
    install.add_argument(
        "--health-url", default=DEFAULT_HEALTH_URL, help="URL polled after the restart"
    )
    install.add_argument("--cafile", help="federation CA to verify the health URL against")
    install.add_argument(
        "--health-cmd",
        help="instead of restart+poll, run this command; exit 0 means healthy",
    )
    install.add_argument(
        "--health-timeout", type=float, default=180.0, help="seconds to wait (default 180)"
    )
    _data(install)
    install.set_defaults(func=run_install)

    rollback = actions.add_parser("rollback", help="switch back to the previous version")
    rollback.add_argument(
        "--root", type=Path, default=DEFAULT_ROOT, help=f"install root (default {DEFAULT_ROOT})"
    )
    rollback.add_argument("--unit", default=DEFAULT_UNIT, help="systemd unit to restart afterwards")
    rollback.add_argument(
        "--no-restart", action="store_true", help="only switch the symlink, restart nothing"
    )
    _data(rollback)
    rollback.set_defaults(func=run_rollback)


def _data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        action="append",
        help="data folder whose stores return to the previous version's schema on a "
        "rollback (repeatable; default /var/lib/renkei/box and /var/lib/renkei/hub)",
    )


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key",
        type=Path,
        default=DEFAULT_KEY,
        help=f"pinned release verify key (default {DEFAULT_KEY})",
    )
    parser.add_argument(
        "--root", type=Path, default=DEFAULT_ROOT, help=f"install root (default {DEFAULT_ROOT})"
    )


def _fail(exc: Exception) -> int:
    print(f"更新を中止しました / update refused: {exc}", file=sys.stderr)
    return 1


def run_build(args: argparse.Namespace) -> int:
    from firmware import updates

    try:
        key = updates.load_signing_key(args.signing_key)
        path = updates.build_bundle(
            args.wheels, args.version, key, args.out, min_from_version=args.min_from
        )
    except (updates.UpdateError, OSError) as exc:
        return _fail(exc)
    print(path)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from firmware import updates

    try:
        key = updates.load_verify_key(args.key)
        installed = args.installed_version or updates.installed_version(args.root)
        bundle = updates.verify_bundle(args.bundle, key, installed)
    except updates.UpdateError as exc:
        return _fail(exc)
    manifest = bundle.manifest
    print(
        f"OK: version {manifest.version} (from {installed or 'nothing'}), "
        f"{len(manifest.files)} wheels, created {manifest.created}, key {manifest.key_id}"
    )
    return 0


def run_install(args: argparse.Namespace) -> int:
    from firmware import updates

    check: updates.HealthCheck
    if args.health_cmd:
        check = shlex.split(args.health_cmd)
    else:

        def check(version_dir: Path) -> bool:
            restarted = subprocess.run(["systemctl", "restart", args.unit], check=False)
            if restarted.returncode != 0:
                return False
            return updates.wait_healthy(args.health_url, args.health_timeout, args.cafile)

    from firmware.schema import DEFAULT_DATA, downgrade

    data = args.data or list(DEFAULT_DATA)
    try:
        key = updates.load_verify_key(args.key)
        version = updates.install(
            args.bundle,
            args.root,
            key,
            check,
            health_timeout=args.health_timeout,
            before_switch_back=lambda old: downgrade(data, old),
        )
    except updates.UpdateError as exc:
        return _fail(exc)
    print(f"installed {version}; previous version kept for `renkei update rollback`")
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    """Stop the service, return the data to the schema the previous version knows (the
    down steps recorded in the stores), switch `current` back, start the service."""
    from firmware import updates
    from firmware.schema import DEFAULT_DATA, downgrade
    from shared.migrations import MigrationError

    data = args.data or list(DEFAULT_DATA)
    if not args.no_restart:
        subprocess.run(["systemctl", "stop", args.unit], check=False)
    try:
        version = updates.rollback(
            args.root, before_switch=lambda previous: downgrade(data, previous)
        )
    except (updates.UpdateError, MigrationError) as exc:
        if not args.no_restart:
            subprocess.run(["systemctl", "start", args.unit], check=False)
        return _fail(exc)
    if not args.no_restart:
        subprocess.run(["systemctl", "start", args.unit], check=False)
    print(f"rolled back: {version} is current")
    return 0
