"""Keys and identities (shared/crypto.py): town keys, certificates, clerk keys under a
password, town keys sealed to clerks, key rings and rotation.

argon2id runs with INTERACTIVE limits here for speed, except in the one test that checks
the production default is at least MODERATE."""

from __future__ import annotations

import inspect
import json
import unicodedata
from datetime import UTC, datetime, timedelta

import pytest
from nacl.signing import SigningKey

from shared.crypto import (
    DEFAULT_KDF_LIMITS,
    INTERACTIVE,
    MODERATE,
    Certificate,
    CertificateError,
    ClerkCertificate,
    ClerkKeys,
    CryptoError,
    FederationRoot,
    KdfLimits,
    KeyFormatError,
    KeyRing,
    TownKeys,
    TownPublic,
    WeakPassword,
    WrongPassword,
    WrongRecipient,
    issue_box_certificate,
    issue_clerk_certificate,
    issue_town_certificate,
    open_town_keys,
    rewrap_clerk_keys,
    rotate,
    seal_town_keys,
    unwrap_clerk_keys,
    verify_box_certificate,
    verify_clerk_certificate,
    verify_town_certificate,
    wrap_clerk_keys,
    wrapped_info,
)
from shared.model import Role

PASSWORD = "kumo to umi no aida"  # zxcvbn score 4
NOW = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
YEAR = timedelta(days=365)


def wrap_fast(keys: ClerkKeys, password: str = PASSWORD) -> bytes:
    return wrap_clerk_keys(keys, password, kdf_limits=INTERACTIVE)


# ---------------------------------------------------------------------------- town keys


def test_town_public_round_trips_through_bytes_and_json() -> None:
    keys = TownKeys.generate("15307", epoch=3)
    public = keys.public
    assert TownPublic.from_bytes(public.to_bytes()) == public
    assert TownPublic.from_json(json.loads(json.dumps(public.to_json()))) == public
    assert public.town == "15307" and public.epoch == 3
    assert public.sealing_key == keys.sealing_key.public_key
    assert public.verify_key == keys.signing_key.verify_key


@pytest.mark.parametrize(
    "raw",
    [b"", b"[]", b"not json", b'{"town":"15307","epoch":1,"x25519":"00","ed25519":"00"}'],
)
def test_malformed_town_public_is_refused(raw: bytes) -> None:
    with pytest.raises(KeyFormatError):
        TownPublic.from_bytes(raw)


def test_rotate_gives_fresh_keys_for_the_next_epoch() -> None:
    old = TownKeys.generate("15405")
    new = rotate(old)
    assert (new.town, new.epoch) == ("15405", 2)
    assert bytes(new.sealing_key) != bytes(old.sealing_key)
    assert bytes(new.signing_key) != bytes(old.signing_key)


def test_key_ring_keeps_old_epochs_and_refuses_other_towns() -> None:
    first = TownKeys.generate("15581")
    second = rotate(first)
    ring = KeyRing("15581", [second, first])
    assert ring.epochs == (1, 2)
    assert ring.current is second
    assert ring.get(1) is first and ring.get(3) is None
    assert ring.public == second.public
    with pytest.raises(CryptoError):
        ring.add(TownKeys.generate("15307"))
    with pytest.raises(CryptoError):
        _ = KeyRing("15581").current


# ---------------------------------------------------------------------------- repr


def _secret_fragments(*secrets: bytes) -> list[str]:
    out = []
    for secret in secrets:
        out += [secret.hex(), secret.hex()[:16], repr(secret), repr(secret)[:20]]
    return out


def test_no_private_key_material_in_repr_or_str() -> None:
    town = TownKeys.generate("15307")
    clerk = ClerkKeys.generate("15307", "sato")
    root = FederationRoot.generate()
    ring = KeyRing("15307", [town])
    secrets = [
        bytes(town.sealing_key),
        bytes(town.signing_key),
        bytes(clerk.sealing_key),
        bytes(clerk.signing_key),
        bytes(root._signing),
    ]
    for obj in (town, clerk, root, ring):
        for text in (repr(obj), str(obj), f"{obj}", repr([obj])):
            for fragment in _secret_fragments(*secrets):
                assert fragment not in text, type(obj).__name__
    assert "15307" in repr(town) and "epoch=1" in repr(town)


# ---------------------------------------------------------------------------- certificates


