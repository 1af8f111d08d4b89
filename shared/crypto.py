"""Keys and identities: town key pairs per epoch, the federation root's certificates,
town-signed clerk certificates, and clerk keys wrapped under a password. PyNaCl only.

Who holds what (BRIEF §3):

    federation root (Ed25519, offline) ──certifies──▶ town public keys, box enrolments
    town key pair per epoch (X25519 seal + Ed25519 sign) ──signs──▶ ClerkCertificate
    town private keys ──SealedBox──▶ each clerk's own X25519 public key
    clerk private keys ──argon2id ≥ MODERATE + XChaCha20-Poly1305──▶ the clerk's password

A writer needs only a town's public key (`TownPublic`); reading needs the town's private
keys (`TownKeys`), which a box obtains only when one of the town's clerks logs in:
password → `unwrap_clerk_keys` → `open_town_keys` → `KeyRing`. Adding a clerk, resetting
a password (fresh clerk keys, town keys resealed to them) and rotating an epoch
(`rotate`, then reseal to every clerk) need nobody's password.

Serialised forms: public things (TownPublic, Certificate, ClerkCertificate, wrapped clerk
records) are canonical JSON (sorted keys, no spaces, UTF-8), keys in lowercase hex, times
in whole UTC seconds. Signatures cover a domain-separation label, a NUL and the canonical
JSON of every other field. Town keys sealed to a clerk are a small binary record (below).

No object holding a private key shows key material in its repr.

Errors:

    CryptoError
     ├── KeyFormatError     malformed serialised key, certificate or wrapped record
     ├── CertificateError   bad signature, wrong issuer/kind/town/epoch, outside validity
     ├── WrongPassword      the password does not unwrap these clerk keys
     ├── WeakPassword       refused when setting a password; Japanese message for the clerk
     └── WrongRecipient     sealed town keys that this clerk cannot open, or that are not
                            the town keys the caller expected
"""

from __future__ import annotations

import json
import struct
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import nacl.exceptions
import nacl.hash
import nacl.utils
import zxcvbn
from nacl.encoding import RawEncoder
from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.pwhash import argon2id
from nacl.secret import Aead
from nacl.signing import SigningKey, VerifyKey

from shared.model import Role

MAX_EPOCH = 2**32 - 1

# ---------------------------------------------------------------------------- errors


class CryptoError(Exception):
    """Base of every error this module raises."""


class KeyFormatError(CryptoError):
    """A serialised key, certificate or wrapped record that cannot be parsed."""


class CertificateError(CryptoError):
    """A certificate that does not verify, is of the wrong kind, or is not valid now."""


class WrongPassword(CryptoError):
    """The password does not unwrap these clerk keys."""

    def __init__(self) -> None:
        super().__init__("パスワードが違います。もう一度入力してください。")


class WeakPassword(CryptoError):
    """A new password refused by the strength check. `str()` is the Japanese message for
    the clerk; `detail` keeps zxcvbn's English feedback for the log."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class WrongRecipient(CryptoError):
    """Sealed town keys that this clerk cannot open (sealed to someone else, or another
    town's), or that do not match the certified public keys the caller expected."""


# ---------------------------------------------------------------------------- helpers


def _canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _blake2b(data: bytes, size: int) -> bytes:
    return nacl.hash.blake2b(data, digest_size=size, encoder=RawEncoder)


def key_id(key: VerifyKey | PublicKey) -> str:
    """A short pseudonymous id for a public key (BLAKE2b-128, hex): what relays and
    directories show instead of names."""
    return _blake2b(bytes(key), 16).hex()


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value.encode()) > 255:
        raise KeyFormatError(f"{what} must be a non-empty string of at most 255 bytes")
    return value


