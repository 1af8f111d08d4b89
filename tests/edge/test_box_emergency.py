"""Break-glass, expiry and ratification on a real host box (hub and box as processes on
loopback): a host supervisor and two roster clerks of the stricken town open it for a
short while; it shows as 未承認 until a deputy ratifies; the same break-glass cannot be
done twice; after expiry the visiting clerks' correct passwords are refused and the town's
worker is stopped — and every step is in the towns' verified audit chains."""

from __future__ import annotations

import json
import math
import os
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from federation import enrol_box_dir
from nacl.signing import SigningKey
from servers import free_port
from test_box_isolation import _memory_contains
from test_box_processes import PASSWORD, _log_in, _wait

from cloud.custody import Custody
from cloud.emergency import feed_key
from cloud.importer import import_export
from edge.tls import create_ca, issue_server_cert, write_server_files
from shared import crypto
from shared.activation import issue_activation, issue_ratification, issue_revocation, parse_record
from shared.audit import box_writer_id, verify_town
from shared.export_csv import read_town
from shared.model import Role
from shared.storage import SqliteStorage

HUB_PASSPHRASE = "hub passphrase for the emergency test"


@dataclass
class Site:
    url: str
    hub_url: str
    root: Path
    supervisor: str
    visitor: str  # named by a deputy's activation
    glass: tuple[str, str]  # the two roster clerks who sign the break-glass
    deputy: crypto.ClerkKeys
    custody: Custody
    box: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, small_export_dir: Path) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("emergency")
    storage = SqliteStorage(root / "hub" / "hub.db")
    custody = Custody.create()
    assert import_export(small_export_dir, storage, custody=custody).ok
    seiro = read_town(small_export_dir / "15307").clerks
    izumozaki = read_town(small_export_dir / "15405").clerks
    supervisor = next(c for c in seiro if Role.SUPERVISOR in c.roles)
    roster = [c for c in izumozaki if c.on_roster and c.deputy_rank == 0][:3]
    deputy = next(c for c in izumozaki if c.deputy_rank > 0 and Role.REPRESENTATIVE in c.roles)
    for clerk in (supervisor, *roster, deputy):
        custody.provision_clerk(storage, clerk, PASSWORD, kdf_limits=crypto.INTERACTIVE)
    record = json.loads(storage.load(("15405", "credential", deputy.login_id)) or b"{}")
    deputy_keys = crypto.unwrap_clerk_keys(bytes.fromhex(record["wrapped"]), PASSWORD)
    storage.close()
    custody.save(root / "hub", HUB_PASSPHRASE)
    enrol_box_dir(root / "hub", root / "box" / "data", "15307")
    ca_cert, ca_key = create_ca()
    (root / "ca.crt").write_bytes(ca_cert)
    write_server_files(root / "tls", *issue_server_cert(ca_cert, ca_key, [], ["127.0.0.1"]))
    hub_port, box_port = free_port(), free_port()
    hub = subprocess.Popen(
        [sys.executable, "-m", "renkei", "hub", "--data", str(root / "hub"),
         "--port", str(hub_port)],
        env={**os.environ, "RENKEI_HUB_PASSPHRASE": HUB_PASSPHRASE},  # the operator unseals
    )  # fmt: skip
    box = subprocess.Popen(
        [sys.executable, "-m", "renkei", "box", "--hub", f"http://127.0.0.1:{hub_port}",
         "--town", "15307", "--port", str(box_port), "--data", str(root / "box" / "data"),
         "--tls", str(root / "tls")]
    )  # fmt: skip
    try:
        _wait(f"http://127.0.0.1:{hub_port}", hub, root / "ca.crt")
        _wait(f"https://127.0.0.1:{box_port}", box, root / "ca.crt")
        yield Site(
            f"https://127.0.0.1:{box_port}", f"http://127.0.0.1:{hub_port}", root,
            supervisor.login_id, roster[0].login_id, (roster[1].login_id, roster[2].login_id),
            deputy_keys, custody, box,
        )  # fmt: skip
    finally:
        for process in (box, hub):
            process.terminate()
            process.wait(timeout=15)


def _client(site: Site) -> httpx.Client:
    context = ssl.create_default_context(cafile=site.root / "ca.crt")
    return httpx.Client(base_url=site.url, verify=context, timeout=60)


