"""The vault and the crypto layer under it: published known-answer vectors, round trips, tampering, AAD
binding, erasure (including what is left on disk), KEK rotation and the KEK settings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offchain import crypto
from offchain.errors import (
    CustomerErased,
    CustomerKeyExists,
    DecryptionFailed,
    KekError,
    UnknownCustomer,
    VaultError,
)
from offchain.keystore import KeyStore
from offchain.vault import KekRing, Vault, dek_aad, field_aad, new_member_id

VECTORS = Path(__file__).parent / "vectors"
KEK_ACME = bytes.fromhex("6d" * 32)
KEK_BETA = bytes(range(100, 132))
fixture_settings = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


def ring(**keks: bytes) -> KekRing:
    return KekRing(environ={f"LEDGERCRM_KEK_{p.upper()}": k.hex() for p, k in keks.items()})


@pytest.fixture
def keystore(tmp_path: Path) -> Iterator[KeyStore]:
    store = KeyStore(tmp_path / "keys.sqlite")
    yield store
    store.close()


@pytest.fixture
def vault(keystore: KeyStore) -> Vault:
    return Vault(keystore, ring(acme=KEK_ACME, beta=KEK_BETA))


@pytest.fixture
def customer(vault: Vault) -> bytes:
    member = new_member_id()
    vault.create_customer_key("acme", member)
    return member


def raw_dek(keystore: KeyStore, kek: bytes, partner: str, member: bytes) -> bytes:
    """Test-only path to a customer's DEK: unwrap the stored key with the KEK."""
    stored = keystore.get(partner, member)
    assert stored is not None
    return crypto.unwrap(kek, stored[1], dek_aad(partner, member))


# -- published known-answer vectors --------------------------------------------------------------------


GCM = load("aes_256_gcm.json")["vectors"]


