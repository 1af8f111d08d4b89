"""Signed update bundles: build, verify, install beside the running version, roll back.

A bundle is an uncompressed POSIX tar holding exactly

    manifest.json       canonical JSON (sorted keys, no spaces, UTF-8):
                        {"format": "renkei-update/1", "version": "0.2.0",
                         "min_from_version": "0.1.0", "created": "2026-01-01T00:00:00Z",
                         "key_id": "<BLAKE2b-128 of the release verify key, hex>",
                         "files": {"wheels/x.whl": {"sha256": "<hex>", "size": N}, ...}}
    manifest.sig        detached Ed25519 signature (64 bytes) over
                        b"renkei-update-manifest/1" + b"\\0" + manifest.json
    wheels/*.whl        every wheel the new version needs (installed with --no-index)

signed by the federation's **release key** — an Ed25519 key of its own, made in the key
ceremony beside (not equal to) the federation root, whose verify key every box pins at
/etc/renkei/release-key.pub. The root certifies towns and boxes only (BRIEF §3).

Verification refuses, before anything is unpacked: a bundle without signature, one
signed by another key, a manifest or any member whose bytes differ from what was signed,
members that are missing or not listed, and a version that is not newer than the one
installed (a downgrade or a replay) or that cannot upgrade from it (`min_from_version`).

Installed layout under `root` (the box: /opt/renkei):

    versions/<version>/   a venv per version (bin/renkei, renkei-manifest.json)
    current  -> versions/<version>     what the units run; switched with one rename
    previous -> versions/<version>     what `rollback` returns to
    update.lock                        one installer at a time (flock)

`install` builds the new venv beside the running one, switches `current` atomically, runs
the health check, and switches back if it fails, so a box is never left on a version that
failed its check. Going back (a failed check, or `rollback`) first returns the data to the
schema the older version knows (`before_switch_back` / `before_switch`, firmware/schema.py:
the down steps recorded in the stores, shared/migrations.py).

Errors:

    UpdateError
     ├── BundleError          not a bundle: unreadable tar, bad manifest, unsafe member
     ├── UnsignedBundle       no manifest.sig
     ├── WrongKey             signed by a key other than the pinned release key
     ├── TamperedBundle       signature or a member's SHA-256 does not match
     ├── DowngradeRefused     not newer than the installed version, or below min_from
     ├── InstallError         venv or pip failed; nothing was switched
     ├── HealthCheckFailed    the new version failed its check; `current` was switched back
     └── RollbackError        nothing to roll back to
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nacl.exceptions
from nacl.signing import SigningKey, VerifyKey

from shared.crypto import key_id

FORMAT = "renkei-update/1"
SIGNATURE_LABEL = b"renkei-update-manifest/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
_WHEEL_NAME = re.compile(r"^wheels/[A-Za-z0-9_.+-]+\.whl$")
_VERSION = re.compile(r"^\d+(\.\d+){0,3}$")
MAX_MEMBER_BYTES = 512 * 1024 * 1024

# ---------------------------------------------------------------------------- errors


class UpdateError(Exception):
    """Base of every error this module raises."""


class BundleError(UpdateError):
    """Not a readable update bundle."""


class UnsignedBundle(UpdateError):
    """The bundle carries no signature."""


class WrongKey(UpdateError):
    """The bundle is signed by a key other than the pinned release key."""


class TamperedBundle(UpdateError):
    """A byte differs from what the release key signed."""


class DowngradeRefused(UpdateError):
    """The bundle is not newer than the installed version, or cannot upgrade from it."""


class InstallError(UpdateError):
    """The new version could not be installed; nothing was switched."""


class HealthCheckFailed(UpdateError):
    """The new version failed its health check; `current` points at the old one again."""


class RollbackError(UpdateError):
    """There is no previous version to return to."""


# ---------------------------------------------------------------------------- versions


def parse_version(text: str) -> tuple[int, ...]:
    """A release version "N[.N[.N[.N]]]" as a tuple of ints, compared numerically
    (0.10.0 > 0.9.0). Anything else (pre-releases, local labels) is refused."""
    if not isinstance(text, str) or not _VERSION.match(text):
        raise BundleError(f"version must look like 1.2.3, not {text!r}")
    parts = tuple(int(p) for p in text.split("."))
    return parts + (0,) * (4 - len(parts))


# ---------------------------------------------------------------------------- keys


def load_verify_key(path: Path) -> VerifyKey:
    """A release verify key file: 64 hex digits (32 bytes), whitespace ignored."""
    try:
        return VerifyKey(bytes.fromhex(path.read_text().strip()))
    except (OSError, ValueError, nacl.exceptions.CryptoError) as exc:
        raise UpdateError(f"cannot read release verify key {path}: {exc}") from exc


def load_signing_key(path: Path) -> SigningKey:
    """A release signing key file: 64 hex digits (the 32-byte seed). Kept offline."""
    try:
        return SigningKey(bytes.fromhex(path.read_text().strip()))
    except (OSError, ValueError, nacl.exceptions.CryptoError) as exc:
        raise UpdateError(f"cannot read release signing key {path}: {exc}") from exc


# ---------------------------------------------------------------------------- bundles


def _canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), mtime, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def build_bundle(
    wheels: Sequence[Path],
    version: str,
    release_key: SigningKey,
    out_dir: Path,
    *,
    min_from_version: str = "0",
    created: datetime | None = None,
) -> Path:
    """Write `renkei-update-<version>.tar` into `out_dir` and return its path. The same
    inputs and `created` give the same bytes (members sorted, fixed owners and mtime)."""
    parse_version(version)
    parse_version(min_from_version)
    if not wheels:
        raise BundleError("a bundle needs at least one wheel")
    members: dict[str, bytes] = {}
    for wheel in wheels:
        name = f"wheels/{wheel.name}"
        if not _WHEEL_NAME.match(name):
            raise BundleError(f"not a wheel file name: {wheel.name!r}")
        if name in members:
            raise BundleError(f"two wheels named {wheel.name!r}")
        members[name] = wheel.read_bytes()
    when = (created or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    manifest = _canonical(
        {
            "format": FORMAT,
            "version": version,
            "min_from_version": min_from_version,
            "created": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "key_id": key_id(release_key.verify_key),
            "files": {
                name: {"sha256": _sha256(data), "size": len(data)}
                for name, data in sorted(members.items())
            },
        }
    )
    signature = release_key.sign(SIGNATURE_LABEL + b"\0" + manifest).signature
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"renkei-update-{version}.tar"
    tmp = path.with_suffix(".tar.tmp")
    mtime = int(when.timestamp())
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, MANIFEST, manifest, mtime)
        _add(tar, SIGNATURE, signature, mtime)
        for name, data in sorted(members.items()):
            _add(tar, name, data, mtime)
    os.replace(tmp, path)
    return path


@dataclass(frozen=True, slots=True)
class Manifest:
    version: str
    min_from_version: str
    created: str
    key_id: str
    files: dict[str, str]  # member name -> sha256 hex
    raw: bytes


@dataclass(frozen=True, slots=True)
class VerifiedBundle:
    """A bundle whose signature, members and version checks have passed; `members` holds
    the verified bytes, so nothing is read from the file again after verification."""

    manifest: Manifest
    members: dict[str, bytes]


def _read_members(path: Path) -> dict[str, bytes]:
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for info in tar:
                if not info.isfile():
                    raise BundleError(f"bundle member {info.name!r} is not a regular file")
                name = info.name
                if name not in (MANIFEST, SIGNATURE) and not _WHEEL_NAME.match(name):
                    raise BundleError(f"unexpected bundle member {name!r}")
                if name in members:
                    raise BundleError(f"bundle member {name!r} appears twice")
                if info.size > MAX_MEMBER_BYTES:
                    raise BundleError(f"bundle member {name!r} is too large")
                handle = tar.extractfile(info)
                assert handle is not None  # regular file
                members[name] = handle.read()
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise BundleError(f"{path} is not a readable update bundle: {exc}") from exc
    return members


def _parse_manifest(raw: bytes) -> Manifest:
    try:
        data = json.loads(raw)
        files = {name: entry["sha256"] for name, entry in data["files"].items()}
        manifest = Manifest(
            version=data["version"],
            min_from_version=data["min_from_version"],
            created=data["created"],
            key_id=data["key_id"],
            files=files,
            raw=raw,
        )
        fmt = data["format"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BundleError(f"manifest.json is malformed: {exc}") from exc
    if fmt != FORMAT:
        raise BundleError(f"unknown bundle format {fmt!r} (expected {FORMAT})")
    parse_version(manifest.version)
    parse_version(manifest.min_from_version)
    return manifest


def verify_bundle(
    path: Path, release_verify_key: VerifyKey, installed_version: str | None
) -> VerifiedBundle:
    """Check everything about the bundle at `path` that can be checked without installing
    it. `installed_version` None means a first install (no downgrade check)."""
    members = _read_members(path)
    if MANIFEST not in members:
        raise BundleError(f"{path} has no manifest.json")
    if SIGNATURE not in members:
        raise UnsignedBundle(f"{path} is not signed (no manifest.sig): refused")
    raw = members[MANIFEST]
    manifest = _parse_manifest(raw)  # only to name the signer; trusted after the signature
    expected = key_id(release_verify_key)
    if manifest.key_id != expected:
        raise WrongKey(
            f"{path} is signed by release key {manifest.key_id}, "
            f"not by this box's release key {expected}: refused"
        )
    try:
        release_verify_key.verify(SIGNATURE_LABEL + b"\0" + raw, members[SIGNATURE])
    except (nacl.exceptions.BadSignatureError, ValueError) as exc:
        raise TamperedBundle(
            f"{path}: the manifest's signature does not verify (altered manifest or "
            "signature, or signed by another key): refused"
        ) from exc
    payload = {name: data for name, data in members.items() if name not in (MANIFEST, SIGNATURE)}
    if set(payload) != set(manifest.files):
        missing = sorted(set(manifest.files) - set(payload))
        extra = sorted(set(payload) - set(manifest.files))
        raise TamperedBundle(f"{path}: members missing {missing}, not signed {extra}: refused")
    for name, data in sorted(payload.items()):
        if _sha256(data) != manifest.files[name]:
            raise TamperedBundle(f"{path}: {name} differs from the signed manifest: refused")
    if not payload:
        raise BundleError(f"{path} carries no wheels")
    if installed_version is not None:
        new, old = parse_version(manifest.version), parse_version(installed_version)
        if new <= old:
            raise DowngradeRefused(
                f"{path} holds version {manifest.version}, not newer than the installed "
                f"{installed_version}: refused (use `renkei update rollback` to go back)"
            )
        if old < parse_version(manifest.min_from_version):
            raise DowngradeRefused(
                f"version {manifest.version} upgrades only from {manifest.min_from_version} "
                f"or later; install the intermediate release first (installed: "
                f"{installed_version})"
            )
    return VerifiedBundle(manifest, payload)


# ---------------------------------------------------------------------------- install


def installed_version(root: Path) -> str | None:
    """The version `root/current` points at, or None before the first install."""
    return _link_version(root / "current")


def _link_version(link: Path) -> str | None:
    try:
        target = os.readlink(link)
    except FileNotFoundError:
        return None
    return Path(target).name


def _switch(link: Path, version: str) -> None:
    """Point `link` at versions/<version> with one rename (atomic for readers)."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(Path("versions") / version)
    os.replace(tmp, link)
    _fsync_dir(link.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "update.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise UpdateError(f"another update is running in {root}") from exc
        yield


HealthCheck = Sequence[str] | Callable[[Path], bool]


def _healthy(check: HealthCheck, version_dir: Path, timeout: float) -> bool:
    if callable(check):
        return check(version_dir)
    env = dict(os.environ, RENKEI_VERSION_DIR=str(version_dir))
    try:
        result = subprocess.run(list(check), env=env, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _run(command: list[str], what: str) -> None:
    # Only the bundle's wheels: no pip.conf find-links, index or constraints of the host.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        raise InstallError(f"{what} failed ({result.returncode}): {result.stderr[-2000:]}")


def _build_venv(bundle: VerifiedBundle, target: Path, python: str) -> None:
    """A venv without pip of its own, filled by the running interpreter's pip
    (`pip --python`): seconds instead of an ensurepip per version. Release bundles carry
    a pip wheel, so every installed version can in turn install the next one."""
    if target.exists():
        shutil.rmtree(target)  # a leftover of an install that did not finish
    _run([python, "-m", "venv", "--without-pip", str(target)], "creating the venv")
    with tempfile.TemporaryDirectory(prefix="renkei-wheels-") as tmp:
        wheels = []
        for name, data in bundle.members.items():
            wheel = Path(tmp) / Path(name).name
            wheel.write_bytes(data)
            wheels.append(str(wheel))
        _run(
            [python, "-m", "pip", "--python", str(target / "bin" / "python"), "install",
             "--no-index", "--disable-pip-version-check", "--no-cache-dir",
             "--find-links", tmp, *sorted(wheels)],
            "pip install of the bundle's wheels",
        )  # fmt: skip
    (target / "renkei-manifest.json").write_bytes(bundle.manifest.raw)


def install(
    bundle_path: Path,
    root: Path,
    release_verify_key: VerifyKey,
    health_check: HealthCheck,
    *,
    python: str = sys.executable,
    health_timeout: float = 300.0,
    before_switch_back: Callable[[Path], object] | None = None,
) -> str:
    """Verify the bundle, install it into root/versions/<version>, switch `current`, run
    the health check; switch back and raise HealthCheckFailed if it fails. Returns the
    installed version. `health_check` is a command (run with $RENKEI_VERSION_DIR set) or a
    callable taking the version directory."""
    with _locked(root):
        running = installed_version(root)
        bundle = verify_bundle(bundle_path, release_verify_key, running)
        version = bundle.manifest.version
        target = root / "versions" / version
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            _build_venv(bundle, target, python)
        except InstallError:
            shutil.rmtree(target, ignore_errors=True)
            raise
        earlier = _link_version(root / "previous")
        if running is not None:
            _switch(root / "previous", running)
        _switch(root / "current", version)
        if _healthy(health_check, target, health_timeout):
            return version
        if running is None:
            (root / "current").unlink()
            raise HealthCheckFailed(
                f"version {version} failed its health check; no version is current"
            )
        if before_switch_back is not None:  # undo the new version's schema migrations
            before_switch_back(root / "versions" / running)
        _switch(root / "current", running)
        if earlier is not None:
            _switch(root / "previous", earlier)
        else:
            (root / "previous").unlink()
        # Re-run the check so a service restarted by it runs the old version again.
        _healthy(health_check, root / "versions" / running, health_timeout)
        raise HealthCheckFailed(
            f"version {version} failed its health check; rolled back to {running}"
        )


def rollback(root: Path, before_switch: Callable[[Path], object] | None = None) -> str:
    """Swap `current` and `previous`; return the version now current. `before_switch`
    (given the previous version's directory) runs first, e.g. the data's down
    migrations (firmware/schema.py); if it raises, nothing is switched."""
    with _locked(root):
        current, previous = installed_version(root), _link_version(root / "previous")
        if previous is None or not (root / "versions" / previous).is_dir():
            raise RollbackError(f"no previous version to roll back to in {root}")
        if before_switch is not None:
            before_switch(root / "versions" / previous)
        _switch(root / "current", previous)
        if current is not None:
            _switch(root / "previous", current)
        return previous


def wait_healthy(url: str, timeout: float, cafile: str | None = None) -> bool:
    """Poll a health URL until it answers {"status": "ok"} or `timeout` passes (used by
    the default health check after a restart)."""
    from firmware.healthcheck import check

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check(url, cafile=cafile, timeout=5):
            return True
        time.sleep(1)
    return False
