"""The ceremony's commands: the hub makes its enrolment key and a request (`renkei
enrolment init`), the offline machine certifies it with the sealed root key (`certify`),
the hub installs the certificate (`install`) — and refuses one from another root or for
another key. The hub then enrols; a hub with the key still sealed says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from enrolment_world import PASSPHRASE, TOWN
from nacl.signing import SigningKey
from servers import serve

from cloud.app import create_app
from cloud.store import towns_entry
from shared.crypto import FederationRoot, TownKeys, seal_secret
from shared.storage import SqliteStorage

CEREMONY = "two halves of a ceremony passphrase"


def renkei(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "renkei", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "RENKEI_HUB_PASSPHRASE": PASSPHRASE,
            "RENKEI_CEREMONY_PASSPHRASE": CEREMONY,
            **env,
        },
    )


def test_init_certify_install_then_enrol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = tmp_path / "hub"
    storage = SqliteStorage(hub / "hub.db")
    public = TownKeys.generate(TOWN).public.to_json()
    storage.save_many([towns_entry(storage, TOWN), ((TOWN, "public"), json.dumps(public).encode())])
    storage.close()
    root_key, stranger_key = SigningKey.generate(), SigningKey.generate()
    root = FederationRoot(root_key)
    sealed_root = tmp_path / "root.sealed"
    sealed_root.write_bytes(seal_secret(bytes(root_key), CEREMONY))  # as the ceremony keeps it
    (tmp_path / "stranger.hex").write_text(bytes(stranger_key).hex())

    request = tmp_path / "request.json"
    done = renkei(
        "enrolment",
        "init",
        "--data",
        str(hub),
        "--root",
        bytes(root.verify_key).hex(),
        "--request",
        str(request),
    )
    assert done.returncode == 0, done.stderr
    assert not (hub / "enrolment.sealed").read_bytes().startswith(b"{")  # sealed, not plain
    again = renkei(
        "enrolment",
        "init",
        "--data",
        str(hub),
        "--root",
        bytes(root.verify_key).hex(),
        "--request",
        str(request),
    )
    assert again.returncode == 1 and "すでにあります" in again.stderr

    # no issuer certificate yet: no token
    early = renkei("enrolment", "token", "--data", str(hub), "--box", "seiro-1", "--town", TOWN)
    assert early.returncode == 1 and "認証されていません" in early.stderr

    foreign = tmp_path / "foreign.json"
    assert (
        renkei(
            "enrolment",
            "certify",
            str(request),
            "--root-key",
            str(tmp_path / "stranger.hex"),
            "--out",
            str(foreign),
        ).returncode
        == 1
    )
    # (the request names the root it expects; a stranger's root refuses to sign it)
    forced = dict(json.loads(request.read_text()), federation_root=None)
    (tmp_path / "forced.json").write_text(json.dumps(forced))
    assert (
        renkei(
            "enrolment",
            "certify",
            str(tmp_path / "forced.json"),
            "--root-key",
            str(tmp_path / "stranger.hex"),
            "--out",
            str(foreign),
        ).returncode
        == 0
    )
    refused = renkei("enrolment", "install", "--data", str(hub), str(foreign))
    assert refused.returncode == 1 and "連合ルート" in refused.stderr

    issuer = tmp_path / "issuer.json"
    signed = renkei(
        "enrolment", "certify", str(request), "--root-key", str(sealed_root), "--out", str(issuer)
    )
    assert signed.returncode == 0, signed.stderr
    installed = renkei("enrolment", "install", "--data", str(hub), str(issuer))
    assert installed.returncode == 0, installed.stderr

    token = renkei(
        "enrolment",
        "token",
        "--data",
        str(hub),
        "--box",
        "seiro-1",
        "--town",
        TOWN,
        "--stick",
        str(tmp_path / "stick"),
        "--hub-url",
        "https://hub.renkei.lan",
    )
    assert token.returncode == 0, token.stderr
    env_file = (tmp_path / "stick" / "renkei-enroll" / "enroll.env").read_text()
    assert f"RENKEI_TOKEN={token.stdout.strip()}" in env_file
    bad = renkei("enrolment", "token", "--data", str(hub), "--box", "Seiro 1", "--town", TOWN)
    assert bad.returncode == 1 and "ボックス名" in bad.stderr

    # the hub process unseals the key with the passphrase; without it, it says so
    monkeypatch.delenv("RENKEI_HUB_PASSPHRASE", raising=False)
    with serve(create_app(hub)) as url:
        sealed = httpx.post(f"{url}/api/enrol/challenge")
    assert sealed.status_code == 503 and "パスフレーズ" in sealed.json()["message"]
    enrolled = renkei(
        "enroll",
        "--hub",
        "http://unused",
        "--token",
        "x",
        "--data",
        str(tmp_path / "box"),
        "--root",
        "00" * 31,
    )
    assert enrolled.returncode == 1 and "連合ルートの公開鍵" in enrolled.stderr