@pytest.mark.parametrize("v", GCM, ids=[v["name"] for v in GCM])
class TestAesGcmVectors:
    def test_open_sealed_opens_the_published_ciphertext(self, v: dict[str, str]):
        blob = crypto.VERSION + bytes.fromhex(v["iv"] + v["ciphertext"] + v["tag"])
        assert crypto.open_sealed(bytes.fromhex(v["key"]), blob, bytes.fromhex(v["aad"])) == bytes.fromhex(
            v["plaintext"]
        )

    def test_seal_produces_the_published_ciphertext(self, v: dict[str, str], monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setattr(crypto, "_nonce", lambda: bytes.fromhex(v["iv"]))
        blob = crypto.seal(bytes.fromhex(v["key"]), bytes.fromhex(v["plaintext"]), bytes.fromhex(v["aad"]))
        assert blob == crypto.VERSION + bytes.fromhex(v["iv"] + v["ciphertext"] + v["tag"])

    def test_every_altered_byte_of_the_published_ciphertext_fails(self, v: dict[str, str]):
        key, aad = bytes.fromhex(v["key"]), bytes.fromhex(v["aad"])
        blob = crypto.VERSION + bytes.fromhex(v["iv"] + v["ciphertext"] + v["tag"])
        for i in range(len(blob)):
            altered = bytearray(blob)
            altered[i] ^= 0x01
            with pytest.raises(DecryptionFailed):
                crypto.open_sealed(key, bytes(altered), aad)


@pytest.mark.parametrize("v", load("hkdf_sha256.json")["vectors"], ids=lambda v: v["name"])
def test_hkdf_rfc5869(v: dict[str, Any]):
    okm = crypto.hkdf(
        bytes.fromhex(v["ikm"]), bytes.fromhex(v["info"]), v["length"], salt=bytes.fromhex(v["salt"])
    )
    assert okm.hex() == v["okm"]


@pytest.mark.parametrize("v", load("hmac_sha256.json")["vectors"], ids=lambda v: v["name"])
def test_hmac_rfc4231(v: dict[str, str]):
    assert crypto.hmac_sha256(bytes.fromhex(v["key"]), bytes.fromhex(v["data"])).hex() == v["mac"]


# -- crypto layer ----------------------------------------------------------------------------------------


@given(
    key=st.binary(min_size=32, max_size=32), plaintext=st.binary(max_size=2048), aad=st.binary(max_size=64)
)
def test_seal_round_trips_and_is_standard_aes_gcm(key: bytes, plaintext: bytes, aad: bytes):
    blob = crypto.seal(key, plaintext, aad)
    assert len(blob) == len(plaintext) + crypto.OVERHEAD
    assert crypto.open_sealed(key, blob, aad) == plaintext
    # Cross-check against the library directly: the blob is version || nonce || AES-GCM output.
    assert AESGCM(key).decrypt(blob[1:13], blob[13:], aad) == plaintext


def test_seal_uses_a_fresh_nonce_every_time():
    key = crypto.new_key()
    blobs = {crypto.seal(key, b"same", b"same") for _ in range(50)}
    assert len(blobs) == 50


@given(data=st.data())
def test_any_truncation_fails(data: st.DataObject):
    key = crypto.new_key()
    blob = crypto.seal(key, data.draw(st.binary(max_size=64)), b"aad")
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(DecryptionFailed):
        crypto.open_sealed(key, blob[:cut], b"aad")


def test_unknown_version_fails():
    key = crypto.new_key()
    blob = crypto.seal(key, b"x", b"")
    with pytest.raises(DecryptionFailed):
        crypto.open_sealed(key, b"\x02" + blob[1:], b"")


def test_wrap_binds_the_aad_and_the_kek():
    kek, dek = crypto.new_key(), crypto.new_key()
    wrapped = crypto.wrap(kek, dek, b"ledgercrm/dek/v1|acme|00")
    assert crypto.unwrap(kek, wrapped, b"ledgercrm/dek/v1|acme|00") == dek
    with pytest.raises(DecryptionFailed):
        crypto.unwrap(kek, wrapped, b"ledgercrm/dek/v1|acme|01")
    with pytest.raises(DecryptionFailed):
        crypto.unwrap(crypto.new_key(), wrapped, b"ledgercrm/dek/v1|acme|00")


def test_unwrap_refuses_an_authentic_blob_that_is_not_a_key():
    kek = crypto.new_key()
    with pytest.raises(DecryptionFailed):
        crypto.unwrap(kek, crypto.seal(kek, b"sixteen byte msg", b"a"), b"a")


def test_keys_of_the_wrong_size_are_programming_errors():
    with pytest.raises(ValueError):
        crypto.seal(b"k" * 16, b"", b"")
    with pytest.raises(ValueError):
        crypto.wrap(crypto.new_key(), b"short dek", b"")


def test_frozen_v1_formats(keystore: KeyStore):
    """Blobs and commitments written by earlier versions keep opening and matching (see the JSON)."""
    v = load("vault_v1.json")
    kek, dek, member = bytes.fromhex(v["kek"]), bytes.fromhex(v["dek"]), bytes.fromhex(v["member"])
    assert dek_aad(v["partner"], member) == v["dek_aad"].encode()
    assert field_aad(v["partner"], member, v["field"]) == v["field_aad"].encode()
    assert crypto.unwrap(kek, bytes.fromhex(v["wrapped"]), v["dek_aad"].encode()) == dek

    keystore.put(v["partner"], member, "kek-frozen", bytes.fromhex(v["wrapped"]))
    keks = KekRing(development=False)
    keks.install(v["partner"], "kek-frozen", kek)
    vault = Vault(keystore, keks)
    assert vault.decrypt(v["partner"], member, v["field"], bytes.fromhex(v["ciphertext"])) == bytes.fromhex(
        v["plaintext"]
    )
    assert vault.commitment_key(v["partner"], member).hex() == v["commitment_key"]
    assert vault.commit(v["partner"], member, bytes.fromhex(v["commitment_data"])).hex() == v["commitment"]


# -- vault: round trips and binding ------------------------------------------------------------------


@fixture_settings
@given(plaintext=st.binary(max_size=4096), field=st.text(min_size=1, max_size=40))
def test_round_trip(vault: Vault, customer: bytes, plaintext: bytes, field: str):
    blob = vault.encrypt("acme", customer, field, plaintext)
    assert vault.decrypt("acme", customer, field, blob) == plaintext


@fixture_settings
@given(data=st.data())
def test_tampering_with_any_byte_fails(vault: Vault, customer: bytes, data: st.DataObject):
    blob = vault.encrypt("acme", customer, "email", data.draw(st.binary(max_size=256)))
    index = data.draw(st.integers(0, len(blob) - 1))
    mask = data.draw(st.integers(1, 255))
    altered = bytearray(blob)
    altered[index] ^= mask
    with pytest.raises(DecryptionFailed):
        vault.decrypt("acme", customer, "email", bytes(altered))


def test_a_ciphertext_only_opens_where_it_was_written(vault: Vault, customer: bytes):
    other = new_member_id()
    vault.create_customer_key("acme", other)
    vault.create_customer_key("beta", customer)  # the same member id at another partner
    blob = vault.encrypt("acme", customer, "email", b"alice@example.com")
    for partner, member, field in [
        ("acme", customer, "phone"),  # same key, other field: only the AAD differs
        ("acme", customer, "email "),
        ("acme", other, "email"),
        ("beta", customer, "email"),
    ]:
        with pytest.raises(DecryptionFailed):
            vault.decrypt(partner, member, field, blob)
    assert vault.decrypt("acme", customer, "email", blob) == b"alice@example.com"


def test_the_field_aad_alone_rejects_a_moved_ciphertext(keystore: KeyStore, vault: Vault, customer: bytes):
    # Same DEK, AAD of another customer: proves the binding does not rest on the keys being different.
    dek = raw_dek(keystore, KEK_ACME, "acme", customer)
    blob = crypto.seal(dek, b"x", field_aad("acme", new_member_id(), "email"))
    with pytest.raises(DecryptionFailed):
        vault.decrypt("acme", customer, "email", blob)


def test_a_wrapped_key_copied_onto_another_customer_does_not_unwrap(keystore: KeyStore):
    victim, thief = new_member_id(), new_member_id()
    vault = Vault(keystore, ring(acme=KEK_ACME), cache_size=0)
    vault.create_customer_key("acme", victim)
    vault.create_customer_key("acme", thief)
    kek_id, wrapped = keystore.get("acme", victim) or ("", b"")
    keystore.replace_wrapped("acme", thief, kek_id, wrapped)
    with pytest.raises(DecryptionFailed):
        vault.encrypt("acme", thief, "email", b"x")


def test_every_failure_is_the_same_opaque_error(keystore: KeyStore, vault: Vault, customer: bytes):
    blob = vault.encrypt("acme", customer, "email", b"secret")
    wrong_key = crypto.seal(crypto.new_key(), b"secret", field_aad("acme", customer, "email"))
    attempts: dict[str, Callable[[], object]] = {
        "wrong key": lambda: vault.decrypt("acme", customer, "email", wrong_key),
        "wrong field": lambda: vault.decrypt("acme", customer, "phone", blob),
        "flipped tag": lambda: vault.decrypt("acme", customer, "email", blob[:-1] + bytes([blob[-1] ^ 1])),
        "truncated": lambda: vault.decrypt("acme", customer, "email", blob[:20]),
        "empty": lambda: vault.decrypt("acme", customer, "email", b""),
        "bad version": lambda: vault.decrypt("acme", customer, "email", b"\x07" + blob[1:]),
        "wrong kek": lambda: crypto.unwrap(KEK_BETA, (keystore.get("acme", customer) or ("", b""))[1], b""),
    }
    errors = []
    for name, attempt in attempts.items():
        with pytest.raises(VaultError) as caught:
            attempt()
        errors.append((name, caught.value))
    assert {type(e) for _n, e in errors} == {DecryptionFailed}
    assert {str(e) for _n, e in errors} == {"decryption failed"}
    # No chained library exception for a caller (or a log line) to read the cause from.
    assert all(e.__cause__ is None and (e.__context__ is None or e.__suppress_context__) for _n, e in errors)


def test_commitments(keystore: KeyStore, vault: Vault, customer: bytes):
    other = new_member_id()
    vault.create_customer_key("acme", other)
    data = b'{"kind":"purchase"}'
    dek = raw_dek(keystore, KEK_ACME, "acme", customer)
    expected_key = crypto.hkdf(dek, b"ledgercrm/commitment/v1")
    assert vault.commitment_key("acme", customer) == expected_key != dek
    assert vault.commit("acme", customer, data) == hmac.new(expected_key, data, hashlib.sha256).digest()
    assert vault.commit("acme", customer, data) == vault.commit("acme", customer, data)
    assert vault.commit("acme", customer, data) != vault.commit("acme", other, data)


def test_customers_and_inputs():
    a, b = new_member_id(), new_member_id()
    assert len(a) == len(b) == 32 and a != b


def test_bad_names_are_refused_before_anything_happens(vault: Vault, customer: bytes):
    for partner in ["", "Acme", "ac|me", "acme retail", "a" * 64, "_acme"]:
        with pytest.raises(ValueError):
            vault.encrypt(partner, customer, "email", b"x")
    with pytest.raises(ValueError):
        vault.encrypt("acme", customer[:31], "email", b"x")
    with pytest.raises(ValueError):
        vault.encrypt("acme", customer, "", b"x")


def test_keys_are_created_once(vault: Vault, customer: bytes):
    blob = vault.encrypt("acme", customer, "email", b"x")
    with pytest.raises(CustomerKeyExists):
        vault.create_customer_key("acme", customer)
    assert vault.decrypt("acme", customer, "email", blob) == b"x"


def test_unknown_customer(vault: Vault):
    with pytest.raises(UnknownCustomer):
        vault.encrypt("acme", new_member_id(), "email", b"x")
    with pytest.raises(UnknownCustomer):
        vault.shred("acme", new_member_id())


# -- erasure -----------------------------------------------------------------------------------------


def test_shred_erases_for_good(vault: Vault, customer: bytes):
    blob = vault.encrypt("acme", customer, "email", b"alice@example.com")
    vault.commit("acme", customer, b"{}")  # the DEK is now cached: shred must evict it
    vault.shred("acme", customer)
    attempts: list[Callable[[], object]] = [
        lambda: vault.decrypt("acme", customer, "email", blob),
        lambda: vault.encrypt("acme", customer, "email", b"again"),
        lambda: vault.commit("acme", customer, b"{}"),
        lambda: vault.commitment_key("acme", customer),
        lambda: vault.create_customer_key("acme", customer),
    ]
    for attempt in attempts:
        with pytest.raises(CustomerErased) as caught:
            attempt()
        assert caught.value.partner == "acme" and caught.value.member_hex == customer.hex()
        assert "alice" not in str(caught.value)
    assert vault.is_erased("acme", customer)
    vault.shred("acme", customer)  # idempotent


def test_shred_spares_everyone_else(keystore: KeyStore, vault: Vault, customer: bytes):
    others = [new_member_id() for _ in range(3)]
    blobs = {}
    for member in others:
        vault.create_customer_key("acme", member)
        blobs[member] = vault.encrypt("acme", member, "name", member.hex().encode())
    vault.create_customer_key("beta", customer)
    beta_blob = vault.encrypt("beta", customer, "name", b"same id, other partner")
    vault.shred("acme", customer)

    fresh = Vault(keystore, ring(acme=KEK_ACME, beta=KEK_BETA))  # no cache: everything is unwrapped again
    for member in others:
        assert fresh.decrypt("acme", member, "name", blobs[member]) == member.hex().encode()
    assert fresh.decrypt("beta", customer, "name", beta_blob) == b"same id, other partner"
    assert not fresh.is_erased("beta", customer)


def test_another_vaults_cache_forgets_a_shredded_key_within_its_ttl(keystore: KeyStore, customer: bytes):
    now = [0.0]
    keks = ring(acme=KEK_ACME)
    shredder = Vault(keystore, keks)
    worker = Vault(keystore, keks, cache_ttl=30.0, monotonic=lambda: now[0])
    blob = worker.encrypt("acme", customer, "email", b"x")
    shredder.shred("acme", customer)
    assert worker.decrypt("acme", customer, "email", blob) == b"x"  # documented: cached for up to the TTL
    now[0] = 30.0
    with pytest.raises(CustomerErased):
        worker.decrypt("acme", customer, "email", blob)


def test_after_shred_no_key_bytes_remain_on_disk(tmp_path: Path):
    db = tmp_path / "keys.sqlite"
    keystore = KeyStore(db)
    vault = Vault(keystore, ring(acme=KEK_ACME))
    members = [new_member_id() for _ in range(12)]
    for member in members:
        vault.create_customer_key("acme", member)
    secrets = {
        m: (raw_dek(keystore, KEK_ACME, "acme", m), (keystore.get("acme", m) or ("", b""))[1])
        for m in members
    }
    shredded, kept = members[::2], members[1::2]

    def on_disk() -> bytes:
        side = [db.with_name(db.name + s) for s in ("-wal", "-journal", "-shm")]
        return b"".join(p.read_bytes() for p in [db, *side] if p.exists())

    assert all(secrets[m][1] in on_disk() for m in members)  # the search finds stored keys
    for member in shredded:
        vault.shred("acme", member)

    contents = on_disk()
    for member in shredded:
        dek, wrapped = secrets[member]
        assert dek not in contents
        assert wrapped not in contents
        assert wrapped[13:29] not in contents  # not even a fragment of the ciphertext
    assert all(secrets[m][1] in contents for m in kept)
    assert all(secrets[m][0] not in contents for m in members)  # raw DEKs never touch the disk
    keystore.close()


# -- KEK rotation --------------------------------------------------------------------------------------


def test_rotation_rewraps_one_partner_and_keeps_all_data(keystore: KeyStore, tmp_path: Path):
    keks = ring(acme=KEK_ACME, beta=KEK_BETA)
    vault = Vault(keystore, keks)
    data: dict[tuple[str, bytes], bytes] = {}
    for partner in ("acme", "beta"):
        for _ in range(4):
            member = new_member_id()
            vault.create_customer_key(partner, member)
            data[(partner, member)] = vault.encrypt(partner, member, "name", member)
    erased = next(m for p, m in data if p == "acme")
    vault.shred("acme", erased)
    acme_before = {r.member: r for r in keystore.list_for_partner("acme")}
    beta_before = keystore.list_for_partner("beta")

    new_kek = crypto.new_key()
    assert vault.rotate_kek("acme", "kek-acme-2", new_kek) == 3

    acme_after = keystore.list_for_partner("acme")
    assert {r.kek_id for r in acme_after} == {"kek-acme-2"}
    assert all(r.wrapped != acme_before[r.member].wrapped and r.rotated_at is not None for r in acme_after)
    assert keystore.list_for_partner("beta") == beta_before
    for record in acme_after:
        aad = dek_aad("acme", record.member)
        with pytest.raises(DecryptionFailed):
            crypto.unwrap(KEK_ACME, record.wrapped, aad)  # the old KEK no longer unwraps anything
        assert crypto.unwrap(new_kek, record.wrapped, aad) == crypto.unwrap(
            KEK_ACME, acme_before[record.member].wrapped, aad
        )  # same DEK, new wrapping

    # This process uses the new KEK and has forgotten the old one.
    assert keks.current("acme") == ("kek-acme-2", new_kek)
    with pytest.raises(KekError):
        keks.lookup("acme", KekRing.fingerprint(KEK_ACME))

    # A restarted process configured with the new KEK (and the id chosen for it) reads everything;
    # nothing comes from a cache.
    env = {
        "LEDGERCRM_KEK_ACME": new_kek.hex(),
        "LEDGERCRM_KEKID_ACME": "kek-acme-2",
        "LEDGERCRM_KEK_BETA": KEK_BETA.hex(),
    }
    restarted = Vault(keystore, KekRing(environ=env))
    for (partner, member), blob in data.items():
        if member == erased:
            with pytest.raises(CustomerErased):
                restarted.decrypt(partner, member, "name", blob)
        else:
            assert restarted.decrypt(partner, member, "name", blob) == member
    # One still configured with the old KEK is told so, rather than failing obscurely.
    stale = Vault(keystore, ring(acme=KEK_ACME))
    with pytest.raises(KekError, match="kek-acme-2"):
        stale.decrypt("acme", acme_after[0].member, "name", b"")

    assert vault.rotate_kek("acme", "kek-acme-2", new_kek) == 0  # a repeat has nothing left to do


def test_rotation_to_a_fingerprint_id_needs_nothing_but_the_new_key(keystore: KeyStore, customer: bytes):
    vault = Vault(keystore, ring(acme=KEK_ACME))
    blob = vault.encrypt("acme", customer, "name", b"x")
    new_kek = crypto.new_key()
    assert vault.rotate_kek("acme", KekRing.fingerprint(new_kek), new_kek) == 1
    assert Vault(keystore, ring(acme=new_kek)).decrypt("acme", customer, "name", blob) == b"x"


def test_rotation_leaves_no_old_wrapping_on_disk(tmp_path: Path):
    db = tmp_path / "keys.sqlite"
    keystore = KeyStore(db)
    vault = Vault(keystore, ring(acme=KEK_ACME))
    for _ in range(5):
        vault.create_customer_key("acme", new_member_id())
    old = [r.wrapped for r in keystore.list_for_partner("acme")]
    vault.rotate_kek("acme", "kek-2", crypto.new_key())
    contents = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("keys.sqlite"))
    assert [w for w in old if w in contents] == []
    keystore.close()


