"""How `renkei demo` enrols its boxes: what the IT staff do at an installation, played on
one machine with the installation's own code (docs/operations.md §2 and §4).

Before the hub starts, the key ceremony (`hold_ceremony`): the demo's federation root
certifies the hub's enrolment key (cloud/ceremony.py). The root's signing key is kept in
DIR/ceremony/ sealed under a passphrase kept beside it (a demo convenience: a real root
stays offline); its public half, `federation-root.pub`, is what each box pins. The demo
CA has issued each box's HTTPS certificate into DIR/ceremony/<town>/ (the USB stick).

Once the hub answers (`enrol_boxes`), for each box not enrolled yet: a one-time token at
the hub with the box's TLS material staged (`renkei enrolment token --tls-dir`), then
`renkei enroll` on the box (edge/enrolment.py `enrol`, over HTTP): the hub certifies the
box key and admits its sync identity; the box installs its certificate, TLS files,
federation.json and discovery.json. A box an earlier run enrolled is left as it is while
the hub still takes its audit anchors (cloud/anchors.py `enrolled_box_key`).

`renkei drill` enrols its boxes with the same two steps (`certify_hub` with the drill's
root, then `enrol_boxes`; renkei/drill/federation.py).

`wait_anchored` is the smoke test's proof: the hub holds each box's newest audit chain
head, which it takes only from an enrolled box.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nacl.signing import SigningKey, VerifyKey

from cloud.anchors import AnchorRefused, enrolled_box_key
from cloud.ceremony import certify_request, init_issuer, install_issuer
from cloud.enrolment import EnrolmentError, Registry, issue_token, load_issuer_key
from edge.boxkey import box_audit_writer
from edge.enrolment import EnrolError, enrol, enrolled_box_id, federation_settings
from edge.tls import CERT_FILE
from renkei.commands.enrolment import staged_tls
from shared.audit import HEAD, AnchorStore, ChainHead
from shared.crypto import FederationRoot, open_secret, seal_secret
from shared.storage import SqliteStorage

CEREMONY_DIR = "ceremony"
ROOT_PUBLIC = "federation-root.pub"
ROOT_SEALED = "federation-root.sealed"
ISSUER_DAYS = 400
RENEW_BEFORE = timedelta(days=30)
TOKEN_HOURS = 1.0


class DemoEnrolmentError(Exception):
    """The demo could not enrol a box (the message says which and why)."""


@dataclass(frozen=True)
class DemoBox:
    town: str
    data: Path  # renkei box --data
    tls: Path  # renkei box --tls
    staged_tls: Path  # the ceremony's server.crt and server.key for this box
    box_id: str = ""  # if not box-<town> (the drill's portable node: laptop-<town>)

    @property
    def name(self) -> str:
        return self.box_id or f"box-{self.town}"


def _root(folder: Path, passphrase: str) -> tuple[VerifyKey, Callable[[], FederationRoot]]:
    """The demo root's verify key, and how to open its signing key (argon2id: only when
    the issuer needs certifying)."""
    public, sealed = folder / ROOT_PUBLIC, folder / ROOT_SEALED
    if not sealed.exists():
        key = SigningKey.generate()
        sealed.write_bytes(seal_secret(bytes(key), passphrase))
        sealed.chmod(0o600)
        public.write_text(bytes(key.verify_key).hex() + "\n")
    verify_key = VerifyKey(bytes.fromhex(public.read_text().strip()))

    def open_root() -> FederationRoot:
        return FederationRoot(SigningKey(open_secret(sealed.read_bytes(), passphrase)))

    return verify_key, open_root


def hold_ceremony(workdir: Path, hub_data: Path, hub_passphrase: str, passphrase: str) -> VerifyKey:
    """The hub's enrolment key made and certified by the demo root (once, and again a
    month before the certificate expires). Returns the root's verify key."""
    folder = workdir / CEREMONY_DIR
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    root, open_root = _root(folder, passphrase)
    certify_hub(hub_data, hub_passphrase, root, open_root)
    return root


