"""Sync wire messages and their framing (docs/sync-protocol.md is the normative text).

Every message is one frame sequence:

    "RKSY" | u8 framing version (1) | u32 BE header length H | H bytes of UTF-8 JSON header
    then, for i in 0 … header["blobs"]-1:  u32 BE length L | L bytes (a sealed blob)

The JSON header always has "type" and "protocol" (the sender's protocol version for this
session) and "blobs" (how many blob frames follow). Unknown header fields are ignored, so
a peer one protocol version ahead can add fields without breaking an older one. Blobs come
after the header, one frame each, so either side can stream a batch without holding it
whole.

Types: hello → welcome; exchange → reply; refusal answers either when refused.

Protocol 2 adds one field to welcome and exchange: "notices", the sender's newest signed
notices (`shared.sync.notices`: as-of statements, compaction bases) for the session's
towns. A version-1 peer never sees it (it is sent only when 2 was chosen) and would
ignore it anyway.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import nacl.exceptions
import nacl.hash
from nacl.encoding import RawEncoder
from nacl.signing import SigningKey

from shared.sync import identity
from shared.sync.errors import WireError
from shared.sync.log import Have, WriterHave
from shared.sync.notices import Notice

MAGIC = b"RKSY"
FRAMING = 1
PROTOCOL = 2  # this implementation's newest protocol version (2: notices)
MIN_PROTOCOL = 1  # the oldest it still speaks
NOTICES_SINCE = 2  # the first protocol version with "notices"
MAX_NOTICES = 64
MAX_HEADER = 4 * 1024 * 1024
MAX_BLOB = 256 * 1024 * 1024 + 64 * 1024
MAX_BLOBS = 10_000
_FIXED = struct.Struct(">4sBI")
_LEN = struct.Struct(">I")
_SIGN_CONTEXT = b"renkei sync exchange v1\x00"


@dataclass(frozen=True, slots=True)
class Hello:
    session: str
    peer: str
    towns: tuple[str, ...]  # the towns the initiator holds or wants
    any_town: bool = False  # and every other town the responder holds
    protocol: int = PROTOCOL
    min_protocol: int = MIN_PROTOCOL


@dataclass(frozen=True, slots=True)
class Welcome:
    session: str
    nonce: str  # hex, single use
    peer: str
    towns: tuple[str, ...]  # what the responder holds of what was asked
    have: Have
    protocol: int = PROTOCOL
    notices: tuple[Notice, ...] = ()


@dataclass(frozen=True, slots=True)
class Exchange:
    session: str
    round: int
    nonce: str
    peer: str
    towns: tuple[str, ...]
    have: Have
    blobs: Sequence[bytes] = ()
    signature: str = ""  # hex Ed25519 by `peer` over `signing_message()`
    protocol: int = PROTOCOL
    notices: tuple[Notice, ...] = ()


@dataclass(frozen=True, slots=True)
class Reply:
    session: str
    round: int
    nonce: str  # the next nonce for this session
    have: Have  # after storing the exchange's blobs
    blobs: Sequence[bytes] = ()
    more: bool = False  # the responder holds more that the requester lacks
    stored: int = 0  # how many of the exchange's blobs were new
    protocol: int = PROTOCOL


@dataclass(frozen=True, slots=True)
class Refusal:
    session: str
    code: str  # "nonce" | "protocol" | "auth" | "request" | "busy"
    message: str
    round: int = 0
    protocol: int = PROTOCOL
    blobs: Sequence[bytes] = field(default=())


Message = Hello | Welcome | Exchange | Reply | Refusal


# ---------------------------------------------------------------------------- have


def have_to_json(have: Have) -> dict[str, dict[str, list[Any]]]:
    return {
        town: {w: [h.contiguous, list(h.extra)] for w, h in sorted(writers.items())}
        for town, writers in sorted(have.items())
    }


def have_from_json(data: Any) -> dict[str, dict[str, WriterHave]]:
    if not isinstance(data, dict):
        raise WireError("have must be an object")
    result: dict[str, dict[str, WriterHave]] = {}
    for town, writers in data.items():
        if not isinstance(town, str) or not isinstance(writers, dict):
            raise WireError("have: town entries must be objects")
        entry: dict[str, WriterHave] = {}
        for writer, value in writers.items():
            try:
                contiguous, extra = value
                entry[str(writer)] = WriterHave(
                    _nonneg(contiguous), tuple(sorted(_nonneg(s) for s in extra))
                )
            except (TypeError, ValueError) as exc:
                raise WireError(f"have: bad entry for writer {writer!r}") from exc
        result[town] = entry
    return result


def _nonneg(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value >= 2**64:
        raise ValueError("not a sequence number")
    return value


# ---------------------------------------------------------------------------- header


def _with_notices(header: dict[str, Any], message: Welcome | Exchange) -> dict[str, Any]:
    if message.protocol >= NOTICES_SINCE:
        header["notices"] = [n.to_json() for n in message.notices[:MAX_NOTICES]]
    return header


def _notices(header: Mapping[str, Any]) -> tuple[Notice, ...]:
    raw = header.get("notices", [])
    if not isinstance(raw, list):
        raise WireError("field 'notices' must be a list")
    found = (Notice.from_json(item) for item in raw[:MAX_NOTICES])
    return tuple(n for n in found if n is not None)


def _header(message: Message) -> dict[str, Any]:
    if isinstance(message, Hello):
        return {
            "type": "hello",
            "protocol": message.protocol,
            "min_protocol": message.min_protocol,
            "session": message.session,
            "peer": message.peer,
            "towns": list(message.towns),
            "any_town": message.any_town,
        }
    if isinstance(message, Welcome):
        return _with_notices(
            {
                "type": "welcome",
                "protocol": message.protocol,
                "session": message.session,
                "nonce": message.nonce,
                "peer": message.peer,
                "towns": list(message.towns),
                "have": have_to_json(message.have),
            },
            message,
        )
    if isinstance(message, Exchange):
        return _with_notices(
            {
                "type": "exchange",
                "protocol": message.protocol,
                "session": message.session,
                "round": message.round,
                "nonce": message.nonce,
                "peer": message.peer,
                "towns": list(message.towns),
                "have": have_to_json(message.have),
                "sig": message.signature,
            },
            message,
        )
    if isinstance(message, Reply):
        return {
            "type": "reply",
            "protocol": message.protocol,
            "session": message.session,
            "round": message.round,
            "nonce": message.nonce,
            "have": have_to_json(message.have),
            "more": message.more,
            "stored": message.stored,
        }
    return {
        "type": "refusal",
        "protocol": message.protocol,
        "session": message.session,
        "round": message.round,
        "code": message.code,
        "message": message.message,
    }


def _canonical(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def frames(message: Message) -> Iterator[bytes]:
    """The message as byte chunks: the header, then one chunk per blob (streamable:
    `message.blobs` may be a lazy sequence that loads each blob when indexed)."""
    header = _header(message)
    header["blobs"] = len(message.blobs) if not isinstance(message, Hello | Welcome) else 0
    raw = _canonical(header)
    if len(raw) > MAX_HEADER:
        raise WireError("message header above the limit")
    yield _FIXED.pack(MAGIC, FRAMING, len(raw)) + raw
    if isinstance(message, Hello | Welcome):
        return
    for blob in message.blobs:
        yield _LEN.pack(len(blob)) + blob


def encode(message: Message) -> bytes:
    return b"".join(frames(message))


# ---------------------------------------------------------------------------- decoding


def _str(header: Mapping[str, Any], name: str) -> str:
    value = header.get(name)
    if not isinstance(value, str):
        raise WireError(f"field {name!r} missing or not a string")
    return value


def _int(header: Mapping[str, Any], name: str, default: int | None = None) -> int:
    value = header.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise WireError(f"field {name!r} missing or not a non-negative integer")
    return value


def _towns(header: Mapping[str, Any]) -> tuple[str, ...]:
    value = header.get("towns")
    if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
        raise WireError("field 'towns' must be a list of town codes")
    return tuple(value)


def decode(data: bytes, *, max_total: int | None = None) -> Message:
    """Parse one message; every length is bounded before anything is allocated."""
    if max_total is not None and len(data) > max_total:
        raise WireError(f"message of {len(data)} bytes above the limit {max_total}")
    if len(data) < _FIXED.size:
        raise WireError("message truncated")
    magic, framing, length = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise WireError("not a sync message (bad magic)")
    if framing != FRAMING:
        raise WireError(f"unsupported framing version {framing}")
    if length > MAX_HEADER or _FIXED.size + length > len(data):
        raise WireError("message header truncated or above the limit")
    try:
        header = json.loads(data[_FIXED.size : _FIXED.size + length].decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError("message header is not UTF-8 JSON") from exc
    if not isinstance(header, dict):
        raise WireError("message header is not an object")
    count = _int(header, "blobs", 0)
    if count > MAX_BLOBS:
        raise WireError(f"{count} blobs in one message, above the limit {MAX_BLOBS}")
    blobs: list[bytes] = []
    position = _FIXED.size + length
    for _ in range(count):
        if position + _LEN.size > len(data):
            raise WireError("blob frame truncated")
        (size,) = _LEN.unpack_from(data, position)
        position += _LEN.size
        if size > MAX_BLOB or position + size > len(data):
            raise WireError("blob frame truncated or above the limit")
        blobs.append(data[position : position + size])
        position += size
    if position != len(data):
        raise WireError("trailing bytes after the last blob frame")
    return _message(header, tuple(blobs))


def _message(header: Mapping[str, Any], blobs: tuple[bytes, ...]) -> Message:
    kind = header.get("type")
    protocol = _int(header, "protocol")
    session = _str(header, "session")
    if kind == "hello":
        return Hello(
            session,
            _str(header, "peer"),
            _towns(header),
            header.get("any_town") is True,
            protocol,
            _int(header, "min_protocol", protocol),
        )
    if kind == "welcome":
        return Welcome(
            session,
            _str(header, "nonce"),
            _str(header, "peer"),
            _towns(header),
            have_from_json(header.get("have")),
            protocol,
            _notices(header),
        )
    if kind == "exchange":
        return Exchange(
            session,
            _int(header, "round"),
            _str(header, "nonce"),
            _str(header, "peer"),
            _towns(header),
            have_from_json(header.get("have")),
            blobs,
            _str(header, "sig"),
            protocol,
            _notices(header),
        )
    if kind == "reply":
        more = header.get("more")
        if not isinstance(more, bool):
            raise WireError("field 'more' must be a boolean")
        return Reply(
            session,
            _int(header, "round"),
            _str(header, "nonce"),
            have_from_json(header.get("have")),
            blobs,
            more,
            _int(header, "stored", 0),
            protocol,
        )
    if kind == "refusal":
        return Refusal(
            session,
            _str(header, "code"),
            _str(header, "message"),
            _int(header, "round", 0),
            protocol,
        )
    raise WireError(f"unknown message type {kind!r}")


# ---------------------------------------------------------------------------- signing


def signing_message(exchange: Exchange) -> bytes:
    """What the requester signs: a context label, the canonical header without the
    signature, and a digest of every blob frame (so nothing can be swapped in)."""
    header = _header(exchange)
    header.pop("sig")
    header["blobs"] = len(exchange.blobs)
    digests = b"".join(_blake2b(blob) for blob in exchange.blobs)
    digest = _blake2b(digests)
    return _SIGN_CONTEXT + _canonical(header) + b"\x00" + digest


def _blake2b(data: bytes) -> bytes:
    return nacl.hash.blake2b(data, digest_size=64, encoder=RawEncoder)


def sign(exchange: Exchange, key: SigningKey) -> Exchange:
    signature = key.sign(signing_message(exchange)).signature.hex()
    return replace(exchange, signature=signature)


def signature_ok(exchange: Exchange) -> bool:
    """The exchange is signed by the key its self-certifying `peer` id names."""
    key = identity.verify_key_of(exchange.peer)
    if key is None:
        return False
    try:
        key.verify(signing_message(exchange), bytes.fromhex(exchange.signature))
    except (ValueError, nacl.exceptions.BadSignatureError):
        return False
    return True
