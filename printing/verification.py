"""The verification page's logic, shared by every box and the hub: a payload scanned
from a certificate's QR (or typed) is checked offline against the issuing town's public
key, and the page shows what the document must say — so a plain-paper certificate can be
trusted where the tamper-proof stock is locked in a ruined town hall."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from printing.errors import PayloadError
from printing.qr import verify_payload
from shared.crypto import TownPublic

MAX_PAYLOAD_CHARS = 4000


@dataclass(frozen=True, slots=True)
class Verdict:
    valid: bool
    lines: tuple[str, ...]


def verify_for_page(payload: str, current_public: Callable[[str], TownPublic | None]) -> Verdict:
    """`current_public(town)` gives the town's public keys this server holds; a payload
    signed under another epoch is reported as unverifiable here, not as forged."""
    text = payload.strip()[:MAX_PAYLOAD_CHARS]
    if not text:
        return Verdict(False, ("二次元コードの内容を入力してください。",))

    def lookup(town: str, epoch: int) -> TownPublic | None:
        public = current_public(town)
        return public if public is not None and public.epoch == epoch else None

    try:
        verified = verify_payload(text, lookup)
    except PayloadError as exc:
        return Verdict(False, (exc.message,))
    return Verdict(True, tuple(verified.summary_lines()))