def test_town_certificate_issue_verify_and_serialise() -> None:
    root = FederationRoot.generate()
    public = TownKeys.generate("15307").public
    cert = issue_town_certificate(root, public, issued_at=NOW, expires_at=NOW + YEAR)
    assert verify_town_certificate(cert, root.verify_key, now=NOW + timedelta(days=1)) == public
    again = Certificate.from_bytes(cert.to_bytes())
    assert again == cert
    assert verify_town_certificate(again, root.verify_key, now=NOW) == public


def test_town_certificate_with_swapped_keys_fails() -> None:
    root = FederationRoot.generate()
    cert = issue_town_certificate(
        root, TownKeys.generate("15307").public, issued_at=NOW, expires_at=NOW + YEAR
    )
    data = cert.to_json()
    data["x25519"] = bytes(TownKeys.generate("15307").sealing_key.public_key).hex()
    with pytest.raises(CertificateError):
        verify_town_certificate(Certificate.from_json(data), root.verify_key, now=NOW)


def test_certificate_from_another_root_or_outside_validity_fails() -> None:
    root = FederationRoot.generate()
    cert = issue_town_certificate(
        root, TownKeys.generate("15307").public, issued_at=NOW, expires_at=NOW + YEAR
    )
    with pytest.raises(CertificateError):
        verify_town_certificate(cert, FederationRoot.generate().verify_key, now=NOW)
    with pytest.raises(CertificateError):
        verify_town_certificate(cert, root.verify_key, now=NOW - timedelta(seconds=1))
    with pytest.raises(CertificateError):
        verify_town_certificate(cert, root.verify_key, now=NOW + YEAR)


def test_box_certificate_is_not_a_town_certificate() -> None:
    root = FederationRoot.generate()
    box = TownKeys.generate("box")  # any X25519 + Ed25519 pair
    cert = issue_box_certificate(
        root,
        "box-15307-a",
        town="15307",
        sealing_key=box.sealing_key.public_key,
        verify_key=box.signing_key.verify_key,
        issued_at=NOW,
        expires_at=NOW + YEAR,
    )
    assert verify_box_certificate(cert, root.verify_key, now=NOW).subject == "box-15307-a"
    with pytest.raises(CertificateError):
        verify_town_certificate(cert, root.verify_key, now=NOW)
    forged = Certificate.from_json(dict(cert.to_json(), kind="town", subject="15307"))
    with pytest.raises(CertificateError):
        verify_town_certificate(forged, root.verify_key, now=NOW)


def test_clerk_certificate_signed_by_the_town() -> None:
    town = TownKeys.generate("15307")
    clerk = ClerkKeys.generate("15307", "sato")
    cert = issue_clerk_certificate(
        town,
        clerk.public,
        roles=[Role.CLERK, Role.SUPERVISOR],
        on_roster=True,
        deputy_rank=2,
        issued_at=NOW,
    )
    assert verify_clerk_certificate(cert, town.public) == cert
    assert ClerkCertificate.from_bytes(cert.to_bytes()) == cert
    assert cert.public == clerk.public
    assert cert.key_id == clerk.public.key_id


@pytest.mark.parametrize(
    "change",
    [
        {"roles": ["clerk", "admin"]},
        {"on_roster": False},
        {"deputy_rank": 1},
        {"login_id": "suzuki"},
    ],
)
def test_altered_clerk_certificate_fails(change: dict[str, object]) -> None:
    town = TownKeys.generate("15307")
    cert = issue_clerk_certificate(
        town,
        ClerkKeys.generate("15307", "sato").public,
        roles=[Role.CLERK],
        on_roster=True,
        deputy_rank=0,
        issued_at=NOW,
    )
    altered = ClerkCertificate.from_json(dict(cert.to_json(), **change))
    with pytest.raises(CertificateError):
        verify_clerk_certificate(altered, town.public)


def test_clerk_certificate_of_another_town_or_epoch_fails() -> None:
    town = TownKeys.generate("15307")
    cert = issue_clerk_certificate(
        town,
        ClerkKeys.generate("15307", "sato").public,
        roles=[Role.CLERK],
        on_roster=False,
        issued_at=NOW,
    )
    with pytest.raises(CertificateError):
        verify_clerk_certificate(cert, rotate(town).public)
    impostor = TownKeys("15307", 1, town.sealing_key, SigningKey.generate())
    with pytest.raises(CertificateError):
        verify_clerk_certificate(cert, impostor.public)
    with pytest.raises(CertificateError):
        issue_clerk_certificate(
            TownKeys.generate("15405"),
            ClerkKeys.generate("15307", "sato").public,
            roles=[Role.CLERK],
            on_roster=False,
            issued_at=NOW,
        )


