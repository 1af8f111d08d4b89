"""Enrolment with real processes on loopback: the hub runs (its enrolment key unsealed
with the operator's passphrase), the operator issues a token with `renkei enrolment
token`, the box runs `renkei enroll`, then starts with its certificate and syncs with the
hub; after `renkei enrolment revoke` the hub refuses its sync identity, as it refuses an
identity that never enrolled and a peer id merely stored in its database."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from enrolment_world import PASSPHRASE, TOWN, add_blobs, make_world
from servers import free_port

from cloud.sync_api import SyncService, enrol_peer
from edge.identity_api import certificate_fingerprint
from edge.peers import verify_answer
from edge.sync_agent import AgentError, run_session
from shared.storage import MemoryStorage, SqliteStorage
from shared.sync.identity import Identity
from shared.sync.log import BlobLog
from shared.sync.protocol import Limits
from shared.sync.replica import IDENTITY_KEY

ENV = {**os.environ, "RENKEI_HUB_PASSPHRASE": PASSPHRASE}


def renkei(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "renkei", *args],
        capture_output=True,
        text=True,
        env=ENV,
        input=stdin,
        timeout=120,
    )


def wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def answers(url: str, verify: ssl.SSLContext | bool = True) -> bool:
    try:
        return httpx.get(f"{url}/api/health", timeout=2, verify=verify).status_code == 200
    except httpx.HTTPError:
        return False


def sync_as(identity: Identity, hub_url: str) -> int:
    """One sync session with the hub under `identity`; the blobs it received."""
    service = SyncService(BlobLog(MemoryStorage()), identity.writer_id)
    with httpx.Client(base_url=hub_url, timeout=30) as client:
        return run_session(client, service, identity, TOWN, limits=Limits()).stats.stored


@pytest.mark.slow
def test_token_enroll_box_syncs_then_revoked_box_is_refused(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    root_hex = bytes(world.root.verify_key).hex()
    box_data, box_tls = tmp_path / "box" / "data", tmp_path / "box" / "tls"

    issued = renkei(
        "enrolment",
        "token",
        "--data",
        str(world.hub),
        "--box",
        "seiro-1",
        "--town",
        TOWN,
        "--tls-dir",
        str(world.tls),
    )
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert token.startswith("rk1-")

    hub_port, box_port = free_port(), free_port()
    hub_url = f"http://127.0.0.1:{hub_port}"
    with (tmp_path / "hub.log").open("wb") as log:
        hub = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "renkei",
                "hub",
                "--data",
                str(world.hub),
                "--port",
                str(hub_port),
            ],
            env=ENV,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    box: subprocess.Popen[bytes] | None = None
    try:
        wait(lambda: answers(hub_url) or hub.poll() is not None, 60, "hub")
        assert hub.poll() is None, (tmp_path / "hub.log").read_text()

        # an identity that never enrolled, and a peer id only stored in the hub's store
        stranger = Identity.generate()
        storage = SqliteStorage(world.hub / "hub.db")
        enrol_peer(storage, stranger.writer_id)  # what admitted peers before enrolment
        storage.close()
        with pytest.raises(AgentError, match="not enrolled"):
            sync_as(stranger, hub_url)

        # the token on stdin, as first boot hands it over
        enrolled = renkei(
            "enroll",
            "--hub",
            hub_url,
            "--token-file",
            "-",
            "--data",
            str(box_data),
            "--tls",
            str(box_tls),
            "--root",
            root_hex,
            stdin=f"RENKEI_HUB={hub_url}\nRENKEI_TOKEN={token}\n",
        )
        assert enrolled.returncode == 0, enrolled.stderr
        result = json.loads(enrolled.stdout)
        assert (result["town"], result["box_id"]) == (TOWN, "seiro-1")

        # used again by another box: refused in Japanese and English, exit 1
        again = renkei(
            "enroll",
            "--hub",
            hub_url,
            "--token",
            token,
            "--data",
            str(tmp_path / "other"),
            "--root",
            root_hex,
        )
        assert again.returncode == 1
        assert "すでに別のボックス" in again.stderr and "already used" in again.stderr

        box_url = f"https://127.0.0.1:{box_port}"
        context = ssl.create_default_context(cafile=world.ca)
        with (tmp_path / "box.log").open("wb") as log:
            box = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "renkei",
                    "box",
                    "--hub",
                    hub_url,
                    "--town",
                    TOWN,
                    "--data",
                    str(box_data),
                    "--tls",
                    str(box_tls),
                    "--port",
                    str(box_port),
                ],
                env=ENV,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait(lambda: answers(box_url, context) or box.poll() is not None, 90, "box")
        assert box.poll() is None, (tmp_path / "box.log").read_text()

        # the box presents its enrolment to peers: the certificate chains to the root
        nonce = os.urandom(32).hex()
        with (
            httpx.Client(verify=context) as client,
            client.stream("GET", f"{box_url}/api/identity", params={"nonce": nonce}) as response,
        ):
            der = (
                response.extensions["network_stream"]
                .get_extra_info("ssl_object")
                .getpeercert(True)
            )
            answer = json.loads(response.read())
        statement, cert = verify_answer(
            answer, nonce=nonce, root=world.root.verify_key, now=datetime.now(UTC), tls_der=der
        )
        assert (cert.subject, cert.town) == ("seiro-1", TOWN)
        assert statement.certificate == certificate_fingerprint(cert)

        # ... and syncs: the hub's blobs reach the box's replica
        def box_blobs() -> int:
            replica = SqliteStorage(box_data / "replica.db")
            try:
                return BlobLog(replica).count(TOWN)
            finally:
                replica.close()

        wait(lambda: box_blobs() >= 3, 60, "the box to pull the hub's blobs")
        add_blobs(world.hub, world.town, 2, "b")  # new data at the hub
        wait(lambda: box_blobs() >= 5, 60, "the box to pull the new blobs")

        # the box's own sync identity, as enrolled
        replica = SqliteStorage(box_data / "replica.db")
        seed = replica.load(IDENTITY_KEY)
        replica.close()
        assert seed is not None
        identity = Identity.from_bytes(seed)
        assert sync_as(identity, hub_url) >= 0  # admitted

        revoked = renkei(
            "enrolment",
            "revoke",
            "--data",
            str(world.hub),
            "--box",
            "seiro-1",
            "--reason",
            "lost in the flood drill",
        )
        assert revoked.returncode == 0, revoked.stderr
        with pytest.raises(AgentError, match="not enrolled"):
            sync_as(identity, hub_url)
        # the running box no longer receives anything new
        add_blobs(world.hub, world.town, 2, "c")
        time.sleep(8)  # more than the agent's pull interval (5 s)
        assert box_blobs() == 5

        listing = renkei("enrolment", "list", "--data", str(world.hub), "--json")
        boxes = json.loads(listing.stdout)["boxes"]
        assert boxes[0]["box"] == "seiro-1" and boxes[0]["revoked_at"] is not None
        assert boxes[0]["last_seen"] is not None
    finally:
        for process in (box, hub):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=20)
