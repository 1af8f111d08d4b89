"""Enrolment, in process: the hub's checks on tokens, proofs and replays, the box's
checks on what it receives, and nothing half-written on either side when one fails."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from enrolment_world import PASSPHRASE, TOWN, World, certify_issuer, make_world
from nacl.signing import SigningKey, VerifyKey
from servers import serve

from cloud.app import create_app
from cloud.enrolment import HubEnrolment, Registry, issue_token, revoke_box, token_hash
from edge.enrolment import EnrolError, enrol
from shared.audit import AuditEntry, verify_town
from shared.blobs import open_blob
from shared.crypto import FederationRoot, KeyRing, verify_box_certificate
from shared.storage import SqliteStorage


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


def _token(world: World, box: str = "seiro-1", hours: float = 24.0, tls: bool = True) -> str:
    enrolment = HubEnrolment(world.hub, passphrase=PASSPHRASE)
    storage = SqliteStorage(world.hub / "hub.db")
    try:
        assert enrolment.issuer is not None
        staged = None
        if tls:
            staged = {
                n: (world.tls / f).read_text()
                for n, f in (
                    ("cert", "server.crt"),
                    ("key", "server.key"),
                    ("ca", "federation-ca.crt"),
                )
            }
        return issue_token(
            enrolment.registry,
            storage,
            enrolment.issuer.signing_key,
            box=box,
            town=TOWN,
            hours=hours,
            tls=staged,
        )
    finally:
        storage.close()
        enrolment.close()


def _files(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix not in (".db", ".db-wal", ".db-shm")
        and not p.name.endswith(("-wal", "-shm"))
    }


def test_a_box_enrols_once_and_every_misuse_is_refused_clearly(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RENKEI_HUB_PASSPHRASE", PASSPHRASE)
    token = _token(world)
    root = world.root.verify_key
    box, tls = tmp_path / "box", tmp_path / "box-tls"
    with serve(create_app(world.hub)) as url:
        result = enrol(url, token, box, root=root, tls_dir=tls, ca_file=world.ca)
        assert (result.box, result.town) == ("seiro-1", TOWN)
        cert = verify_box_certificate(result.certificate, root, now=datetime.now(UTC))
        assert cert.chain and json.loads((box / "box.cert.json").read_text()) == cert.to_json()
        assert (tls / "server.key").stat().st_mode & 0o777 == 0o600
        settings = json.loads((box / "federation.json").read_text())
        assert settings["box"] == "seiro-1" and settings["tls_dir"] == str(tls)
        assert (
            json.loads((box / "discovery.json").read_text())["federation_root"] == bytes(root).hex()
        )

        # the same box asking again (its answer lost) gets the same certificate back
        again = enrol(url, token, box, root=root, tls_dir=tls, ca_file=world.ca)
        assert again.certificate == result.certificate

        # another box with the used token: refused, and nothing written there
        other = tmp_path / "other"
        with pytest.raises(EnrolError, match="すでに別のボックス") as used:
            enrol(url, token, other, root=root, tls_dir=tmp_path / "other-tls")
        assert "already used" in used.value.english
        assert set(_files(other)) <= {"box.key"}  # its own key only, nothing enrolled
        assert not (tmp_path / "other-tls").exists()

        # a forged token
        with pytest.raises(EnrolError, match="正しくありません"):
            enrol(url, "rk1-" + "A" * 32, other, root=root)

        # an expired token (issued for a moment, then past)
        short = _token(world, box="seiro-2", hours=1e-9, tls=False)
        with pytest.raises(EnrolError, match="有効期限"):
            enrol(url, short, other, root=root)

        # a hub whose certificate does not chain to THIS box's pinned root
        fresh = _token(world, box="seiro-3", tls=False)
        before = _files(other)
        with pytest.raises(EnrolError, match="連合ルート"):
            enrol(url, fresh, other, root=FederationRoot.generate().verify_key)
        assert _files(other) == before  # checked before anything was written
        # (the hub consumed that token: the box must ask for a new one, said clearly)

        # a revoked token
        revoked = _token(world, box="seiro-4", tls=False)
        registry = Registry(world.hub / "hub.db")
        storage = SqliteStorage(world.hub / "hub.db")
        enrolment = HubEnrolment(world.hub, passphrase=PASSPHRASE)
        assert enrolment.issuer is not None
        revoke_box(registry, storage, enrolment.issuer.signing_key, "seiro-4", "test")
        with pytest.raises(EnrolError, match="取り消されています"):
            enrol(url, revoked, other, root=root)
        storage.close()
        registry.close()
        enrolment.close()

    # only hashes of tokens are stored
    raw = (world.hub / "hub.db").read_bytes()
    assert token.encode() not in raw and token_hash(token).encode() in raw

    # every enrolment and refusal is in the town's audit chain, which verifies
    storage = SqliteStorage(world.hub / "hub.db")
    writers = {
        k[-1]: VerifyKey(bytes.fromhex(v.decode()))
        for k, v in storage.load_range((TOWN, "audit-writer"))
    }
    ring = KeyRing(TOWN, [world.town])
    report = verify_town(storage, ring, writers, {})
    assert report.ok, report.summary()
    kinds = sorted(
        AuditEntry.from_plaintext(open_blob(blob, ring, writers.get)[1]).kind
        for _, blob in storage.load_range((TOWN, "audit"))
    )
    storage.close()
    # 4 tokens; seiro-1 and seiro-3 enrolled (the hub cannot know seiro-3's box then
    # refused its answer); refused: used, expired, revoked (a forged token names no town)
    assert kinds == sorted(
        ["enrolment_token"] * 4 + ["box_enrolled"] * 2 + ["enrolment_refused"] * 3 + ["box_revoked"]
    ), kinds


def test_replayed_and_forged_proofs_are_refused(world: World, tmp_path: Path) -> None:
    """The hub's checks without the box's client: a recorded request sent again, a
    request signed by another key than it names."""
    import hashlib

    from nacl.signing import SigningKey

    from cloud.enrolment import EnrolmentError, binding_bytes, statement_bytes
    from shared.sync.identity import Identity

    enrolment = HubEnrolment(world.hub, passphrase=PASSPHRASE)
    storage = SqliteStorage(world.hub / "hub.db")
    token = _token(world, tls=False)
    key, thief, sync = SigningKey.generate(), SigningKey.generate(), Identity.generate()

    def request(signer: SigningKey) -> dict[str, object]:
        nonce = enrolment.new_nonce()
        statement = {
            "protocol": 1,
            "purpose": "enrol",
            "nonce": nonce,
            "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
            "box_key": bytes(key.verify_key).hex(),
            "x25519": bytes(key.verify_key.to_curve25519_public_key()).hex(),
            "sync_peer": sync.writer_id,
        }
        signed = statement_bytes(statement)
        return {
            **{k: statement[k] for k in ("protocol", "nonce", "box_key", "x25519", "sync_peer")},
            "token": token,
            "signature": signer.sign(signed).signature.hex(),
            "sync_signature": sync.signing_key.sign(signed).signature.hex(),
            "binding": key.sign(binding_bytes(sync.writer_id)).signature.hex(),
        }

    with pytest.raises(EnrolmentError) as wrong_key:
        enrolment.enrol(request(thief), storage)  # names `key`, signed by another
    assert (wrong_key.value.status, wrong_key.value.code) == (403, "proof")
    assert Registry(world.hub / "hub.db").token(token_hash(token)).used_at is None  # type: ignore[union-attr]

    good = request(key)
    answer = enrolment.enrol(good, storage)
    assert answer["box"] == "seiro-1"
    with pytest.raises(EnrolmentError) as replay:
        enrolment.enrol(good, storage)  # the very same bytes again
    assert (replay.value.status, replay.value.code) == (409, "nonce")
    assert "再送" in replay.value.message
    storage.close()
    enrolment.close()


def test_a_hub_without_a_certified_issuer_says_so(tmp_path: Path) -> None:
    world = make_world(tmp_path, certify=False)
    with serve(create_app(world.hub)) as url:
        response = httpx.post(f"{url}/api/enrol/challenge")
    assert response.status_code == 503
    assert "登録を受け付けていません" in response.json()["message"]


def test_an_enrolled_box_renews_its_certificate_until_it_is_revoked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge.enrolment import renew

    world = make_world(tmp_path, issuer_days=30)
    monkeypatch.setenv("RENKEI_HUB_PASSPHRASE", PASSPHRASE)
    box, tls, root = tmp_path / "box", tmp_path / "tls", world.root.verify_key
    app = create_app(world.hub)
    with serve(app) as url:
        with pytest.raises(EnrolError, match="まだ登録されていません"):
            renew(url, box, root=root)
        first = enrol(url, _token(world), box, root=root, tls_dir=tls)
        # the ceremony renews the hub's delegation; the box renews without a token
        certify_issuer(world.hub, world.root, 400)
        app.state.enrolment.reload(PASSPHRASE)
        renewed = renew(url, box, root=root)
        assert renewed.certificate.expires_at > first.certificate.expires_at
        assert json.loads((box / "box.cert.json").read_text()) == renewed.certificate.to_json()
        assert (tls / "server.crt").exists()  # TLS untouched
        assert json.loads((box / "federation.json").read_text())["tls_dir"] == str(tls)

        # another box's keys cannot renew it
        stranger = tmp_path / "stranger"
        stranger.mkdir()
        (stranger / "box.key").write_bytes(bytes(32))
        (stranger / "box.cert.json").write_bytes((box / "box.cert.json").read_bytes())
        with pytest.raises(EnrolError, match="登録されていません"):
            renew(url, stranger, root=root)

        registry, storage = Registry(world.hub / "hub.db"), SqliteStorage(world.hub / "hub.db")
        issuer = app.state.enrolment.issuer
        revoke_box(registry, storage, issuer.signing_key, "seiro-1", "stolen")
        registry.close()
        storage.close()
        before = (box / "box.cert.json").read_bytes()
        with pytest.raises(EnrolError, match="取り消されています"):
            renew(url, box, root=root)
        assert (box / "box.cert.json").read_bytes() == before


def test_malformed_requests_get_a_clear_400(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RENKEI_HUB_PASSPHRASE", PASSPHRASE)
    with serve(create_app(world.hub)) as url:
        for path in ("/api/enrol", "/api/enrol/renew"):
            for body in (b"not json", b"[1]", b"{}", b"x" * 70_000):
                response = httpx.post(f"{url}{path}", content=body)
                assert response.status_code in (400, 413), (path, body[:10])
                assert "要求" in response.json()["message"]


def test_tls_material_from_another_ca_is_refused_and_nothing_is_written(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge.tls import create_ca, issue_server_cert, write_server_files

    monkeypatch.setenv("RENKEI_HUB_PASSPHRASE", PASSPHRASE)
    rogue_ca, rogue_key = create_ca()
    rogue = tmp_path / "rogue"
    write_server_files(rogue, *issue_server_cert(rogue_ca, rogue_key, [], ["127.0.0.1"]))
    (rogue / "federation-ca.crt").write_bytes(rogue_ca)  # handed over with it: not trusted
    box, tls = tmp_path / "box", tmp_path / "tls"
    with serve(create_app(world.hub)) as url, pytest.raises(EnrolError, match="認証局"):
        enrol(
            url,
            _token(world, tls=False),
            box,
            root=world.root.verify_key,
            tls_dir=tls,
            from_dir=rogue,
            ca_file=world.ca,
        )
    assert not (box / "box.cert.json").exists() and not tls.exists()
    assert not (box / "federation.json").exists()


def test_the_hub_signs_a_growing_revocation_list_that_survives_a_replaced_box(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge.revocations import FILE, RevocationStore, verify_list

    world = make_world(tmp_path)
    monkeypatch.setenv("RENKEI_HUB_PASSPHRASE", PASSPHRASE)
    root = world.root.verify_key
    app = create_app(world.hub)
    with serve(app) as url:
        empty = httpx.get(f"{url}/api/revocations").json()
        assert verify_list(empty, root, now=datetime.now(UTC)).sequence == 0
        old_box, new_box = tmp_path / "old", tmp_path / "new"
        lost = enrol(url, _token(world), old_box, root=root, tls_dir=tmp_path / "tls-old")
        registry, storage = Registry(world.hub / "hub.db"), SqliteStorage(world.hub / "hub.db")
        revoke_box(registry, storage, app.state.enrolment.issuer.signing_key, "seiro-1", "lost")
        registry.close()
        storage.close()
        signed = httpx.get(f"{url}/api/revocations").json()
        listed = verify_list(signed, root, now=datetime.now(UTC))
        assert listed.sequence == 1
        assert listed.reason(lost.certificate.verify_key) == "box 'seiro-1' is revoked"
        # the replacement box (same name, new key) is enrolled: the lost key stays revoked,
        # and the new box receives the list with its enrolment
        replaced = enrol(url, _token(world), new_box, root=root, tls_dir=tmp_path / "tls-new")
        again = verify_list(httpx.get(f"{url}/api/revocations").json(), root,
                            now=datetime.now(UTC))  # fmt: skip
        assert again.sequence == 1 and again.reason(lost.certificate.verify_key)
        assert again.reason(replaced.certificate.verify_key) is None
        store = RevocationStore(new_box, lambda: root)
        assert (new_box / FILE).exists() and store.sequence == 1
        assert store.reason(lost.certificate.verify_key)


def test_a_box_re_enrolled_with_a_new_key_writes_a_new_chain_and_the_old_key_is_retired(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replaced box's key goes on the revocation list, the new box is told to write
    its own chain (`box:<box>:<key id>`), and the old key can never enrol again."""
    from cloud.anchors import CONTEXT, AnchorRefused, canonical
    from edge.boxkey import box_audit_writer
    from edge.peer_anchors import accept_peer_statement
    from edge.revocations import RevocationStore, verify_list
    from shared.crypto import key_id
    from shared.storage import MemoryStorage

    monkeypatch.setenv("RENKEI_HUB_PASSPHRASE", PASSPHRASE)
    root = world.root.verify_key
    app = create_app(world.hub)
    with serve(app) as url:
        old_box, new_box = tmp_path / "old", tmp_path / "new"
        first = enrol(url, _token(world), old_box, root=root, tls_dir=tmp_path / "tls-old")
        assert box_audit_writer(old_box, "seiro-1").writer_id == "box:seiro-1"
        second = enrol(url, _token(world), new_box, root=root, tls_dir=tmp_path / "tls-new")
        new_key = second.certificate.verify_key
        expected = f"box:seiro-1:{key_id(new_key)[:16]}"
        assert json.loads((new_box / "federation.json").read_text())["audit_writer"] == expected
        assert box_audit_writer(new_box, "seiro-1").writer_id == expected
        listed = verify_list(httpx.get(f"{url}/api/revocations", timeout=30).json(), root,
                             now=datetime.now(UTC))  # fmt: skip
        assert listed.reason(first.certificate.verify_key)
        assert listed.reason(new_key) is None
        # the new box got that list with its enrolment: as a LAN peer it refuses the
        # old key's anchors (edge/peer_anchors.py), though its certificate still verifies
        held = RevocationStore(new_box, lambda: root)
        old_key = SigningKey((old_box / "box.key").read_bytes())
        statement = {"v": 1, "box": "seiro-1", "at": 1.0, "heads": {}}
        body = {
            "statement": statement,
            "key": bytes(old_key.verify_key).hex(),
            "signature": old_key.sign(CONTEXT + canonical(statement)).signature.hex(),
            "certificate": first.certificate.to_json(),
        }
        with pytest.raises(AnchorRefused, match="revocation list"):
            accept_peer_statement(
                MemoryStorage(), body, root=root, own_box="seiro-2", now=time.time(),
                revoked=held.reason,
            )  # fmt: skip
        with pytest.raises(EnrolError) as refused:
            enrol(url, _token(world), old_box, root=root, tls_dir=tmp_path / "tls-old")
        assert "交代または取消" in refused.value.message
        # the refusal changed nothing: the new box is still the enrolled one
        registry = Registry(world.hub / "hub.db")
        try:
            row = registry.box("seiro-1")
            assert row is not None and row.box_key == bytes(new_key).hex()
        finally:
            registry.close()