def _token(page: httpx.Response) -> str:
    return page.text.split('name="csrf_token" value="')[1].split('"')[0]


def _break_glass(
    client: httpx.Client, clerks: tuple[str, str], passwords: tuple[str, str], minutes: int
) -> httpx.Response:
    for _ in range(5):
        token = _token(client.get("/activation/break-glass"))
        form = {
            "csrf_token": token, "town": "15405", "hours": "0", "minutes": str(minutes),
            "reason": "代表者と電話がつながらないため",
            "login_id_1": clerks[0], "password_1": passwords[0],
            "login_id_2": clerks[1], "password_2": passwords[1],
        }  # fmt: skip
        response = client.post("/activation/break-glass", data=form)
        if "秒待ってから" not in response.text:  # the throttle's backoff after a failure
            return response
        time.sleep(2)
    return response


def _states(client: httpx.Client) -> list[str]:
    page = client.get("/activation").text
    return re.findall(r'<td class="state">([^<]*)</td>', page)


def _worker_running(site: Site, town: str) -> bool:
    # Scoped to this box's data folder: other test runs on the machine have workers too.
    pattern = f"edge.worker --data {site.root / 'box' / 'data'} --town {town} "
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return bool(out.split())


def _seeds(site: Site, town: str, logins: list[str]) -> list[bytes]:
    """The clerks' private key bytes (X25519 and Ed25519 seeds), for a memory scan."""
    storage = SqliteStorage(site.root / "hub" / "hub.db")
    try:
        seeds = []
        for login in logins:
            record = json.loads(storage.load((town, "credential", login)) or b"{}")
            keys = crypto.unwrap_clerk_keys(bytes.fromhex(record["wrapped"]), PASSWORD)
            seeds += [bytes(keys.signing_key), bytes(keys.sealing_key)]
        return seeds
    finally:
        storage.close()


def _workers(site: Site) -> dict[str, int]:
    """The box's worker processes by town."""
    out = subprocess.run(["pgrep", "-P", str(site.box.pid)], capture_output=True, text=True)
    workers = {}
    for pid in out.stdout.split():
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"--town" in command:
            workers[command[command.index(b"--town") + 1].decode()] = int(pid)
    return workers


def _wait_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def _refused(site: Site, login_id: str) -> bool:
    with _client(site) as client:
        return _log_in(client, "15405", login_id, PASSWORD).status_code == 403