# ---------------------------------------------------------------------------- clerk keys


def test_wrap_unwrap_round_trip() -> None:
    clerk = ClerkKeys.generate("15307", "sato")
    blob = wrap_fast(clerk)
    opened = unwrap_clerk_keys(blob, PASSWORD)
    assert bytes(opened.sealing_key) == bytes(clerk.sealing_key)
    assert bytes(opened.signing_key) == bytes(clerk.signing_key)
    assert (opened.town, opened.login_id) == ("15307", "sato")
    info = wrapped_info(blob)
    assert info.public == clerk.public and info.kdf_limits == INTERACTIVE
    assert bytes(clerk.sealing_key).hex() not in blob.decode()


def test_wrong_password_is_refused_with_a_japanese_message() -> None:
    blob = wrap_fast(ClerkKeys.generate("15307", "sato"))
    with pytest.raises(WrongPassword) as caught:
        unwrap_clerk_keys(blob, PASSWORD + "!")
    assert "パスワード" in str(caught.value)


def test_salt_is_fresh_for_every_wrap() -> None:
    clerk = ClerkKeys.generate("15307", "sato")
    first, second = json.loads(wrap_fast(clerk)), json.loads(wrap_fast(clerk))
    assert first["salt"] != second["salt"]
    assert first["ciphertext"] != second["ciphertext"]


def test_password_is_nfc_normalised() -> None:
    password = "ガーデン の みずうみ と そら"
    clerk = ClerkKeys.generate("15307", "sato")
    blob = wrap_fast(clerk, unicodedata.normalize("NFD", password))
    assert unwrap_clerk_keys(blob, unicodedata.normalize("NFC", password)).login_id == "sato"


@pytest.mark.parametrize(
    "change",
    [{"login_id": "suzuki"}, {"town": "15405"}, {"opslimit": 1}, {"memlimit": 8192 * 2}],
)
def test_altered_wrapped_record_does_not_open(change: dict[str, object]) -> None:
    blob = wrap_fast(ClerkKeys.generate("15307", "sato"))
    record = dict(json.loads(blob), **change)
    with pytest.raises(WrongPassword):
        unwrap_clerk_keys(json.dumps(record).encode(), PASSWORD)


@pytest.mark.parametrize(
    "change", [{"memlimit": 2**40}, {"opslimit": 10**6}, {"kdf": "scrypt"}, {"salt": "00"}]
)
def test_wrapped_record_with_absurd_parameters_is_refused_before_hashing(
    change: dict[str, object],
) -> None:
    record = dict(json.loads(wrap_fast(ClerkKeys.generate("15307", "sato"))), **change)
    with pytest.raises(KeyFormatError):
        unwrap_clerk_keys(json.dumps(record).encode(), PASSWORD)


@pytest.mark.parametrize(
    ("password", "inputs"),
    [
        ("password1234", ()),
        ("qwertyuiop", ()),
        ("aaaaaaaaaaaa", ()),
        ("seirou15307", ("seirou",)),  # strong alone, weak given the clerk's own details
        ("Sh0rt!x", ()),  # under 10 characters
        ("", ()),
    ],
)
def test_weak_passwords_are_refused_with_advice_in_japanese(
    password: str, inputs: tuple[str, ...]
) -> None:
    with pytest.raises(WeakPassword) as caught:
        wrap_clerk_keys(
            ClerkKeys.generate("15307", "sato"),
            password,
            kdf_limits=INTERACTIVE,
            user_inputs=inputs,
        )
    message = str(caught.value)
    assert "文字以上" in message and "してください" in message
    assert password == "" or password not in message


def test_long_passwords_are_accepted() -> None:
    password = "umi to yama to kawa no aida ni aru chiisana machi no yakuba de " * 2
    clerk = ClerkKeys.generate("15307", "sato")
    assert unwrap_clerk_keys(wrap_fast(clerk, password), password).login_id == "sato"


def test_default_kdf_limits_are_at_least_moderate() -> None:
    default = inspect.signature(wrap_clerk_keys).parameters["kdf_limits"].default
    assert default is DEFAULT_KDF_LIMITS
    assert DEFAULT_KDF_LIMITS.at_least(MODERATE)
    blob = wrap_clerk_keys(ClerkKeys.generate("15307", "sato"), PASSWORD)  # ≈0.75 s
    assert wrapped_info(blob).kdf_limits.at_least(MODERATE)
    assert not INTERACTIVE.at_least(MODERATE)  # the check above can fail