def _check_epoch(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_EPOCH:
        raise KeyFormatError(f"epoch must be an integer in 0..{MAX_EPOCH}")
    return value


def _field(data: Mapping[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise KeyFormatError(f"field {name!r} missing or not {kind.__name__}")
    return value


def _hex(data: Mapping[str, Any], name: str, size: int) -> bytes:
    try:
        raw = bytes.fromhex(_field(data, name, str))
    except ValueError as exc:
        raise KeyFormatError(f"field {name!r} is not hex") from exc
    if len(raw) != size:
        raise KeyFormatError(f"field {name!r} must be {size} bytes")
    return raw


def _load_json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise KeyFormatError(f"{what}: not UTF-8 JSON") from exc
    if not isinstance(data, dict):
        raise KeyFormatError(f"{what}: not a JSON object")
    return data


def _utc_seconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("certificate times must be timezone-aware")
    return int(moment.timestamp())


def _from_seconds(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# ---------------------------------------------------------------------------- town keys


@dataclass(frozen=True, slots=True)
class TownPublic:
    """What anyone may know of a town's keys for one epoch: enough to write for the town
    (seal to `sealing_key`) and to check its signatures (`verify_key`)."""

    town: str
    epoch: int
    sealing_key: PublicKey  # X25519
    verify_key: VerifyKey  # Ed25519

    def to_json(self) -> dict[str, Any]:
        return {
            "town": self.town,
            "epoch": self.epoch,
            "x25519": bytes(self.sealing_key).hex(),
            "ed25519": bytes(self.verify_key).hex(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TownPublic:
        return cls(
            town=_check_name(data.get("town"), "town"),
            epoch=_check_epoch(data.get("epoch")),
            sealing_key=PublicKey(_hex(data, "x25519", 32)),
            verify_key=VerifyKey(_hex(data, "ed25519", 32)),
        )

    def to_bytes(self) -> bytes:
        return _canonical(self.to_json())

    @classmethod
    def from_bytes(cls, raw: bytes) -> TownPublic:
        return cls.from_json(_load_json(raw, "town public keys"))


_TOWN_KEYS_MAGIC = b"RKTK\x01"


class _PrivatePair:
    """An X25519 sealing key and an Ed25519 signing key held together (towns, clerks)."""

    __slots__ = ()
    _sealing: PrivateKey
    _signing: SigningKey

    @property
    def sealing_key(self) -> PrivateKey:
        return self._sealing

    @property
    def signing_key(self) -> SigningKey:
        return self._signing


class TownKeys(_PrivatePair):
    """A town's private keys for one epoch. Lives only in that town's worker process."""

    __slots__ = ("_sealing", "_signing", "epoch", "town")

    def __init__(self, town: str, epoch: int, sealing: PrivateKey, signing: SigningKey) -> None:
        self.town = _check_name(town, "town")
        self.epoch = _check_epoch(epoch)
        self._sealing = sealing
        self._signing = signing

    @classmethod
    def generate(cls, town: str, epoch: int = 1) -> TownKeys:
        return cls(town, epoch, PrivateKey.generate(), SigningKey.generate())

    @property
    def public(self) -> TownPublic:
        return TownPublic(self.town, self.epoch, self._sealing.public_key, self._signing.verify_key)

    def __repr__(self) -> str:
        return f"TownKeys(town={self.town!r}, epoch={self.epoch}, key_id={self.public_id!r})"

    __str__ = __repr__

    @property
    def public_id(self) -> str:
        return key_id(self._signing.verify_key)

    def _to_bytes(self) -> bytes:
        # "RKTK" 0x01 | town length u8 | town UTF-8 | epoch u32 BE | X25519 secret 32 |
        # Ed25519 seed 32. Only ever travels inside a SealedBox.
        town = self.town.encode()
        return (
            _TOWN_KEYS_MAGIC
            + struct.pack(">B", len(town))
            + town
            + struct.pack(">I", self.epoch)
            + bytes(self._sealing)
            + bytes(self._signing)
        )

    @classmethod
    def _from_bytes(cls, raw: bytes) -> TownKeys:
        head = len(_TOWN_KEYS_MAGIC)
        if raw[:head] != _TOWN_KEYS_MAGIC or len(raw) < head + 1:
            raise KeyFormatError("not a sealed town-keys record")
        town_len = raw[head]
        start = head + 1 + town_len
        if len(raw) != start + 4 + 64:
            raise KeyFormatError("town-keys record has the wrong length")
        try:
            town = raw[head + 1 : start].decode()
        except UnicodeDecodeError as exc:
            raise KeyFormatError("town code is not UTF-8") from exc
        (epoch,) = struct.unpack(">I", raw[start : start + 4])
        secret = raw[start + 4 :]
        return cls(town, epoch, PrivateKey(secret[:32]), SigningKey(secret[32:]))


def seal_secret(plaintext: bytes, passphrase: str, limits: KdfLimits | None = None) -> bytes:
    """Encrypt a key file under an operator's passphrase (argon2id + XChaCha20-Poly1305):
    the hub's custody of town keys at rest, unsealed by the operator at start-up."""
    limits = limits or DEFAULT_KDF_LIMITS
    salt = nacl.utils.random(argon2id.SALTBYTES)
    key = argon2id.kdf(
        Aead.KEY_SIZE, _password_bytes(passphrase), salt, limits.opslimit, limits.memlimit
    )
    header = _SECRET_MAGIC + struct.pack(">QQ", limits.opslimit, limits.memlimit) + salt
    return header + bytes(Aead(key).encrypt(plaintext, header))


def open_secret(sealed: bytes, passphrase: str) -> bytes:
    """Open what `seal_secret` wrote; WrongPassword for a wrong passphrase or a bad file."""
    size = len(_SECRET_MAGIC) + 16 + argon2id.SALTBYTES
    if sealed[: len(_SECRET_MAGIC)] != _SECRET_MAGIC or len(sealed) < size:
        raise KeyFormatError("not a sealed secret file")
    header = sealed[:size]
    opslimit, memlimit = struct.unpack(">QQ", header[len(_SECRET_MAGIC) : len(_SECRET_MAGIC) + 16])
    if opslimit > _MAX_OPSLIMIT or memlimit > _MAX_MEMLIMIT:
        raise KeyFormatError("sealed secret asks for an unreasonable KDF cost")
    salt = header[-argon2id.SALTBYTES :]
    key = argon2id.kdf(Aead.KEY_SIZE, _password_bytes(passphrase), salt, opslimit, memlimit)
    try:
        return bytes(Aead(key).decrypt(sealed[size:], header))
    except nacl.exceptions.CryptoError as exc:
        raise WrongPassword() from exc


_SECRET_MAGIC = b"RKSS\x01"


def town_keys_to_secret(keys: TownKeys) -> bytes:
    """The private record of a town's keys, for the custodian's sealed key file only."""
    return keys._to_bytes()


def town_keys_from_secret(raw: bytes) -> TownKeys:
    return TownKeys._from_bytes(raw)


def rotate(town_keys: TownKeys) -> TownKeys:
    """The next epoch's keys: fresh key pairs, epoch + 1. Keep the old ones in the
    KeyRing to read old blobs; new blobs are sealed to the new public key."""
    if town_keys.epoch >= MAX_EPOCH:
        raise CryptoError("epoch counter exhausted")
    return TownKeys.generate(town_keys.town, town_keys.epoch + 1)


class KeyRing:
    """An open town: its TownKeys by epoch. The newest epoch is the current one."""

    __slots__ = ("_keys", "town")

    def __init__(self, town: str, keys: Iterable[TownKeys] = ()) -> None:
        self.town = _check_name(town, "town")
        self._keys: dict[int, TownKeys] = {}
        for k in keys:
            self.add(k)

    def add(self, keys: TownKeys) -> None:
        if keys.town != self.town:
            raise CryptoError(f"keys of town {keys.town!r} added to the ring of {self.town!r}")
        self._keys[keys.epoch] = keys

    def get(self, epoch: int) -> TownKeys | None:
        return self._keys.get(epoch)

    def __contains__(self, epoch: object) -> bool:
        return epoch in self._keys

    def __iter__(self) -> Iterator[TownKeys]:
        return iter(self._keys[e] for e in sorted(self._keys))

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def epochs(self) -> tuple[int, ...]:
        return tuple(sorted(self._keys))

    @property
    def current(self) -> TownKeys:
        if not self._keys:
            raise CryptoError(f"key ring of town {self.town!r} is empty")
        return self._keys[max(self._keys)]

    @property
    def public(self) -> TownPublic:
        return self.current.public

    @classmethod
    def open(
        cls,
        town: str,
        sealed: Iterable[bytes],
        clerk_keys: ClerkKeys,
        expect: Mapping[int, TownPublic] | None = None,
    ) -> KeyRing:
        """Open every epoch's sealed town keys with one clerk's keys; when `expect` (the
        certified public keys by epoch) is given, each must match."""
        ring = cls(town)
        for item in sealed:
            keys = open_town_keys(item, clerk_keys)
            if expect is not None:
                _check_expected(keys, expect.get(keys.epoch))
            ring.add(keys)
        return ring

    def __repr__(self) -> str:
        return f"KeyRing(town={self.town!r}, epochs={list(self.epochs)})"

    __str__ = __repr__


# ---------------------------------------------------------------------------- clerk keys


@dataclass(frozen=True, slots=True)
class ClerkPublic:
    town: str
    login_id: str
    sealing_key: PublicKey  # X25519: town keys are sealed to it
    verify_key: VerifyKey  # Ed25519: the clerk's session signs with it

    @property
    def key_id(self) -> str:
        return key_id(self.verify_key)


class ClerkKeys(_PrivatePair):
    """One clerk's own key pairs, open only while the clerk is logged in."""

    __slots__ = ("_sealing", "_signing", "login_id", "town")

    def __init__(self, town: str, login_id: str, sealing: PrivateKey, signing: SigningKey) -> None:
        self.town = _check_name(town, "town")
        self.login_id = _check_name(login_id, "login id")
        self._sealing = sealing
        self._signing = signing

    @classmethod
    def generate(cls, town: str, login_id: str) -> ClerkKeys:
        return cls(town, login_id, PrivateKey.generate(), SigningKey.generate())

    @property
    def public(self) -> ClerkPublic:
        return ClerkPublic(
            self.town, self.login_id, self._sealing.public_key, self._signing.verify_key
        )

    def __repr__(self) -> str:
        return (
            f"ClerkKeys(town={self.town!r}, login_id={self.login_id!r}, "
            f"key_id={self.public.key_id!r})"
        )

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class KdfLimits:
    """argon2id cost. Stored in every wrapped record, so it can be raised later."""

    opslimit: int
    memlimit: int

    def at_least(self, other: KdfLimits) -> bool:
        return self.opslimit >= other.opslimit and self.memlimit >= other.memlimit


INTERACTIVE = KdfLimits(argon2id.OPSLIMIT_INTERACTIVE, argon2id.MEMLIMIT_INTERACTIVE)
MODERATE = KdfLimits(argon2id.OPSLIMIT_MODERATE, argon2id.MEMLIMIT_MODERATE)
SENSITIVE = KdfLimits(argon2id.OPSLIMIT_SENSITIVE, argon2id.MEMLIMIT_SENSITIVE)
DEFAULT_KDF_LIMITS = MODERATE
# A crafted record must not make a box spend minutes or gigabytes on one login attempt.
_MAX_OPSLIMIT = 4 * argon2id.OPSLIMIT_SENSITIVE
_MAX_MEMLIMIT = argon2id.MEMLIMIT_SENSITIVE

MIN_PASSWORD_LENGTH = 10
MIN_PASSWORD_SCORE = 3
_ZXCVBN_MAX = 72  # zxcvbn refuses longer input; a longer password is scored by its prefix
_zxcvbn_lock = threading.Lock()  # zxcvbn keeps user inputs in a module-level dict

_WEAK_MESSAGE = (
    "このパスワードは推測されやすいため使えません。{min}文字以上で、"
    "ご自分の名前・ログインID・町名・生年月日・単純な並び（1234、abcd など）を含まない、"
    "複数の語を組み合わせたパスワードにしてください。"
)
_SHORT_MESSAGE = "パスワードが短すぎます。{min}文字以上にしてください。"

_WRAP_FORMAT = "renkei-clerk-keys"
_WRAP_VERSION = 1


def _password_bytes(password: str) -> bytes:
    # NFC: the same password typed through different input methods must give the same key.
    return unicodedata.normalize("NFC", password).encode()


def check_password_strength(password: str, user_inputs: Iterable[str] = ()) -> None:
    """Refuse a new password shorter than MIN_PASSWORD_LENGTH characters or with a zxcvbn
    score below MIN_PASSWORD_SCORE (`user_inputs`: login id, name, town… count as known)."""
    text = unicodedata.normalize("NFC", password)
    if len(text) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(_SHORT_MESSAGE.format(min=MIN_PASSWORD_LENGTH), "too short")
    with _zxcvbn_lock:
        result: dict[str, Any] = zxcvbn.zxcvbn(text[:_ZXCVBN_MAX], user_inputs=list(user_inputs))
    score = int(result["score"])
    if score < MIN_PASSWORD_SCORE:
        feedback = result.get("feedback") or {}
        detail = " ".join(
            [f"zxcvbn score {score}.", str(feedback.get("warning") or "")]
            + [str(s) for s in feedback.get("suggestions") or []]
        ).strip()
        raise WeakPassword(_WEAK_MESSAGE.format(min=MIN_PASSWORD_LENGTH), detail)


def _wrap_header(
    town: str, login_id: str, limits: KdfLimits, salt: bytes, public: ClerkPublic
) -> dict[str, Any]:
    return {
        "format": _WRAP_FORMAT,
        "v": _WRAP_VERSION,
        "town": town,
        "login_id": login_id,
        "kdf": "argon2id13",
        "opslimit": limits.opslimit,
        "memlimit": limits.memlimit,
        "salt": salt.hex(),
        "x25519": bytes(public.sealing_key).hex(),
        "ed25519": bytes(public.verify_key).hex(),
    }


def _wrap(keys: ClerkKeys, password: str, limits: KdfLimits) -> bytes:
    salt = nacl.utils.random(argon2id.SALTBYTES)
    header = _wrap_header(keys.town, keys.login_id, limits, salt, keys.public)
    wrapping_key = argon2id.kdf(
        Aead.KEY_SIZE, _password_bytes(password), salt, limits.opslimit, limits.memlimit
    )
    secret = bytes(keys.sealing_key) + bytes(keys.signing_key)
    sealed = Aead(wrapping_key).encrypt(secret, _canonical(header))
    record = dict(header, nonce=sealed.nonce.hex(), ciphertext=sealed.ciphertext.hex())
    return _canonical(record)


def wrap_clerk_keys(
    keys: ClerkKeys,
    password: str,
    *,
    kdf_limits: KdfLimits = DEFAULT_KDF_LIMITS,
    user_inputs: Iterable[str] = (),
) -> bytes:
    """Wrap a clerk's private keys under a new password: argon2id (fresh random salt) →
    32-byte key → XChaCha20-Poly1305, with every cleartext field of the record (town,
    login id, KDF parameters, salt, public keys) as associated data.

    Raises WeakPassword (Japanese message) for a password the strength check refuses;
    the login id and town always count as known inputs."""
    check_password_strength(password, [keys.login_id, keys.town, *user_inputs])
    return _wrap(keys, password, kdf_limits)


@dataclass(frozen=True, slots=True)
class WrappedInfo:
    """The cleartext part of a wrapped clerk record (readable without the password)."""

    town: str
    login_id: str
    kdf_limits: KdfLimits
    public: ClerkPublic


def _parse_wrapped(blob: bytes) -> tuple[dict[str, Any], WrappedInfo, bytes, bytes, bytes]:
    data = _load_json(blob, "wrapped clerk keys")
    if data.get("format") != _WRAP_FORMAT or data.get("v") != _WRAP_VERSION:
        raise KeyFormatError("not a version-1 wrapped clerk-keys record")
    if data.get("kdf") != "argon2id13":
        raise KeyFormatError("unsupported key derivation")
    limits = KdfLimits(_field(data, "opslimit", int), _field(data, "memlimit", int))
    if not (
        argon2id.OPSLIMIT_MIN <= limits.opslimit <= _MAX_OPSLIMIT
        and argon2id.MEMLIMIT_MIN <= limits.memlimit <= _MAX_MEMLIMIT
    ):
        raise KeyFormatError("key-derivation parameters out of range")
    town = _check_name(data.get("town"), "town")
    login_id = _check_name(data.get("login_id"), "login id")
    public = ClerkPublic(
        town, login_id, PublicKey(_hex(data, "x25519", 32)), VerifyKey(_hex(data, "ed25519", 32))
    )
    salt = _hex(data, "salt", argon2id.SALTBYTES)
    nonce = _hex(data, "nonce", Aead.NONCE_SIZE)
    try:
        ciphertext = bytes.fromhex(_field(data, "ciphertext", str))
    except ValueError as exc:
        raise KeyFormatError("field 'ciphertext' is not hex") from exc
    header = _wrap_header(town, login_id, limits, salt, public)
    return header, WrappedInfo(town, login_id, limits, public), salt, nonce, ciphertext


def wrapped_info(blob: bytes) -> WrappedInfo:
    """Who a wrapped record belongs to and its KDF cost, without the password."""
    return _parse_wrapped(blob)[1]


def unwrap_clerk_keys(blob: bytes, password: str) -> ClerkKeys:
    """Open a wrapped record with the clerk's password; WrongPassword if it does not."""
    header, info, salt, nonce, ciphertext = _parse_wrapped(blob)
    wrapping_key = argon2id.kdf(
        Aead.KEY_SIZE,
        _password_bytes(password),
        salt,
        info.kdf_limits.opslimit,
        info.kdf_limits.memlimit,
    )
    try:
        secret = Aead(wrapping_key).decrypt(ciphertext, _canonical(header), nonce)
    except nacl.exceptions.CryptoError as exc:
        raise WrongPassword() from exc
    if len(secret) != 64:
        raise KeyFormatError("wrapped clerk keys have the wrong length")
    keys = ClerkKeys(info.town, info.login_id, PrivateKey(secret[:32]), SigningKey(secret[32:]))
    if keys.public != info.public:
        raise KeyFormatError("wrapped private keys do not match the record's public keys")
    return keys


def rewrap_clerk_keys(blob: bytes, password: str, *, kdf_limits: KdfLimits) -> bytes:
    """Re-wrap under the same (already accepted) password with new KDF limits — e.g. at
    login once the town raises its cost. Fresh salt and nonce; no strength check."""
    return _wrap(unwrap_clerk_keys(blob, password), password, kdf_limits)


def seal_town_keys(town_keys: TownKeys, clerk_public: ClerkPublic | PublicKey) -> bytes:
    """Seal a town's private keys (one epoch) to a clerk's X25519 public key. Anyone
    holding the town keys can do this for a new clerk; no password is involved."""
    recipient = clerk_public.sealing_key if isinstance(clerk_public, ClerkPublic) else clerk_public
    return SealedBox(recipient).encrypt(town_keys._to_bytes())


def _check_expected(keys: TownKeys, expect: TownPublic | None) -> None:
    if expect is None or keys.public != expect:
        raise WrongRecipient(
            f"sealed keys for town {keys.town!r} epoch {keys.epoch} do not match the "
            "certified public keys"
        )


def open_town_keys(
    sealed: bytes, clerk_keys: ClerkKeys, *, expect: TownPublic | None = None
) -> TownKeys:
    """Open town keys sealed to this clerk. A sealed box proves nothing about who sealed
    it, so pass `expect` (the certified TownPublic) wherever the sealed record came from
    storage that others can write: keys that do not match raise WrongRecipient."""
    try:
        raw = SealedBox(clerk_keys.sealing_key).decrypt(sealed)
    except nacl.exceptions.CryptoError as exc:
        raise WrongRecipient("these town keys are not sealed to this clerk") from exc
    keys = TownKeys._from_bytes(raw)
    if keys.town != clerk_keys.town:
        raise WrongRecipient(
            f"sealed keys of town {keys.town!r} offered to a clerk of {clerk_keys.town!r}"
        )
    if expect is not None:
        _check_expected(keys, expect)
    return keys


# ---------------------------------------------------------------------------- federation root

CertificateKind = Literal["town", "box", "issuer"]
_CERT_CONTEXT = b"renkei certificate v1\x00"
_CLERK_CERT_CONTEXT = b"renkei clerk certificate v1\x00"


class FederationRoot:
    """The federation's offline Ed25519 root. Certifies town keys and box enrolments,
    nothing else (a change of mayor or clerk never needs it)."""

    __slots__ = ("_signing",)

    def __init__(self, signing_key: SigningKey) -> None:
        self._signing = signing_key

    @classmethod
    def generate(cls) -> FederationRoot:
        return cls(SigningKey.generate())

    @property
    def verify_key(self) -> VerifyKey:
        return self._signing.verify_key

    @property
    def key_id(self) -> str:
        return key_id(self._signing.verify_key)

    def _sign(self, message: bytes) -> bytes:
        return self._signing.sign(message).signature

    def __repr__(self) -> str:
        return f"FederationRoot(key_id={self.key_id!r})"

    __str__ = __repr__


class EnrolmentIssuer:
    """A key the root has delegated box enrolment to (kind "issuer" certificate): the
    hub's enrolment authority, so that a box enrols with a one-time token while the root
    itself stays offline. It signs box certificates only — never town certificates — and
    each certificate it signs carries the issuer certificate as its `chain`, so anyone
    holding just the root key can check it (`verify_box_certificate`)."""

    __slots__ = ("_signing", "certificate")

    def __init__(self, signing_key: SigningKey, certificate: Certificate) -> None:
        if certificate.kind != "issuer" or bytes(certificate.verify_key) != bytes(
            signing_key.verify_key
        ):
            raise CertificateError("the issuer certificate does not certify this key")
        self._signing = signing_key
        self.certificate = certificate

    @property
    def verify_key(self) -> VerifyKey:
        return self._signing.verify_key

    @property
    def signing_key(self) -> SigningKey:
        return self._signing

    @property
    def key_id(self) -> str:
        return key_id(self._signing.verify_key)

    def _sign(self, message: bytes) -> bytes:
        return self._signing.sign(message).signature

    def __repr__(self) -> str:
        return f"EnrolmentIssuer(key_id={self.key_id!r})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Certificate:
    """A root-signed statement binding a town's (kind "town") or a box's (kind "box")
    public keys to its id for an epoch and a validity window. `town` is the town itself
    for kind "town" and the town the box belongs to for kind "box". Kind "issuer" is the
    root's delegation of box enrolment to a key (`EnrolmentIssuer`; `town` is
    "federation"). A box certificate signed by an issuer carries the issuer's certificate
    in `chain` — outside the signed body, serialised as "chain" — so it still verifies
    against the root key alone."""

    kind: CertificateKind
    subject: str
    town: str
    sealing_key: PublicKey
    verify_key: VerifyKey
    epoch: int
    issued_at: datetime
    expires_at: datetime
    issuer: str  # key id of the root (or of the enrolment issuer) that signed
    signature: bytes
    chain: tuple[Certificate, ...] = ()  # the issuer's certificate, for a delegated box

    def _body(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "town": self.town,
            "x25519": bytes(self.sealing_key).hex(),
            "ed25519": bytes(self.verify_key).hex(),
            "epoch": self.epoch,
            "issued_at": _utc_seconds(self.issued_at),
            "expires_at": _utc_seconds(self.expires_at),
            "issuer": self.issuer,
        }

    def signed_bytes(self) -> bytes:
        return _CERT_CONTEXT + _canonical(self._body())

    def to_json(self) -> dict[str, Any]:
        data = dict(self._body(), signature=self.signature.hex())
        if self.chain:
            data["chain"] = [c.to_json() for c in self.chain]
        return data

    def to_bytes(self) -> bytes:
        return _canonical(self.to_json())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Certificate:
        kind = data.get("kind")
        if kind not in ("town", "box", "issuer"):
            raise KeyFormatError("certificate kind must be 'town', 'box' or 'issuer'")
        chain: tuple[Certificate, ...] = ()
        if "chain" in data:
            links = data["chain"]
            if kind != "box" or not isinstance(links, list) or len(links) != 1:
                raise KeyFormatError("only a box certificate carries a chain (one issuer)")
            if not isinstance(links[0], Mapping) or "chain" in links[0]:
                raise KeyFormatError("a chain link must be a plain issuer certificate")
            chain = (cls.from_json(links[0]),)
            if chain[0].kind != "issuer":
                raise KeyFormatError("a chain link must be an issuer certificate")
        return cls(
            kind=kind,
            subject=_check_name(data.get("subject"), "subject"),
            town=_check_name(data.get("town"), "town"),
            sealing_key=PublicKey(_hex(data, "x25519", 32)),
            verify_key=VerifyKey(_hex(data, "ed25519", 32)),
            epoch=_check_epoch(data.get("epoch")),
            issued_at=_from_seconds(_field(data, "issued_at", int)),
            expires_at=_from_seconds(_field(data, "expires_at", int)),
            issuer=_field(data, "issuer", str),
            signature=_hex(data, "signature", 64),
            chain=chain,
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> Certificate:
        return cls.from_json(_load_json(raw, "certificate"))


def _issue(
    root: FederationRoot | EnrolmentIssuer,
    kind: CertificateKind,
    subject: str,
    town: str,
    sealing_key: PublicKey,
    verify_key: VerifyKey,
    epoch: int,
    issued_at: datetime,
    expires_at: datetime,
) -> Certificate:
    chain: tuple[Certificate, ...] = ()
    if isinstance(root, EnrolmentIssuer):
        if kind != "box":
            raise CertificateError("an enrolment issuer certifies boxes only")
        chain = (root.certificate,)
        # never valid outside the delegation it depends on
        issued_at = max(issued_at, root.certificate.issued_at)
        expires_at = min(expires_at, root.certificate.expires_at)
    if _utc_seconds(expires_at) <= _utc_seconds(issued_at):
        raise ValueError("a certificate must expire after it is issued")
    unsigned = Certificate(
        kind=kind,
        subject=_check_name(subject, "subject"),
        town=_check_name(town, "town"),
        sealing_key=sealing_key,
        verify_key=verify_key,
        epoch=_check_epoch(epoch),
        issued_at=_from_seconds(_utc_seconds(issued_at)),  # whole seconds, as signed
        expires_at=_from_seconds(_utc_seconds(expires_at)),
        issuer=root.key_id,
        signature=b"",
        chain=chain,
    )
    return replace(unsigned, signature=root._sign(unsigned.signed_bytes()))


def issue_issuer_certificate(
    root: FederationRoot,
    verify_key: VerifyKey,
    sealing_key: PublicKey,
    *,
    subject: str = "hub",
    issued_at: datetime,
    expires_at: datetime,
) -> Certificate:
    """Delegate box enrolment to a key (the hub's enrolment authority), in the ceremony."""
    return _issue(
        root, "issuer", subject, "federation", sealing_key, verify_key, 1, issued_at, expires_at
    )


def issue_town_certificate(
    root: FederationRoot, town_public: TownPublic, *, issued_at: datetime, expires_at: datetime
) -> Certificate:
    return _issue(
        root,
        "town",
        town_public.town,
        town_public.town,
        town_public.sealing_key,
        town_public.verify_key,
        town_public.epoch,
        issued_at,
        expires_at,
    )


def issue_box_certificate(
    root: FederationRoot | EnrolmentIssuer,
    box_id: str,
    *,
    town: str,
    sealing_key: PublicKey,
    verify_key: VerifyKey,
    epoch: int = 1,
    issued_at: datetime,
    expires_at: datetime,
) -> Certificate:
    """Enrol a box (its own key pairs, not any town's) as belonging to `town`: signed by
    the root itself, or by an enrolment issuer (then chained, and cut to its validity)."""
    return _issue(root, "box", box_id, town, sealing_key, verify_key, epoch, issued_at, expires_at)


def _check_signed(
    cert: Certificate, kind: CertificateKind, signer: VerifyKey, now: datetime
) -> None:
    if cert.kind != kind:
        raise CertificateError(f"expected a {kind} certificate, got {cert.kind!r}")
    try:
        signer.verify(cert.signed_bytes(), cert.signature)
    except nacl.exceptions.BadSignatureError as exc:
        raise CertificateError(f"bad signature on {kind} certificate {cert.subject!r}") from exc
    moment = _utc_seconds(now)
    if not _utc_seconds(cert.issued_at) <= moment < _utc_seconds(cert.expires_at):
        raise CertificateError(
            f"{kind} certificate {cert.subject!r} valid {cert.issued_at.isoformat()} to "
            f"{cert.expires_at.isoformat()}, not at {now.isoformat()}"
        )


def _verify_certificate(
    cert: Certificate, kind: CertificateKind, root_key: VerifyKey, now: datetime
) -> None:
    if cert.issuer == key_id(root_key):
        if cert.chain:
            raise CertificateError("a root-signed certificate carries no chain")
        _check_signed(cert, kind, root_key, now)
        return
    # Only a box certificate may be signed by a delegated enrolment issuer.
    if kind != "box" or cert.kind != "box" or len(cert.chain) != 1:
        raise CertificateError("certificate issued by another root")
    link = cert.chain[0]
    if link.issuer != key_id(root_key) or link.chain:
        raise CertificateError("certificate issued by another root")
    if key_id(link.verify_key) != cert.issuer:
        raise CertificateError("the chain does not hold the certificate's issuer")
    try:
        _check_signed(link, "issuer", root_key, now)
    except CertificateError as exc:
        raise CertificateError(f"enrolment issuer: {exc}") from exc
    _check_signed(cert, kind, link.verify_key, now)


def verify_town_certificate(cert: Certificate, root_key: VerifyKey, *, now: datetime) -> TownPublic:
    """The town's certified public keys, or CertificateError. `now` comes from the box's
    guarded clock (never simply the system time after a power loss)."""
    _verify_certificate(cert, "town", root_key, now)
    if cert.subject != cert.town:
        raise CertificateError("town certificate whose subject is not its town")
    return TownPublic(cert.town, cert.epoch, cert.sealing_key, cert.verify_key)


def verify_box_certificate(cert: Certificate, root_key: VerifyKey, *, now: datetime) -> Certificate:
    """A box certificate signed by the root, or by an enrolment issuer the root certified
    (carried in `cert.chain`); both valid at `now`. CertificateError otherwise."""
    _verify_certificate(cert, "box", root_key, now)
    return cert


def verify_issuer_certificate(
    cert: Certificate, root_key: VerifyKey, *, now: datetime
) -> Certificate:
    _verify_certificate(cert, "issuer", root_key, now)
    return cert


# ---------------------------------------------------------------------------- clerk certificates


@dataclass(frozen=True, slots=True)
class ClerkCertificate:
    """A town's signed statement of one clerk's keys, roles, emergency-roster membership
    and deputy rank (0 = not a deputy), under the town's signing key of `epoch`."""

    town: str
    login_id: str
    sealing_key: PublicKey
    verify_key: VerifyKey
    roles: tuple[Role, ...]
    on_roster: bool
    deputy_rank: int
    epoch: int
    issued_at: datetime
    signature: bytes

    @property
    def key_id(self) -> str:
        return key_id(self.verify_key)

    @property
    def public(self) -> ClerkPublic:
        return ClerkPublic(self.town, self.login_id, self.sealing_key, self.verify_key)

    def _body(self) -> dict[str, Any]:
        return {
            "town": self.town,
            "login_id": self.login_id,
            "x25519": bytes(self.sealing_key).hex(),
            "ed25519": bytes(self.verify_key).hex(),
            "roles": [str(r) for r in self.roles],
            "on_roster": self.on_roster,
            "deputy_rank": self.deputy_rank,
            "epoch": self.epoch,
            "issued_at": _utc_seconds(self.issued_at),
        }

    def signed_bytes(self) -> bytes:
        return _CLERK_CERT_CONTEXT + _canonical(self._body())

    def to_json(self) -> dict[str, Any]:
        return dict(self._body(), signature=self.signature.hex())

    def to_bytes(self) -> bytes:
        return _canonical(self.to_json())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClerkCertificate:
        roles = data.get("roles")
        if not isinstance(roles, list):
            raise KeyFormatError("field 'roles' must be a list")
        try:
            parsed_roles = tuple(Role(r) for r in roles)
        except ValueError as exc:
            raise KeyFormatError("unknown role in clerk certificate") from exc
        return cls(
            town=_check_name(data.get("town"), "town"),
            login_id=_check_name(data.get("login_id"), "login id"),
            sealing_key=PublicKey(_hex(data, "x25519", 32)),
            verify_key=VerifyKey(_hex(data, "ed25519", 32)),
            roles=parsed_roles,
            on_roster=_field(data, "on_roster", bool),
            deputy_rank=_field(data, "deputy_rank", int),
            epoch=_check_epoch(data.get("epoch")),
            issued_at=_from_seconds(_field(data, "issued_at", int)),
            signature=_hex(data, "signature", 64),
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> ClerkCertificate:
        return cls.from_json(_load_json(raw, "clerk certificate"))


def issue_clerk_certificate(
    town_keys: TownKeys,
    clerk: ClerkPublic,
    *,
    roles: Iterable[Role],
    on_roster: bool,
    deputy_rank: int = 0,
    issued_at: datetime,
) -> ClerkCertificate:
    if clerk.town != town_keys.town:
        raise CertificateError(f"town {town_keys.town!r} cannot certify a clerk of {clerk.town!r}")
    if deputy_rank < 0:
        raise ValueError("deputy_rank must be 0 (not a deputy) or a positive rank")
    unsigned = ClerkCertificate(
        town=town_keys.town,
        login_id=clerk.login_id,
        sealing_key=clerk.sealing_key,
        verify_key=clerk.verify_key,
        roles=tuple(Role(r) for r in roles),
        on_roster=bool(on_roster),
        deputy_rank=deputy_rank,
        epoch=town_keys.epoch,
        issued_at=_from_seconds(_utc_seconds(issued_at)),
        signature=b"",
    )
    return replace(
        unsigned, signature=town_keys.signing_key.sign(unsigned.signed_bytes()).signature
    )


def verify_clerk_certificate(cert: ClerkCertificate, town_public: TownPublic) -> ClerkCertificate:
    """Check a clerk certificate against the town's public keys of the epoch it names."""
    if cert.town != town_public.town or cert.epoch != town_public.epoch:
        raise CertificateError(
            f"clerk certificate of {cert.town!r} epoch {cert.epoch} checked against "
            f"{town_public.town!r} epoch {town_public.epoch}"
        )
    try:
        town_public.verify_key.verify(cert.signed_bytes(), cert.signature)
    except nacl.exceptions.BadSignatureError as exc:
        raise CertificateError(f"bad town signature on clerk {cert.login_id!r}") from exc
    return cert