def certify_hub(
    hub_data: Path, hub_passphrase: str, root: VerifyKey, open_root: Callable[[], FederationRoot]
) -> None:
    """The ceremony at the hub (docs/operations.md §2): `root` pinned, the hub's
    enrolment key made (`renkei ceremony init`) and certified by the root (`open_root`
    is called only when a certificate is due). Also what `renkei drill` holds."""
    registry = Registry(hub_data / "hub.db")
    try:
        pinned, issuer_key = registry.setting("root"), registry.setting("issuer_key")
        issuer = registry.issuer_certificate()
    finally:
        registry.close()
    if pinned is not None and pinned != bytes(root).hex():
        raise DemoEnrolmentError(
            f"{hub_data} には別の連合ルートが登録されています（デモのフォルダを作り直してください）"
        )
    if issuer_key is None:
        request = init_issuer(hub_data, bytes(root).hex(), hub_passphrase)
    else:
        verify_key = VerifyKey(bytes.fromhex(issuer_key))
        request = {
            "ed25519": issuer_key,
            "x25519": bytes(verify_key.to_curve25519_public_key()).hex(),
            "federation_root": pinned,
        }
    if issuer is None or issuer.expires_at - RENEW_BEFORE < datetime.now(UTC):
        install_issuer(hub_data, certify_request(request, open_root(), ISSUER_DAYS))


def is_enrolled(hub_data: Path, hub_url: str, box: DemoBox) -> bool:
    """Enrolled at this hub under its name, with this box's key, the hub taking its
    anchors now, the hub's URL as this run serves it, and its TLS files in place."""
    if enrolled_box_id(box.data) != box.name or not (box.tls / CERT_FILE).is_file():
        return False
    if federation_settings(box.data).get("hub") != hub_url:
        return False
    key = SigningKey((box.data / "box.key").read_bytes())
    registry = Registry(hub_data / "hub.db")
    try:
        enrolled_box_key(registry, box.name, key.verify_key, time.time())
    except AnchorRefused:
        return False
    finally:
        registry.close()
    return True


def enrol_boxes(
    hub_url: str,
    hub_data: Path,
    hub_passphrase: str,
    root: VerifyKey,
    ca_file: Path,
    boxes: list[DemoBox],
) -> list[str]:
    """A one-time token and `renkei enroll` for each box not enrolled yet (the hub must
    be answering). Returns the names of the boxes enrolled now."""
    todo = [box for box in boxes if not is_enrolled(hub_data, hub_url, box)]
    if not todo:
        return []
    issuer = load_issuer_key(hub_data, hub_passphrase)
    done = []
    for box in todo:
        registry = Registry(hub_data / "hub.db")
        storage = SqliteStorage(hub_data / "hub.db")
        try:  # at the hub: renkei enrolment token --box … --town … --tls-dir …
            token = issue_token(
                registry, storage, issuer, box=box.name, town=box.town,
                hours=TOKEN_HOURS, tls=staged_tls(box.staged_tls),
            )  # fmt: skip
        except EnrolmentError as exc:
            raise DemoEnrolmentError(f"{box.name}: {exc.message}") from exc
        finally:
            storage.close()
            registry.close()
        try:  # on the box: renkei enroll --hub … --token … --data … --tls … --root … --ca …
            enrol(hub_url, token, box.data, root=root, tls_dir=box.tls, ca_file=ca_file)
        except EnrolError as exc:
            raise DemoEnrolmentError(f"{box.name}: {exc.message}") from exc
        done.append(box.name)
    return done


def _box_head(box: DemoBox, writer: str) -> ChainHead | None:
    storage = SqliteStorage(box.data / "replica.db")
    try:
        raw = storage.load((box.town, HEAD, writer))
    finally:
        storage.close()
    return None if raw is None else ChainHead.from_json(json.loads(raw))


def _hub_anchor(hub_data: Path, town: str, writer: str) -> ChainHead | None:
    storage = SqliteStorage(hub_data / "hub.db")
    try:
        return AnchorStore(storage, town).get(writer)
    finally:
        storage.close()


def wait_anchored(hub_data: Path, boxes: list[DemoBox], timeout_s: float = 90.0) -> list[str]:
    """Wait until the hub's anchor of each box's own audit chain for its town is the
    box's newest head; the boxes whose anchor is missing or behind at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        behind = []
        for box in boxes:
            writer = box_audit_writer(box.data, box.name).writer_id  # its key's chain
            head = _box_head(box, writer)
            anchored = _hub_anchor(hub_data, box.town, writer)
            if head is None or anchored != head:
                behind.append(box.name)
        if not behind or time.monotonic() > deadline:
            return behind
        time.sleep(1)