def test_rewrap_raises_the_cost_and_keeps_the_keys() -> None:
    clerk = ClerkKeys.generate("15307", "sato")
    cheap = wrap_clerk_keys(clerk, PASSWORD, kdf_limits=KdfLimits(1, 8192 * 4))
    dearer = rewrap_clerk_keys(cheap, PASSWORD, kdf_limits=INTERACTIVE)
    assert wrapped_info(dearer).kdf_limits == INTERACTIVE
    assert bytes(unwrap_clerk_keys(dearer, PASSWORD).signing_key) == bytes(clerk.signing_key)


# ---------------------------------------------------------------------------- sealed town keys


def test_town_keys_sealed_to_a_clerk_open_with_that_clerks_keys() -> None:
    town = TownKeys.generate("15307", epoch=4)
    clerk = ClerkKeys.generate("15307", "sato")
    opened = open_town_keys(seal_town_keys(town, clerk.public), clerk, expect=town.public)
    assert opened.public == town.public
    assert bytes(opened.sealing_key) == bytes(town.sealing_key)
    assert bytes(opened.signing_key) == bytes(town.signing_key)


def test_a_clerk_opens_only_their_own_town() -> None:
    town_a, town_b = TownKeys.generate("15307"), TownKeys.generate("15405")
    clerk_a, clerk_b = ClerkKeys.generate("15307", "sato"), ClerkKeys.generate("15405", "ito")
    sealed_b = seal_town_keys(town_b, clerk_b.public)
    with pytest.raises(WrongRecipient):
        open_town_keys(sealed_b, clerk_a)
    # even town B's keys mistakenly sealed to A's clerk are refused
    with pytest.raises(WrongRecipient):
        open_town_keys(seal_town_keys(town_b, clerk_a.public), clerk_a)
    assert open_town_keys(sealed_b, clerk_b).town == "15405"
    assert open_town_keys(seal_town_keys(town_a, clerk_a.public), clerk_a).town == "15307"


def test_substituted_town_keys_are_refused_when_the_certified_keys_are_expected() -> None:
    real = TownKeys.generate("15307")
    clerk = ClerkKeys.generate("15307", "sato")
    planted = seal_town_keys(TownKeys.generate("15307"), clerk.public)  # anyone can seal
    with pytest.raises(WrongRecipient):
        open_town_keys(planted, clerk, expect=real.public)
    with pytest.raises(WrongRecipient):
        KeyRing.open("15307", [planted], clerk, expect={1: real.public})


def test_adding_a_clerk_resetting_a_password_and_rotating_need_nobody_elses_password() -> None:
    town = TownKeys.generate("15307")
    admin = ClerkKeys.generate("15307", "admin")
    admin_record = wrap_fast(admin)
    sealed = {"admin": [seal_town_keys(town, admin.public)]}

    # The admin logs in: password -> clerk keys -> town key ring.
    ring = KeyRing.open("15307", sealed["admin"], unwrap_clerk_keys(admin_record, PASSWORD))

    # Adding a clerk: the new clerk chooses a password; the admin seals the ring to them.
    newcomer = ClerkKeys.generate("15307", "sato")
    newcomer_record = wrap_fast(newcomer, "hoshi ga kirei na yoru")
    sealed["sato"] = [seal_town_keys(k, newcomer.public) for k in ring]

    # Password reset: fresh clerk keys under a new password, town keys resealed to them.
    reset = ClerkKeys.generate("15307", "sato")
    newcomer_record = wrap_fast(reset, "atarashii aikotoba desu")
    sealed["sato"] = [seal_town_keys(k, reset.public) for k in ring]

    # Rotation: a new epoch sealed to every clerk's public key.
    new_epoch = rotate(ring.current)
    ring.add(new_epoch)
    for clerk_public in (admin.public, reset.public):
        sealed[clerk_public.login_id].append(seal_town_keys(new_epoch, clerk_public))

    sato = unwrap_clerk_keys(newcomer_record, "atarashii aikotoba desu")
    sato_ring = KeyRing.open("15307", sealed["sato"], sato)
    assert sato_ring.epochs == (1, 2)
    assert sato_ring.public == new_epoch.public
    with pytest.raises(WrongRecipient):  # the old keys are useless after the reset
        KeyRing.open("15307", sealed["sato"], newcomer)
