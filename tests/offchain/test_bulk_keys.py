"""Many customers' keys in one read: `KeyStore.get_many` (on SQLite and PostgreSQL) answers what `get`
answers, and `Vault.bulk_keys` decrypts and commits as the vault does, under the vault's rules: a shred,
in this process or (after the TTL) in another, wins over keys already handed out."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from offchain import keystore as keystore_module
from offchain.errors import CustomerErased, DecryptionFailed
from offchain.keystore import KeyStore
from offchain.vault import KekRing, Vault, new_member_id
from tests.fixtures.databases import scratch_database

KEK_ACME = bytes.fromhex("6d" * 32)
KEK_BETA = bytes(range(100, 132))


def ring() -> KekRing:
    return KekRing(environ={"LEDGERCRM_KEK_ACME": KEK_ACME.hex(), "LEDGERCRM_KEK_BETA": KEK_BETA.hex()})


# -- KeyStore.get_many ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bulk_pg_url(postgres_server: str) -> Iterator[str]:
    with scratch_database(postgres_server, "ledgercrm_bulkkeys") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyStore]:
    location = (
        request.getfixturevalue("bulk_pg_url") if request.param == "postgresql" else tmp_path / "k.sqlite"
    )
    ks = KeyStore(location)
    yield ks
    ks.close()


def test_get_many_answers_what_get_answers(store: KeyStore, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(keystore_module, "IN_LIMIT", 7)  # several queries for 40 members
    partner, other = "p_" + uuid.uuid4().hex[:12], "q_" + uuid.uuid4().hex[:12]
    members = [os.urandom(32) for _ in range(40)]
    for n, member in enumerate(members[:30]):
        store.put(partner, member, f"kek-{n % 3}", os.urandom(61))
    store.put(other, members[35], "kek-x", os.urandom(61))  # another partner's key: not this partner's
    for member in members[:4]:
        store.delete(partner, member)  # erased: left out, like `get` gives None
    asked = members + members[10:20]  # repeats are answered once
    found = store.get_many(partner, iter(asked))
    expected = {m: got for m in members if (got := store.get(partner, m)) is not None}
    assert found == expected and len(found) == 26
    assert all(type(m) is bytes and type(w) is bytes for m, (_, w) in found.items())
    assert store.get_many(partner, []) == {}
    with pytest.raises(ValueError):
        store.get_many(partner, [members[5], b"short"])


# -- Vault.bulk_keys -----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keystore(tmp_path: Path) -> Iterator[KeyStore]:
    ks = KeyStore(tmp_path / "keys.sqlite")
    yield ks
    ks.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def vault(keystore: KeyStore, clock: Clock) -> Vault:
    return Vault(keystore, ring(), cache_ttl=30.0, monotonic=clock)


def customers(vault: Vault, count: int, partner: str = "acme") -> list[bytes]:
    members = [new_member_id() for _ in range(count)]
    for member in members:
        vault.create_customer_key(partner, member)
    return members


def test_bulk_keys_decrypt_and_commit_as_the_vault_does(vault: Vault):
    members = customers(vault, 5)
    erased, unknown = members[4], new_member_id()
    vault.shred("acme", erased)
    blobs = {m: vault.encrypt("acme", m, "interaction", b"doc of " + m) for m in members[:4]}
    keys = vault.bulk_keys("acme", [*members, unknown, members[0]])
    assert set(keys) == set(members[:4])  # erased and unknown members are left out
    for member, blob in blobs.items():
        assert keys[member].fresh
        assert keys[member].decrypt("interaction", blob) == b"doc of " + member
        assert keys[member].commit(b"data") == vault.commit("acme", member, b"data")
        assert keys[member].commit(b"other") == vault.commit("acme", member, b"other")
        with pytest.raises(DecryptionFailed):
            keys[member].decrypt("email", blob)  # bound to its field, as with the vault
        with pytest.raises(DecryptionFailed):
            keys[member].decrypt("interaction", blob[:-1] + bytes([blob[-1] ^ 1]))
    one, two = members[0], members[1]
    with pytest.raises(DecryptionFailed):
        keys[two].decrypt("interaction", blobs[one])  # and to its customer
    assert vault.bulk_keys("beta", members) == {}  # and to its partner


def test_a_shred_wins_over_keys_already_handed_out(vault: Vault):
    shredded, kept = customers(vault, 2)
    blobs = {m: vault.encrypt("acme", m, "interaction", b"x") for m in (shredded, kept)}
    keys = vault.bulk_keys("acme", [shredded, kept])
    vault.shred("acme", shredded)
    assert not keys[shredded].fresh and not keys[kept].fresh
    with pytest.raises(CustomerErased):
        keys[shredded].decrypt("interaction", blobs[shredded])
    with pytest.raises(CustomerErased):
        keys[shredded].commit(b"x")
    # the others' keys still work, read again through the vault
    assert keys[kept].decrypt("interaction", blobs[kept]) == b"x"
    assert keys[kept].commit(b"x") == vault.commit("acme", kept, b"x")


def test_keys_handed_out_last_no_longer_than_the_vaults_cache(vault: Vault, keystore: KeyStore, clock: Clock):
    (member,) = customers(vault, 1)
    blob = vault.encrypt("acme", member, "interaction", b"x")
    keys = vault.bulk_keys("acme", [member])
    keystore.delete("acme", member)  # another process erases the customer
    assert keys[member].decrypt("interaction", blob) == b"x"  # as a cached DEK would, within the TTL
    clock.now = 29.9
    assert keys[member].fresh
    clock.now = 30.0
    assert not keys[member].fresh
    with pytest.raises(CustomerErased):
        keys[member].decrypt("interaction", blob)
    with pytest.raises(CustomerErased):
        keys[member].commit(b"x")


def test_without_a_cache_no_key_is_kept(keystore: KeyStore):
    vault = Vault(keystore, ring(), cache_size=0)
    (member,) = customers(vault, 1)
    blob = vault.encrypt("acme", member, "interaction", b"x")
    keys = vault.bulk_keys("acme", [member])
    assert keys[member].decrypt("interaction", blob) == b"x"  # read from the store on every call
    keystore.delete("acme", member)
    with pytest.raises(CustomerErased):
        keys[member].decrypt("interaction", blob)


def test_bulk_keys_read_the_store_and_leave_the_vaults_cache_alone(vault: Vault, keystore: KeyStore):
    cached, uncached = customers(vault, 2)
    vault.clear_cache()
    vault.encrypt("acme", cached, "interaction", b"x")  # now in the vault's cache
    keystore.delete("acme", cached)  # erased elsewhere: the store knows at once, the cache for a while
    keys = vault.bulk_keys("acme", [cached, uncached])
    assert set(keys) == {uncached}
    blob = keys[uncached].commit(b"x")
    assert blob == vault.commit("acme", uncached, b"x")
    vault.clear_cache()
    vault.bulk_keys("acme", [uncached])  # reads, but does not fill the cache ...
    keystore.delete("acme", uncached)
    with pytest.raises(CustomerErased):  # ... so the vault reads the store again and finds it gone
        vault.decrypt("acme", uncached, "interaction", b"\x01" + bytes(40))


# -- Vault.customer_keys -------------------------------------------------------------------------------


def test_customer_keys_encrypt_decrypt_and_commit_as_the_vault_does(vault: Vault):
    members = customers(vault, 3)
    erased, unknown = members[2], new_member_id()
    vault.shred("acme", erased)
    vault.clear_cache()
    keys = vault.customer_keys("acme", [*members, unknown, members[0]])
    assert set(keys) == set(members[:2])  # erased and unknown members are left out
    for member in members[:2]:
        blob = keys[member].encrypt("interaction", b"doc of " + member)
        assert vault.decrypt("acme", member, "interaction", blob) == b"doc of " + member
        assert keys[member].decrypt("interaction", blob) == b"doc of " + member
        assert keys[member].encrypt("interaction", b"same") != keys[member].encrypt("interaction", b"same")
        assert keys[member].commit(b"data") == vault.commit("acme", member, b"data")
        with pytest.raises(DecryptionFailed):
            vault.decrypt("acme", member, "email", blob)  # bound to its field
    with pytest.raises(DecryptionFailed):
        vault.decrypt("acme", members[1], "interaction", keys[members[0]].encrypt("interaction", b"x"))


def test_customer_keys_come_from_the_cache_and_fill_it(vault: Vault, keystore: KeyStore, clock: Clock):
    cached, uncached = customers(vault, 2)
    vault.clear_cache()
    vault.encrypt("acme", cached, "interaction", b"x")  # now in the vault's cache
    keystore.delete("acme", cached)  # erased elsewhere: the cache keeps the key for its TTL, as always
    keys = vault.customer_keys("acme", [cached, uncached])
    assert set(keys) == {cached, uncached}
    keystore.delete("acme", uncached)  # read by customer_keys and cached: usable for the TTL too
    assert vault.decrypt("acme", uncached, "interaction", keys[uncached].encrypt("interaction", b"y")) == b"y"
    clock.now = 30.0  # the TTL is over: everyone goes back to the store and finds the keys gone
    assert not keys[cached].fresh and not keys[uncached].fresh
    for member in (cached, uncached):
        with pytest.raises(CustomerErased):
            keys[member].encrypt("interaction", b"z")


def test_a_shred_wins_over_customer_keys(vault: Vault):
    shredded, kept = customers(vault, 2)
    keys = vault.customer_keys("acme", [shredded, kept])
    # references as the vault makes them, the key derived once and kept for the next one
    assert keys[shredded].reference(b"489434") == vault.reference("acme", shredded, b"489434")
    assert keys[shredded].reference(b"C489435") == vault.reference("acme", shredded, b"C489435")
    assert keys[kept].reference(b"489434") != keys[shredded].reference(b"489434")
    vault.shred("acme", shredded)
    with pytest.raises(CustomerErased):
        keys[shredded].encrypt("interaction", b"x")
    with pytest.raises(CustomerErased):
        keys[shredded].commit(b"x")
    with pytest.raises(CustomerErased):  # the reference key derived before the shred is not used
        keys[shredded].reference(b"489434")
    assert vault.decrypt("acme", kept, "interaction", keys[kept].encrypt("interaction", b"x")) == b"x"


def test_customer_keys_hand_out_one_object_per_customer_while_its_key_and_epoch_last(
    vault: Vault, clock: Clock
):
    member, other = customers(vault, 2)
    first = vault.customer_keys("acme", [member])[member]
    commitment = first.commit(b"doc")  # derives the commitment key: an import's next chunk reuses it
    assert vault.customer_keys("acme", [member, other])[member] is first
    vault.shred("acme", other)  # anyone's shred: every key read before it is stale
    assert not first.fresh
    after_shred = vault.customer_keys("acme", [member])[member]
    assert after_shred is not first and after_shred.fresh
    assert after_shred.commit(b"doc") == commitment == vault.commit("acme", member, b"doc")
    clock.now = 30.0  # past the TTL: the entry is gone, and with it the object
    assert not after_shred.fresh
    renewed = vault.customer_keys("acme", [member])[member]
    assert renewed is not after_shred and renewed.fresh
    vault.shred("acme", member)
    assert vault.customer_keys("acme", [member]) == {}
    with pytest.raises(CustomerErased):
        renewed.commit(b"doc")


def test_customer_keys_without_a_cache_keep_nothing(keystore: KeyStore):
    vault = Vault(keystore, ring(), cache_size=0)
    (member,) = customers(vault, 1)
    keys = vault.customer_keys("acme", [member])
    assert vault.customer_keys("acme", [member])[member] is not keys[member]  # nothing held either
    blob = keys[member].encrypt("interaction", b"x")  # through the store, on every call
    keystore.delete("acme", member)
    with pytest.raises(CustomerErased):
        keys[member].encrypt("interaction", b"x")
    with pytest.raises(CustomerErased):
        vault.decrypt("acme", member, "interaction", blob)


def test_a_key_handed_over_works_as_read_and_a_retired_one_is_never_handed_over(vault: Vault):
    member, other = customers(vault, 2)
    blob = vault.encrypt("acme", member, "interaction", b"doc")
    keys = vault.bulk_keys("acme", [member, other])
    dek = keys[member].hand_over()
    assert dek is not None
    handed = vault.handed_keys("acme", {member: dek})[member]
    assert handed.decrypt("interaction", blob) == b"doc"
    assert handed.commit(b"doc") == vault.commit("acme", member, b"doc")
    vault.shred("acme", other)  # anyone's shred retires every key read before it
    assert keys[member].hand_over() is None
