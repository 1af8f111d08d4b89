"""Signed update bundles (firmware/updates.py): a valid bundle installs into its own venv
and switches `current`; unsigned, tampered (any byte of any member), wrong-key, downgrade
and replayed bundles are refused before anything is installed; a failing health check
switches `current` back to the previous version."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from firmware import updates

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
DUMMY = "renkei_dummy"  # the package in the dummy wheels (conftest.py)


def _bundle(wheels: dict[str, Path], version: str, key: SigningKey, out: Path, **kw: str) -> Path:
    return updates.build_bundle([wheels[version]], version, key, out, created=CREATED, **kw)


def _health(root: Path) -> list[str]:
    """What the box's check does, in small: run the code that `current` now points at."""
    code = f"import sys, {DUMMY}; sys.exit(0 if {DUMMY}.HEALTHY else 1)"
    return [str(root / "current" / "bin" / "python"), "-c", code]


def _current_dummy_version(root: Path) -> str:
    python = root / "current" / "bin" / "python"
    out = subprocess.run(
        [str(python), "-c", f"import {DUMMY}; print({DUMMY}.VERSION)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def _rewrite(path: Path, change: dict[str, bytes | None]) -> None:
    """Rewrite the tar with some members replaced (or dropped, for None)."""
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            new = change.get(info.name, data)
            if new is None:
                continue
            info.size = len(new)
            tar.addfile(info, io.BytesIO(new))


# ------------------------------------------------------------------- verification


def test_valid_bundle_verifies_and_build_is_reproducible(
    tmp_path: Path, dummy_wheels: dict[str, Path], release_key: SigningKey
) -> None:
    first = _bundle(dummy_wheels, "1.0.0", release_key, tmp_path / "a")
    again = _bundle(dummy_wheels, "1.0.0", release_key, tmp_path / "b")
    assert first.read_bytes() == again.read_bytes()
    verified = updates.verify_bundle(first, release_key.verify_key, None)
    assert verified.manifest.version == "1.0.0"
    assert list(verified.members) == [f"wheels/{dummy_wheels['1.0.0'].name}"]


def test_unsigned_bundle_is_refused(
    tmp_path: Path, dummy_wheels: dict[str, Path], release_key: SigningKey
) -> None:
    path = _bundle(dummy_wheels, "1.0.0", release_key, tmp_path)
    _rewrite(path, {updates.SIGNATURE: None})
    with pytest.raises(updates.UnsignedBundle, match="not signed"):
        updates.verify_bundle(path, release_key.verify_key, None)


def test_bundle_signed_by_another_key_is_refused(
    tmp_path: Path, dummy_wheels: dict[str, Path], release_key: SigningKey
) -> None:
    path = _bundle(dummy_wheels, "1.0.0", SigningKey.generate(), tmp_path)
    with pytest.raises(updates.WrongKey, match="not by this box's release key"):
        updates.verify_bundle(path, release_key.verify_key, None)


def test_wrong_key_claiming_the_right_key_id_is_refused(
    tmp_path: Path, dummy_wheels: dict[str, Path], release_key: SigningKey
) -> None:
    """An attacker copies the release key's id into a manifest signed with their own key:
    the id is only a hint, the signature decides."""
    impostor = SigningKey.generate()
    path = _bundle(dummy_wheels, "1.0.0", impostor, tmp_path)
    with tarfile.open(path) as tar:
        raw = tar.extractfile(updates.MANIFEST).read()  # type: ignore[union-attr]
    manifest = json.loads(raw)
    manifest["key_id"] = updates.key_id(release_key.verify_key)
    forged = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    signature = impostor.sign(updates.SIGNATURE_LABEL + b"\0" + forged).signature
    _rewrite(path, {updates.MANIFEST: forged, updates.SIGNATURE: signature})
    with pytest.raises(updates.TamperedBundle, match="signature does not verify"):
        updates.verify_bundle(path, release_key.verify_key, None)


def test_any_byte_of_any_member_changed_is_refused(
    tmp_path: Path, dummy_wheels: dict[str, Path], release_key: SigningKey
) -> None:
    """Flip one byte at the start, middle and end of each member's data in the tar file
    itself (manifest, signature, wheel); every variant is refused."""
    path = _bundle(dummy_wheels, "1.0.0", release_key, tmp_path / "src")
    original = path.read_bytes()
    with tarfile.open(path) as tar:
        spans = {m.name: (m.offset_data, m.size) for m in tar}
    assert len(spans) == 3
    tried = 0
    for name, (start, size) in spans.items():
        for offset in {start, start + size // 2, start + size - 1}:
            tampered = bytearray(original)
            tampered[offset] ^= 0x01
            victim = tmp_path / f"t-{tried}.tar"
            victim.write_bytes(bytes(tampered))
            with pytest.raises((updates.TamperedBundle, updates.BundleError)) as caught:
                updates.verify_bundle(victim, release_key.verify_key, None)
            tried += 1
            if name != updates.MANIFEST:
                # the manifest may stop parsing; a signature or wheel flip is tampering
                assert isinstance(caught.value, updates.TamperedBundle), (name, offset)
    assert tried >= 7


def test_member_added_or_removed_is_refused(
    tmp_path: Path, dummy_wheels: dict[str, Path], release_key: SigningKey
) -> None:
    path = _bundle(dummy_wheels, "1.0.0", release_key, tmp_path)
    extra = tmp_path / "extra.tar"
    extra.write_bytes(path.read_bytes())
    _rewrite(extra, {})
    with tarfile.open(extra, "a") as tar:
        info = tarfile.TarInfo("wheels/evil-1.0-py3-none-any.whl")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(updates.TamperedBundle, match="not signed"):
        updates.verify_bundle(extra, release_key.verify_key, None)
    _rewrite(path, {f"wheels/{dummy_wheels['1.0.0'].name}": None})
    with pytest.raises(updates.TamperedBundle, match="missing"):
        updates.verify_bundle(path, release_key.verify_key, None)


def test_unsafe_member_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("../../etc/passwd")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(updates.BundleError, match="unexpected bundle member"):
        updates.verify_bundle(path, SigningKey.generate().verify_key, None)


def test_not_a_tar_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.tar"
    path.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(updates.BundleError, match="not a readable update bundle"):
        updates.verify_bundle(path, SigningKey.generate().verify_key, None)


@pytest.mark.parametrize("installed", ["1.0.0", "1.0", "1.0.1", "1.10.0"])
def test_downgrade_and_replay_are_refused(
    tmp_path: Path, dummy_wheels: dict[str, Path], release_key: SigningKey, installed: str
) -> None:
    path = _bundle(dummy_wheels, "1.0.0", release_key, tmp_path)
    with pytest.raises(updates.DowngradeRefused, match="not newer"):
        updates.verify_bundle(path, release_key.verify_key, installed)


def test_versions_compare_numerically() -> None:
    assert updates.parse_version("0.10.0") > updates.parse_version("0.9.9")
    assert updates.parse_version("1.0") == updates.parse_version("1.0.0")
    with pytest.raises(updates.BundleError):
        updates.parse_version("1.0.0rc1")


def test_min_from_version_is_enforced(
    tmp_path: Path, dummy_wheels: dict[str, Path], release_key: SigningKey
) -> None:
    path = _bundle(dummy_wheels, "3.0.0", release_key, tmp_path, min_from_version="2.0.0")
    with pytest.raises(updates.DowngradeRefused, match=r"upgrades only from 2\.0\.0"):
        updates.verify_bundle(path, release_key.verify_key, "1.0.0")
    assert updates.verify_bundle(path, release_key.verify_key, "2.0.0")


# ------------------------------------------------------------------- install / rollback


def test_install_switch_health_check_rollback(
    tmp_path: Path, dummy_wheels: dict[str, Path], release_key: SigningKey
) -> None:
    root = tmp_path / "opt-renkei"
    key = release_key.verify_key
    bundles = {v: _bundle(dummy_wheels, v, release_key, tmp_path / "b") for v in dummy_wheels}

    # 1.0.0: first install
    assert updates.install(bundles["1.0.0"], root, key, _health(root)) == "1.0.0"
    assert os.readlink(root / "current") == "versions/1.0.0"
    assert _current_dummy_version(root) == "1.0.0"
    assert (root / "versions" / "1.0.0" / "renkei-manifest.json").exists()

    # a refused bundle changes nothing
    with pytest.raises(updates.DowngradeRefused):
        updates.install(bundles["1.0.0"], root, key, _health(root))
    assert os.readlink(root / "current") == "versions/1.0.0"

    # 2.0.0 installs beside 1.0.0, fails its health check and is switched back
    with pytest.raises(updates.HealthCheckFailed, match=r"rolled back to 1\.0\.0"):
        updates.install(bundles["2.0.0"], root, key, _health(root))
    assert os.readlink(root / "current") == "versions/1.0.0"
    assert _current_dummy_version(root) == "1.0.0"
    assert not (root / "previous").exists()

    # 3.0.0 passes; 1.0.0 stays beside it as `previous`
    assert updates.install(bundles["3.0.0"], root, key, _health(root)) == "3.0.0"
    assert _current_dummy_version(root) == "3.0.0"
    assert os.readlink(root / "previous") == "versions/1.0.0"

    # rollback returns to 1.0.0, and a second rollback goes forward again
    assert updates.rollback(root) == "1.0.0"
    assert _current_dummy_version(root) == "1.0.0"
    assert updates.rollback(root) == "3.0.0"


def test_health_check_that_would_pass_on_old_code_still_rolls_back(
    tmp_path: Path, dummy_wheels: dict[str, Path], release_key: SigningKey
) -> None:
    """The check must run against the new version: a callable sees its directory."""
    root = tmp_path / "r"
    key = release_key.verify_key
    one = _bundle(dummy_wheels, "1.0.0", release_key, tmp_path)
    three = _bundle(dummy_wheels, "3.0.0", release_key, tmp_path)
    updates.install(one, root, key, lambda d: True)
    seen: list[str] = []

    def check(version_dir: Path) -> bool:
        seen.append(version_dir.name)
        return version_dir.name != "3.0.0"

    with pytest.raises(updates.HealthCheckFailed):
        updates.install(three, root, key, check)
    assert seen == ["3.0.0", "1.0.0"]
    assert updates.installed_version(root) == "1.0.0"


def test_rollback_without_previous_is_refused(tmp_path: Path) -> None:
    with pytest.raises(updates.RollbackError):
        updates.rollback(tmp_path)


def test_broken_wheel_install_switches_nothing(tmp_path: Path, release_key: SigningKey) -> None:
    """A signed bundle whose wheel pip cannot install leaves `current` untouched."""
    bogus = tmp_path / "renkei_dummy-9.0.0-py3-none-any.whl"
    bogus.write_bytes(b"this is not a zip file")
    path = updates.build_bundle([bogus], "9.0.0", release_key, tmp_path / "b", created=CREATED)
    root = tmp_path / "r"
    with pytest.raises(updates.InstallError, match="pip install"):
        updates.install(path, root, release_key.verify_key, lambda d: True)
    assert updates.installed_version(root) is None
    assert not (root / "versions" / "9.0.0").exists()