def test_a_failed_rotation_changes_nothing(keystore: KeyStore):
    keks = ring(acme=KEK_ACME)
    vault = Vault(keystore, keks, cache_size=0)
    members = [new_member_id() for _ in range(3)]
    for member in members:
        vault.create_customer_key("acme", member)
    blob = vault.encrypt("acme", members[0], "name", b"kept")
    kek_id, wrapped = keystore.get("acme", members[2]) or ("", b"")
    keystore.replace_wrapped("acme", members[2], kek_id, wrapped[:-1] + bytes([wrapped[-1] ^ 1]))
    before = keystore.list_for_partner("acme")

    with pytest.raises(DecryptionFailed):
        vault.rotate_kek("acme", "kek-2", crypto.new_key())

    assert keystore.list_for_partner("acme") == before
    assert vault.decrypt("acme", members[0], "name", blob) == b"kept"  # the old KEK is still at hand


def test_rotation_refuses_a_clashing_id(vault: Vault, customer: bytes):
    with pytest.raises(KekError):
        vault.rotate_kek("acme", KekRing.fingerprint(KEK_ACME), crypto.new_key())


# -- KEK settings --------------------------------------------------------------------------------------


def test_missing_kek_is_refused_outside_development(keystore: KeyStore):
    vault = Vault(keystore, KekRing(environ={}))
    with pytest.raises(KekError, match="LEDGERCRM_KEK_ACME"):
        vault.create_customer_key("acme", new_member_id())


