"""`renkei enrolment init|certify|install|token|revoke|list`: the hub's box enrolment.

    init     at the hub: pin the federation root, make the enrolment key (sealed under the
             hub passphrase), write the request the ceremony certifies
    certify  in the ceremony (offline machine): the root signs the request → issuer cert
    install  at the hub: install that certificate (checked against the pinned root)
    token    at the hub: a one-time token for a box of a town (printed once, stored hashed)
    revoke   at the hub: a box's enrolment (and its unused tokens) ends now
    list     at the hub: enrolled boxes and tokens (no secrets)

The hub passphrase comes from RENKEI_HUB_PASSPHRASE or the terminal, as for `renkei
import`. Exit 0 on success, 1 when refused (the reason on stderr in Japanese and English),
2 for a usage error. docs/operations.md §2 and §4 walk through it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "enrolment", help="box enrolment at the hub: keys, one-time tokens, revocation"
    )
    actions = parser.add_subparsers(
        dest="enrolment_action",
        metavar="ACTION",
        required=True,
        help="init, certify, install, token, revoke or list",
    )

    def data(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", type=Path, required=True, help="the hub's data folder")

    init = actions.add_parser("init", help="pin the root and make the hub's enrolment key")
    data(init)
    init.add_argument(
        "--root",
        required=True,
        help="the federation root's Ed25519 verify key: 64 hex digits or a file",
    )
    init.add_argument(
        "--request",
        type=Path,
        required=True,
        help="where to write the certification request for the ceremony",
    )
    init.set_defaults(func=run_init)

    certify = actions.add_parser("certify", help="(ceremony) sign a hub's enrolment request")
    certify.add_argument("request", type=Path, help="the request `init` wrote")
    certify.add_argument(
        "--root-key",
        type=Path,
        required=True,
        help="the root's signing key: sealed (seal_secret, passphrase from "
        "RENKEI_CEREMONY_PASSPHRASE or the terminal) or a hex seed file",
    )
    certify.add_argument(
        "--days", type=int, default=400, help="validity of the delegation in days (default 400)"
    )
    certify.add_argument("--out", type=Path, required=True, help="the issuer certificate file")
    certify.set_defaults(func=run_certify)

    install = actions.add_parser("install", help="install the issuer certificate at the hub")
    data(install)
    install.add_argument("certificate", type=Path, help="the certificate `certify` wrote")
    install.set_defaults(func=run_install)

    token = actions.add_parser("token", help="issue a one-time enrolment token for a box")
    data(token)
    token.add_argument("--box", required=True, help="the box's name, e.g. seiro-1")
    token.add_argument("--town", required=True, help="the box's own town code, e.g. 15307")
    token.add_argument(
        "--hours",
        type=float,
        default=24.0,
        help="hours the token stays valid (default 24, at most 336)",
    )
    token.add_argument(
        "--tls-dir",
        type=Path,
        help="folder with the box's server.crt and server.key (and "
        "federation-ca.crt) from the ceremony, handed over at enrolment",
    )
    token.add_argument(
        "--stick",
        type=Path,
        help="also write renkei-enroll/enroll.env into this folder (a USB "
        "stick labelled RENKEIENROL); needs --hub-url",
    )
    token.add_argument("--hub-url", help="the hub's URL as the box reaches it, for --stick")
    token.set_defaults(func=run_token)

    revoke = actions.add_parser("revoke", help="revoke a box's enrolment (lost, replaced)")
    data(revoke)
    revoke.add_argument("--box", required=True, help="the box's name")
    revoke.add_argument("--reason", default="", help="why, for the audit trail")
    revoke.set_defaults(func=run_revoke)

    listing = actions.add_parser("list", help="enrolled boxes and tokens (no secrets)")
    data(listing)
    listing.add_argument("--json", action="store_true", help="print JSON instead of text")
    listing.set_defaults(func=run_list)


def _refused(exc: Exception) -> int:
    from cloud.enrolment import EnrolmentError

    if isinstance(exc, EnrolmentError):
        print(f"登録の操作を中止しました: {exc.message}\n(refused: {exc.english})", file=sys.stderr)
    else:
        print(f"登録の操作を中止しました / refused: {exc}", file=sys.stderr)
    return 1


def _hex_or_file(value: str) -> str:
    path = Path(value)
    text = path.read_text().strip() if len(value) != 64 and path.is_file() else value.strip()
    bytes.fromhex(text)
    if len(text) != 64:
        raise ValueError("a verify key is 64 hex digits")
    return text.lower()


def run_init(args: argparse.Namespace) -> int:
    from cloud.ceremony import init_issuer
    from cloud.enrolment import EnrolmentError
    from renkei.commands.import_ import hub_passphrase

    try:
        root = _hex_or_file(args.root)
    except (OSError, ValueError) as exc:
        return _refused(ValueError(f"--root: {exc}"))
    try:
        request = init_issuer(args.data, root, hub_passphrase())
    except EnrolmentError as exc:
        return _refused(exc)
    args.request.write_text(json.dumps(request, indent=1) + "\n")
    print(f"登録用の鍵を作成しました。認証依頼: {args.request}（鍵の儀式で certify してください）")
    return 0


def _root_signing_key(path: Path) -> Any:
    import getpass

    from nacl.signing import SigningKey

    from shared.crypto import open_secret

    raw = path.read_bytes()
    if raw.startswith(b"RKSS"):
        passphrase = os.environ.get("RENKEI_CEREMONY_PASSPHRASE") or getpass.getpass(
            "連合ルート鍵のパスフレーズ: "
        )
        return SigningKey(open_secret(raw, passphrase))
    return SigningKey(bytes.fromhex(raw.decode().strip()))


def run_certify(args: argparse.Namespace) -> int:
    from cloud.ceremony import certify_request
    from shared.crypto import CryptoError, FederationRoot

    try:
        request = json.loads(args.request.read_text())
        root = FederationRoot(_root_signing_key(args.root_key))
        cert = certify_request(request, root, args.days)
    except (OSError, ValueError, KeyError, CryptoError) as exc:
        return _refused(exc)
    args.out.write_bytes(cert.to_bytes())
    print(
        f"認証しました: issuer {cert.subject} key {cert.issuer} → {args.out}"
        f"（期限 {cert.expires_at:%Y-%m-%d}）"
    )
    return 0


def run_install(args: argparse.Namespace) -> int:
    from cloud.ceremony import install_issuer
    from cloud.enrolment import EnrolmentError
    from shared.crypto import Certificate, CryptoError

    try:
        cert = install_issuer(args.data, Certificate.from_bytes(args.certificate.read_bytes()))
    except (EnrolmentError, CryptoError, OSError) as exc:
        return _refused(exc)
    print(
        f"登録用の証明書を設置しました（期限 {cert.expires_at:%Y-%m-%d}）。"
        "ハブを再起動すると登録を受け付けます。"
    )
    return 0


def _open(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    from cloud.enrolment import Registry, load_issuer_key
    from renkei.commands.import_ import hub_passphrase
    from shared.storage import SqliteStorage

    registry = Registry(args.data / "hub.db")
    try:
        key = load_issuer_key(args.data, hub_passphrase())
    except Exception:
        registry.close()
        raise
    return registry, SqliteStorage(args.data / "hub.db"), key


def staged_tls(folder: Path | None) -> dict[str, str] | None:
    if folder is None:
        return None
    tls = {
        "cert": (folder / "server.crt").read_text(),
        "key": (folder / "server.key").read_text(),
    }
    if (folder / "federation-ca.crt").is_file():
        tls["ca"] = (folder / "federation-ca.crt").read_text()
    return tls


def run_token(args: argparse.Namespace) -> int:
    from cloud.enrolment import EnrolmentError, issue_token

    if args.stick and not args.hub_url:
        print("--stick には --hub-url が必要です / --stick needs --hub-url", file=sys.stderr)
        return 2
    try:
        tls = staged_tls(args.tls_dir)
        registry, storage, key = _open(args)
    except (EnrolmentError, OSError) as exc:
        return _refused(exc)
    try:
        token = issue_token(
            registry, storage, key, box=args.box, town=args.town, hours=args.hours, tls=tls
        )
    except EnrolmentError as exc:
        return _refused(exc)
    finally:
        storage.close()
        registry.close()
    if args.stick:
        folder = args.stick / "renkei-enroll"
        folder.mkdir(parents=True, exist_ok=True)
        env = folder / "enroll.env"
        env.write_text(f"RENKEI_HUB={args.hub_url}\nRENKEI_TOKEN={token}\n")
        env.chmod(0o600)
        print(f"{env} に書き込みました。", file=sys.stderr)
    print(token)
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    from cloud.enrolment import EnrolmentError, revoke_box

    try:
        registry, storage, key = _open(args)
    except (EnrolmentError, OSError) as exc:
        return _refused(exc)
    try:
        revoked, tokens = revoke_box(registry, storage, key, args.box, args.reason)
    except EnrolmentError as exc:
        return _refused(exc)
    finally:
        storage.close()
        registry.close()
    what = "登録を取り消しました" if revoked else "未使用のトークンのみ取り消しました"
    print(f"{args.box}: {what}（未使用トークン {tokens} 件を無効化）。")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from cloud.enrolment import Registry

    registry = Registry(args.data / "hub.db")
    try:
        boxes = [b.to_json() for b in registry.boxes()]
        tokens = [
            {
                "box": t.box,
                "town": t.town,
                "issued_at": t.issued_at,
                "expires_at": t.expires_at,
                "used_at": t.used_at,
                "revoked_at": t.revoked_at,
            }
            for t in registry.tokens()
        ]
    finally:
        registry.close()
    if args.json:
        print(json.dumps({"boxes": boxes, "tokens": tokens}, ensure_ascii=False, indent=1))
        return 0
    for box in boxes:
        state = "取消" if box["revoked_at"] else "有効"
        print(f"{box['box']}\t{box['town']}\t{state}\t証明書期限 {box['certificate_expires']}")
    print(
        f"トークン {len(tokens)} 件（未使用 "
        f"{sum(1 for t in tokens if not t['used_at'] and not t['revoked_at'])} 件）"
    )
    return 0