def test_break_glass_opens_once_shows_unratified_and_expires_like_an_activation(
    site: Site,
) -> None:
    # Nothing open for the visitors yet.
    for clerk in (site.visitor, *site.glass):
        assert _refused(site, clerk)
    now = time.time()
    # The deputy's activation ends at a minute boundary at least 30 s away (codes carry
    # whole minutes); the one-minute break-glass, started no earlier than 40 s before that
    # boundary, outlasts it by at least 20 s. One minute of break-glass is the shortest a
    # supervisor can enter, so both expiries fall within about a minute of its start.
    activation_end = math.ceil((now + 30) / 60) * 60
    activation = issue_activation(
        site.deputy, host_town="15307", host_box="box-15307", clerks=[site.visitor],
        not_before=now - 120, expires_at=activation_end,
    )  # fmt: skip
    with _client(site) as supervisor:
        assert _log_in(supervisor, "15307", site.supervisor, PASSWORD).status_code == 303
        page = supervisor.get("/activation")
        accepted = supervisor.post(
            "/activation", data={"csrf_token": _token(page), "code": activation.to_code()}
        )
        assert accepted.status_code == 200 and "受け付けました" in accepted.text

        # A wrong password of one roster clerk: nothing is accepted.
        wrong = _break_glass(supervisor, site.glass, (PASSWORD, "wrong password"), 1)
        assert wrong.status_code == 401 and "パスワード" in wrong.text
        assert _states(supervisor) == ["有効"]
        # Two signatures of one clerk are not two clerks.
        twice = _break_glass(supervisor, (site.glass[0], site.glass[0]), (PASSWORD,) * 2, 1)
        assert twice.status_code == 400

        _wait_until(activation_end - 40)
        started = time.time()
        minutes = max(1, math.ceil((activation_end + 20 - started) / 60))
        glass = _break_glass(supervisor, site.glass, (PASSWORD, PASSWORD), minutes)
        assert glass.status_code == 200, glass.text
        assert "緊急起動を受け付けました（未承認）" in glass.text
        glass_end = started + 60 * minutes
        assert "緊急起動・未承認" in _states(supervisor)

        # The three keys that signed were unwrapped in the towns' workers only.
        host_seeds = _seeds(site, "15307", [site.supervisor])
        glass_seeds = _seeds(site, "15405", list(site.glass))
        workers = _workers(site)
        assert _memory_contains(workers["15307"], host_seeds)  # positive control
        assert not _memory_contains(site.box.pid, host_seeds + glass_seeds)

        # Works once: a second break-glass for the town, before ratification, is refused.
        again = _break_glass(supervisor, site.glass, (PASSWORD, PASSWORD), minutes + 1)
        assert again.status_code == 409 and "追認されるまで" in again.text

        with _client(site) as visiting:
            assert _log_in(visiting, "15405", site.glass[0], PASSWORD).status_code == 303
            assert "緊急起動・未承認" in visiting.get("/").text
            # A deputy's ratification arrives as a code: the session and the list show it.
            listing = supervisor.get("/activation").text
            glass_id = bytes.fromhex(
                re.findall(r'<tr data-id="([0-9a-f]+)"><td>15405</td><td>緊急起動', listing)[0]
            )
            ratification = issue_ratification(site.deputy, target=glass_id, at=time.time())
            ratified = supervisor.post(
                "/activation",
                data={"csrf_token": _token(page), "code": ratification.to_code(),
                      "action": "ratify"},
            )  # fmt: skip
            assert ratified.status_code == 200 and "承認済" in ratified.text
            assert "緊急起動・承認済" in _states(supervisor)
            assert "緊急起動・承認済" in visiting.get("/").text

            with _client(site) as named:
                assert _log_in(named, "15405", site.visitor, PASSWORD).status_code == 303
                assert "15405" in named.get("/api/health").json()["open"]

                # The activation expires first: its clerk is out, the break-glass still
                # holds the town open for its clerks.
                _wait_until(activation_end + 5)  # the box's watch runs every 2 s
                assert named.get("/api/search", params={"q": "ヤ"}).status_code == 401
                assert _refused(site, site.visitor)
                assert time.time() < glass_end - 5
                assert visiting.get("/api/search", params={"q": "ヤ"}).status_code == 200
                assert "15405" in visiting.get("/api/health").json()["open"]
                # Then the break-glass: its clerks are out and the town is sealed.
                _wait_until(glass_end + 5)
                assert visiting.get("/api/search", params={"q": "ヤ"}).status_code == 401
                assert _refused(site, site.glass[0]) and _refused(site, site.glass[1])
                deadline = time.monotonic() + 30
                while _worker_running(site, "15405") and time.monotonic() < deadline:
                    time.sleep(0.5)
                assert not _worker_running(site, "15405")
                assert named.get("/api/health").json()["open"] == ["15307"]
        assert set(_states(supervisor)) >= {"期限切れ"}


def _poll(check: Callable[[], bool], timeout: float = 45) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return check()


def _pending(client: httpx.Client) -> list[str]:
    return re.findall(r'<tr class="pending" data-id="([0-9a-f]+)"', client.get("/activation").text)