def test_the_development_kek_is_refused_outside_development(tmp_path: Path):
    dev = KekRing.development_kek("acme")
    (tmp_path / "kek").write_bytes(dev)
    for keks in [
        KekRing(environ={"LEDGERCRM_KEK_ACME": dev.hex()}),
        KekRing(environ={"LEDGERCRM_KEK_ACME": base64.b64encode(dev).decode()}),
        KekRing(environ={}, key_files={"acme": tmp_path / "kek"}),
    ]:
        with pytest.raises(KekError, match="development"):
            keks.current("acme")
    with pytest.raises(KekError, match="development"):
        KekRing(environ={"LEDGERCRM_KEK_ACME": KEK_ACME.hex()}).install("acme", "dev", dev)


def test_development_mode_falls_back_to_the_public_default(keystore: KeyStore):
    keks = KekRing(development=True, environ={})
    kek_id, kek = keks.current("acme")
    assert kek == KekRing.development_kek("acme") and kek_id.startswith("dev-")
    assert KekRing.development_kek("acme") != KekRing.development_kek("beta")
    vault = Vault(keystore, keks)
    member = new_member_id()
    vault.create_customer_key("acme", member)
    assert vault.decrypt("acme", member, "f", vault.encrypt("acme", member, "f", b"x")) == b"x"
    # A configured KEK still wins in development.
    assert (
        KekRing(development=True, environ={"LEDGERCRM_KEK_ACME": KEK_ACME.hex()}).current("acme")[1]
        == KEK_ACME
    )


