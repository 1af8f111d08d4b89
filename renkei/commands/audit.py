"""`renkei audit verify`: check a town's audit chains at the hub and name the first bad entry.

The entries are sealed to the town, so reading them needs the town's keys: the command
opens the hub's key custody with the operator's passphrase (RENKEI_HUB_PASSPHRASE, or
asked on the terminal, as `renkei import` does) and reads the hub's store. Writers' keys
come from the clerk certificates the hub holds (checked against the town's keys), from
the box keys the hub certified at enrolment, each with the period it was valid
(`Registry.box_keys`), the hub's writer directory (town, "audit-writer", writer), the
hub's own writer key
(writer "hub") and from `--writers`; anchors
(chain heads seen by peers, the hub or in certificates' QR codes) from the hub's anchor
store (heads boxes sent, cloud/anchors.py) and from `--anchors` (a JSON file, or a peer
box's replica.db: the heads LAN peers anchored there, edge/peer_anchors.py). With `--store`, the
chains checked are those in another store — a box's replica.db, copied or read on site —
against the hub's keys and anchors: a box whose log was cut short or rolled back to an
older copy after its heads were anchored fails, the first missing entry named.
Exit 0: every chain verifies; 1: a problem, the first bad entry named; 2: the command
could not run (no custody, wrong passphrase, unknown town, no such store).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("audit", help="check the towns' audit chains (監査ログ)")
    actions = parser.add_subparsers(
        dest="audit_action", metavar="ACTION", help="what to do with the audit chains"
    )
    verify = actions.add_parser(
        "verify",
        help="verify every audit chain of a town and name the first bad entry",
        description=(
            "Open the town's audit chains at the hub with its keys (operator passphrase from "
            "RENKEI_HUB_PASSPHRASE or the terminal) and check signatures, sequence, hash "
            "links and anchors. Exit 1 names the first bad entry."
        ),
    )
    verify.add_argument("--data", type=Path, default=Path("var/hub"), help="the hub's data folder")
    verify.add_argument("--town", required=True, help="town code, e.g. 15307")
    verify.add_argument(
        "--anchors",
        type=Path,
        action="append",
        default=[],
        help="chain heads seen elsewhere: a JSON file (a list of {writer, seq, hash}) or a "
        "peer box's replica.db holding the heads it anchored for other boxes; "
        "may be given more than once",
    )
    verify.add_argument(
        "--writers",
        type=Path,
        help="JSON file mapping writer ids to Ed25519 verify keys (hex), for writers the "
        "hub's directory does not list",
    )
    verify.add_argument(
        "--store",
        type=Path,
        help="verify the chains in this SQLite store (e.g. a box's replica.db) instead of "
        "the hub's, with the hub's keys and anchors",
    )
    verify.add_argument(
        "--box",
        action="append",
        default=[],
        help="with --store: the box id(s) whose chains the store must hold (a box id names "
        "the chain of its current key; give a writer id box:… for the chain of an earlier "
        "key); their anchored heads are checked even when the store has none of their entries",
    )
    verify.add_argument(
        "--json", action="store_true", help="print the report as JSON instead of Japanese text"
    )
    verify.set_defaults(func=run_verify)
    parser.set_defaults(func=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _box_writers(registry: Any, names: list[str]) -> set[str]:
    """--box: a box id names the chain of its current key; a writer id (box:…) itself."""
    from shared.audit import box_writer_id, check_writer_id

    writers = set()
    for name in names:
        if name.startswith("box:"):
            writers.add(check_writer_id(name))
            continue
        row = registry.box(name)
        writers.add(
            box_writer_id(name) if row is None else registry.audit_writer_of(name, row.box_key)
        )
    return writers


def _writer_keys(
    storage: Any, ring: Any, hub_writer: Any, extra: Path | None, boxes: dict[str, list[Any]]
) -> Any:
    from nacl.signing import VerifyKey

    from shared.audit import WriterDirectory
    from shared.crypto import ClerkCertificate, CryptoError, verify_clerk_certificate

    town = ring.town
    publics = {keys.epoch: keys.public for keys in ring}
    certs = []
    records = storage.load_range((town, "credential")) + storage.load_range((town, "clerk-cert"))
    for _key, raw in records:
        try:
            data = json.loads(raw)
            cert = ClerkCertificate.from_json(data.get("certificate", data))
            public = publics.get(cert.epoch)
            if public is not None:
                certs.append(verify_clerk_certificate(cert, public))
        except (ValueError, KeyError, TypeError, AttributeError, CryptoError):
            continue  # a writer whose key cannot be established shows as unknown
    others: dict[str, VerifyKey] = {"hub": hub_writer}
    for key, raw in storage.load_range((town, "audit-writer")):
        if key[-1].startswith("box:") and key[-1].split(":")[1] in boxes:
            continue  # filed by an older hub from a box's first statement: the registry knows
        others[key[-1]] = VerifyKey(bytes.fromhex(raw.decode().strip()))
    if extra is not None:
        for writer, hex_key in json.loads(extra.read_text(encoding="utf-8")).items():
            others[writer] = VerifyKey(bytes.fromhex(hex_key))
    return WriterDirectory(boxes=boxes, clerks=certs, others=others)


SQLITE_MAGIC = b"SQLite format 3\x00"


def _anchors(
    storage: Any, town: str, files: list[Path], held: set[str]
) -> tuple[dict[str, Any], list[str]]:
    """Anchors to check: the hub's, and those a peer box kept (a replica.db given to
    --anchors), for the writers whose chains the checked store holds (boxes' chains live
    on the boxes: check those with --store); every one given in a JSON file. Also the
    anchored writers left out, for a warning."""
    from shared.audit import AnchorStore, ChainHead
    from shared.storage import SqliteStorage

    anchors: dict[str, Any] = {}
    skipped: set[str] = set()

    def keep(head: Any) -> None:
        if head.writer not in anchors or anchors[head.writer].seq <= head.seq:
            anchors[head.writer] = head

    def from_store(store: Any) -> None:
        for writer, head in AnchorStore(store, town).all().items():
            if writer in held:
                keep(head)
            else:
                skipped.add(writer)

    from_store(storage)
    for path in files:
        with path.open("rb") as handle:
            is_store = handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
        if is_store:
            peer = SqliteStorage(path)
            try:
                from_store(peer)
            finally:
                peer.close()
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        items = data.values() if isinstance(data, dict) else data
        for item in items:
            keep(ChainHead.from_json(item))
    return anchors, sorted(skipped - set(anchors))


def run_verify(args: argparse.Namespace) -> int:
    from cloud.app import hub_db_path
    from cloud.custody import Custody, CustodyError
    from cloud.enrolment import Registry
    from renkei.commands.import_ import hub_passphrase
    from shared.audit import AuditError, verify_town
    from shared.storage import SqliteStorage

    db = hub_db_path(args.data)
    if not db.exists():
        print(f"ハブのデータがありません: {db}", file=sys.stderr)
        return 2
    try:
        custody = Custody.load(args.data, hub_passphrase())
    except CustodyError as exc:
        print(exc, file=sys.stderr)
        return 2
    ring = custody.rings.get(args.town)
    if ring is None:
        print(
            f"町 {args.town} の鍵がハブにありません。町コードを確認してください。", file=sys.stderr
        )
        return 2
    if args.store is not None and not args.store.exists():
        print(f"検証する記録の保存ファイルがありません: {args.store}", file=sys.stderr)
        return 2
    storage = SqliteStorage(db)
    chains = storage if args.store is None else SqliteStorage(args.store)
    registry = Registry(db)
    try:
        try:
            # The writers this store holds chains of, and the boxes named, whose anchored
            # heads must be there even if every entry of theirs was removed.
            held = {key[2] for key, _ in chains.load_range((args.town, "audit")) if len(key) > 2}
            held |= _box_writers(registry, args.box)
            boxes = registry.audit_box_keys()
            writers = _writer_keys(storage, ring, custody.writer.verify_key, args.writers, boxes)
            anchors, skipped = _anchors(storage, args.town, args.anchors, held)
        except (OSError, ValueError, AuditError) as exc:
            print(f"書き手の鍵または基準点のファイルが読めません: {exc}", file=sys.stderr)
            return 2
        report = verify_town(chains, ring, writers, anchors, writers=held | set(anchors))
        if skipped:
            report.warnings.append(
                f"基準点がある書き手 {len(skipped)} 件の記録はこの保存先にありません"
                "(各ボックスの記録は --store と --box で検証してください): " + "、".join(skipped)
            )
    finally:
        registry.close()
        if chains is not storage:
            chains.close()
        storage.close()
    if args.json:
        print(
            json.dumps(
                {
                    "town": report.town,
                    "ok": report.ok,
                    "heads": {w: h.to_json() for w, h in report.heads.items()},
                    "problems": [
                        {
                            "writer": p.writer,
                            "seq": p.seq,
                            "fault": str(p.fault),
                            "detail": p.detail,
                        }
                        for p in report.problems
                    ],
                    "warnings": report.warnings,
                },
                ensure_ascii=False,
                indent=1,
            )
        )
    else:
        print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1