def test_online_activation_and_revocation_reach_the_box_without_a_code(site: Site) -> None:
    now = time.time()
    activation = issue_activation(
        site.deputy, host_town="15307", host_box="box-15307", clerks=[site.visitor],
        not_before=now - 120, expires_at=now + 3600,
    )  # fmt: skip
    elsewhere = issue_activation(
        site.deputy, host_town="15307", host_box="box-elsewhere", clerks=[site.visitor],
        not_before=now - 120, expires_at=now + 3600,
    )  # fmt: skip
    # Forged: the expiry stretched by a month after signing.
    forged = dict(activation.to_json(), expires_at=activation.expires_at + 30 * 86400)
    del forged["id"]
    forged_id = parse_record(forged).id.hex()
    hub = httpx.Client(base_url=site.hub_url, timeout=30)
    with hub:
        assert hub.post("/api/emergency/15307", json=activation.to_json()).status_code == 201
        assert hub.post("/api/emergency/15307", json=elsewhere.to_json()).status_code == 201
        refused = hub.post("/api/emergency/15307", json=forged)
        assert refused.status_code == 400 and refused.json()["reason"] == "bad_signature"
        # The hub is only a mailbox: slipped into its store, the forgery reaches the box,
        # which verifies it itself and refuses it.
        hub_store = SqliteStorage(site.root / "hub" / "hub.db")
        try:
            hub_store.save(feed_key("15307", forged_id), json.dumps(forged).encode())
        finally:
            hub_store.close()
        with _client(site) as supervisor, _client(site) as visitor:
            assert _log_in(supervisor, "15307", site.supervisor, PASSWORD).status_code == 303
            assert _refused(site, site.visitor)
            assert _poll(lambda: activation.id.hex() in _pending(supervisor))
            assert set(_pending(supervisor)) == {activation.id.hex()}  # not the others
            assert _refused(site, site.visitor)  # pending is not accepted
            page = supervisor.get("/activation")
            taken = supervisor.post(
                "/activation",
                data={"csrf_token": _token(page), "record": activation.id.hex(),
                      "action": "accept_online"},
            )  # fmt: skip
            assert taken.status_code == 200 and "受け付けました" in taken.text
            assert _pending(supervisor) == []
            assert _log_in(visitor, "15405", site.visitor, PASSWORD).status_code == 303
            assert visitor.get("/api/search", params={"q": "ヤ"}).status_code == 200

            # The revocation travels the same way, as a code this time; the town closes.
            revocation = issue_revocation(site.deputy, target=activation.id, at=time.time())
            posted = hub.post("/api/emergency/15307", json={"code": revocation.to_code()})
            assert posted.status_code == 201
            assert _poll(
                lambda: visitor.get("/api/search", params={"q": "ヤ"}).status_code == 401
            )
            assert _refused(site, site.visitor)
            assert _poll(lambda: not _worker_running(site, "15405"))
            assert "取消済" in _states(supervisor)

            # Replayed: posted again, it changes nothing (checked below, once a record
            # posted after it has reached the box: the feed has seen the replay by then).
            assert hub.post("/api/emergency/15307", json=activation.to_json()).status_code == 200

            # The earlier break-glass was ratified, so a new one may be made; its
            # ratification arrives online this time.
            glass = _break_glass(supervisor, site.glass, (PASSWORD, PASSWORD), 2)
            assert glass.status_code == 200 and "未承認" in glass.text
            listing = supervisor.get("/activation").text
            glass_id = re.findall(
                r'<tr data-id="([0-9a-f]+)"><td>15405</td><td>緊急起動', listing
            )[0]
            assert "緊急起動・未承認" in _states(supervisor)
            ratification = issue_ratification(
                site.deputy, target=bytes.fromhex(glass_id), at=time.time()
            )
            posted = hub.post("/api/emergency/15307", json=ratification.to_json())
            assert posted.status_code == 201
            assert _poll(lambda: "緊急起動・未承認" not in _states(supervisor))
            assert _states(supervisor).count("緊急起動・承認済") == 1
            # the replayed activation: not pending again, its clerk still refused
            assert _pending(supervisor) == []
            assert _refused(site, site.visitor)


def test_every_step_is_in_the_stricken_towns_audit_chain(site: Site) -> None:
    """Runs after the break-glass and online tests."""
    box_key = SigningKey((site.root / "box" / "data" / "box.key").read_bytes())
    writers = {box_writer_id("box-15307"): box_key.verify_key}
    storage = SqliteStorage(site.root / "box" / "data" / "replica.db")
    try:
        izumozaki = verify_town(storage, site.custody.ring("15405"), writers, {})
        seiro = verify_town(storage, site.custody.ring("15307"), writers, {})
    finally:
        storage.close()
    assert izumozaki.ok and seiro.ok, (izumozaki.summary(), seiro.summary())
    for kind in ("break_glass", "ratification", "activation_accepted", "lock"):
        assert izumozaki.kinds.get(kind, 0) >= 1, (kind, izumozaki.kinds)
    # the second break-glass, and the forged record delivered online
    assert izumozaki.kinds.get("activation_refused", 0) >= 2
    assert izumozaki.kinds.get("activation_revoked", 0) >= 1
    assert izumozaki.kinds.get("login_failed", 0) >= 1  # the wrong password
    assert seiro.kinds.get("break_glass", 0) >= 1