@pytest.mark.parametrize(
    "encode",
    [
        bytes.hex,
        lambda k: k.hex().upper(),
        lambda k: base64.b64encode(k).decode(),
        lambda k: base64.urlsafe_b64encode(k).decode(),
        lambda k: f"  {k.hex()}\n",
    ],
    ids=["hex", "HEX", "base64", "base64url", "padded"],
)
def test_kek_from_environment(encode: Any):
    kek = bytes(range(200, 232))  # has bytes that differ between base64 and base64url
    kek_id, got = KekRing(environ={"LEDGERCRM_KEK_ACME": encode(kek)}).current("acme")
    assert got == kek and kek_id == KekRing.fingerprint(kek)


@pytest.mark.parametrize(
    "content", [bytes(range(32)), bytes(range(32)).hex().encode() + b"\n"], ids=["raw", "hex"]
)
def test_kek_from_a_file(tmp_path: Path, content: bytes):
    (tmp_path / "acme.kek").write_bytes(content)
    assert KekRing(environ={}, key_files={"acme": tmp_path / "acme.kek"}).current("acme")[1] == bytes(
        range(32)
    )
    env = {"LEDGERCRM_KEKFILE_ACME": str(tmp_path / "acme.kek")}
    assert KekRing(environ=env).current("acme")[1] == bytes(range(32))


@pytest.mark.parametrize(
    "value", ["00" * 31, "zz" * 32, "not a key", base64.b64encode(b"k" * 16).decode(), ""]
)
def test_malformed_keks_are_refused_without_echoing_them(value: str):
    with pytest.raises(KekError) as caught:
        KekRing(environ={"LEDGERCRM_KEK_ACME": value}).current("acme")
    assert value == "" or value not in str(caught.value)


def test_two_sources_for_one_partner_are_ambiguous(tmp_path: Path):
    (tmp_path / "k").write_bytes(KEK_ACME)
    env = {"LEDGERCRM_KEK_ACME": KEK_ACME.hex(), "LEDGERCRM_KEKFILE_ACME": str(tmp_path / "k")}
    with pytest.raises(KekError, match="twice"):
        KekRing(environ=env).current("acme")


def test_a_missing_key_file_is_a_kek_error(tmp_path: Path):
    with pytest.raises(KekError):
        KekRing(environ={"LEDGERCRM_KEKFILE_ACME": str(tmp_path / "nope")}).current("acme")


def test_environment_is_read_when_first_needed(monkeypatch: pytest.MonkeyPatch):
    keks = KekRing()
    monkeypatch.setenv("LEDGERCRM_KEK_ACME", KEK_ACME.hex())
    assert keks.current("acme")[1] == KEK_ACME


# --- many customers at once (imports) -------------------------------------------------------------------


def test_create_customer_keys_gives_each_customer_a_key_of_its_own(vault: Vault, keystore: KeyStore):
    members = [new_member_id() for _ in range(5)]
    vault.create_customer_keys("acme", members)
    deks = {raw_dek(keystore, KEK_ACME, "acme", m) for m in members}
    assert len(deks) == 5  # five different keys, each wrapped for its own member (AAD)
    blobs = [vault.encrypt("acme", m, "pii", b"x") for m in members]
    vault.clear_cache()  # read back through the key store, not the cache that creation filled
    assert [vault.decrypt("acme", m, "pii", b) for m, b in zip(members, blobs, strict=True)] == [b"x"] * 5
    with pytest.raises(DecryptionFailed):  # bound to its member
        vault.decrypt("acme", members[1], "pii", blobs[0])


def test_create_customer_keys_is_all_or_nothing(vault: Vault, keystore: KeyStore, customer: bytes):
    fresh = [new_member_id() for _ in range(3)]
    with pytest.raises(CustomerKeyExists):
        vault.create_customer_keys("acme", [*fresh, customer])
    assert keystore.get_many("acme", fresh) == {}


def test_customer_keys_reads_many_keys_with_one_query_and_never_revives_an_erased_one(
    vault: Vault, keystore: KeyStore, monkeypatch: pytest.MonkeyPatch
):
    members = [new_member_id() for _ in range(4)]
    vault.create_customer_keys("acme", members)
    blobs = {m: vault.encrypt("acme", m, "pii", b"data") for m in members}
    vault.shred("acme", members[0])
    vault.clear_cache()
    reads: list[int] = []
    read_many = keystore.get_many

    def counted(partner: str, wanted: list[bytes]) -> dict[bytes, tuple[str, bytes]]:
        reads.append(len(wanted))
        return read_many(partner, wanted)

    monkeypatch.setattr(keystore, "get_many", counted)
    vault.customer_keys("acme", [*members, new_member_id()])  # unknown and erased members are skipped
    assert reads == [5]

    def no_single_reads(*_args: object) -> None:
        raise AssertionError("customer_keys should have cached this key")

    monkeypatch.setattr(keystore, "get", no_single_reads)
    assert [vault.decrypt("acme", m, "pii", blobs[m]) for m in members[1:]] == [b"data"] * 3
    monkeypatch.undo()
    with pytest.raises(CustomerErased):
        vault.decrypt("acme", members[0], "pii", blobs[members[0]])


def test_cache_capacity_holds_more_keys_for_a_while_then_shrinks_back(
    keystore: KeyStore, monkeypatch: pytest.MonkeyPatch
):
    vault = Vault(keystore, ring(acme=KEK_ACME), cache_size=2)
    members = [new_member_id() for _ in range(4)]
    reads: list[bytes] = []
    read_one = keystore.get

    def counted(partner: str, member: bytes) -> tuple[str, bytes] | None:
        reads.append(member)
        return read_one(partner, member)

    monkeypatch.setattr(keystore, "get", counted)
    with vault.cache_capacity(4):
        vault.create_customer_keys("acme", members)  # each new DEK is cached
        blobs = [vault.encrypt("acme", m, "pii", b"x") for m in members]
        assert reads == []  # all four held, none read back
    # back to two on exit: the two most recently used stay, the others are read again
    assert [vault.decrypt("acme", m, "pii", b) for m, b in zip(members[2:], blobs[2:], strict=True)] == [
        b"x"
    ] * 2
    assert reads == []
    assert vault.decrypt("acme", members[0], "pii", blobs[0]) == b"x"
    assert reads == [members[0]]
    uncached = Vault(keystore, ring(acme=KEK_ACME), cache_size=0)
    with uncached.cache_capacity(4):  # a vault without a cache stays without one
        uncached.encrypt("acme", members[0], "pii", b"x")
        uncached.encrypt("acme", members[0], "pii", b"x")
    assert reads[1:] == [members[0]] * 2
