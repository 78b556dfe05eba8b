"""The vault: envelope encryption per customer, and erasure by deleting one key.

Each customer (a random 32-byte member id within a partner) has a data key (DEK). The DEK encrypts the
customer's personal data and interaction payloads field by field, and a key derived from it makes the
HMAC commitments that are anchored on chain. The DEK itself is stored only wrapped (encrypted) under
the owning partner's key-encryption key (KEK), in the separate `KeyStore`. So:

- deleting the wrapped DEK (`shred`) makes the customer's ciphertexts undecryptable and their
  commitments unlinkable, wherever copies of the data or the chain live;
- rotating a partner's KEK (`rotate_kek`) rewraps the partner's DEKs and leaves the data untouched.

Associated data binds every ciphertext to where it belongs:

- a wrapped DEK to ``ledgercrm/dek/v1|<partner>|<member hex>`` (`dek_aad`), so a wrapped key copied onto
  another customer's row does not unwrap;
- a field ciphertext to ``ledgercrm/field/v1|<partner>|<member hex>|<field>`` (`field_aad`), so a
  ciphertext moved to another customer or another field does not decrypt, even under the right key.
Both encodings are unambiguous: partner names cannot contain ``|`` and member ids are fixed-length hex.

Partner names are key names, not display names: 1 to 63 characters of ``[a-z0-9_]``, starting with a
letter or digit (an address in lowercase hex qualifies). That keeps them usable in the AAD and maps each
one to exactly one environment variable (``LEDGERCRM_KEK_<PARTNER>``).
"""

from __future__ import annotations

import base64
import math
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

from offchain import crypto
from offchain.errors import CustomerErased, CustomerKeyExists, KekError, UnknownCustomer
from offchain.keystore import MEMBER_SIZE, KeyStore, WrappedKey

_PARTNER = re.compile(r"[a-z0-9][a-z0-9_]{0,62}")

# The input of every development KEK. It is in the source code, so it protects nothing: KekRing refuses
# the keys derived from it unless `development=True`.
_DEVELOPMENT_SEED = b"ledgercrm development KEK -- PUBLIC, NOT A SECRET, NEVER USE IN PRODUCTION"


def new_member_id() -> bytes:
    """A fresh member id: 32 random bytes, never derived from a name, email or any other personal data
    (a hash of PII would be a pseudonym that anyone holding the PII could recompute and link)."""
    return os.urandom(MEMBER_SIZE)


def check_partner(partner: str) -> str:
    """`partner` itself if it is a valid partner key name (see module docstring), else ValueError."""
    if not _PARTNER.fullmatch(partner):
        raise ValueError(f"invalid partner name {partner!r}: expected 1-63 characters of [a-z0-9_]")
    return partner


def _check_member(member: bytes) -> bytes:
    if len(member) != MEMBER_SIZE:
        raise ValueError(f"member ids are {MEMBER_SIZE} bytes, got {len(member)}")
    return member


def dek_aad(partner: str, member: bytes) -> bytes:
    """The associated data a customer's DEK is wrapped with."""
    return (
        b"ledgercrm/dek/v1|" + check_partner(partner).encode() + b"|" + _check_member(member).hex().encode()
    )


def field_aad(partner: str, member: bytes, field: str) -> bytes:
    """The associated data a customer's field is encrypted with (`field` is any non-empty string)."""
    if not field:
        raise ValueError("field names must not be empty")
    return (
        b"ledgercrm/field/v1|"
        + check_partner(partner).encode()
        + b"|"
        + _check_member(member).hex().encode()
        + b"|"
        + field.encode("utf-8")
    )


COMMITMENT_INFO = b"ledgercrm/commitment/v1"
DISCLOSURE_INFO = b"ledgercrm/disclosure/v1/"
REFERENCE_INFO = b"ledgercrm/reference/v1"

# The key-store slot of each partner's lookup key (`Vault.index_key`): member id 0x00..00. No customer
# can have it: member ids are 32 random bytes, and every contract rejects the zero member. Keeping the
# key in the key store under the partner, wrapped like a DEK (`dek_aad` of this id), means that KEK
# rotation rewraps it with everything else and a key-store backup holds it only wrapped.
INDEX_MEMBER = bytes(MEMBER_SIZE)


class KekProvider(Protocol):
    """Where the vault gets partners' KEKs. A KEK is 32 bytes and is named by a `kek_id` that is stored
    next to every key it wraps, so the vault can tell which KEK a wrapped DEK needs."""

    def current(self, partner: str) -> tuple[str, bytes]:
        """``(kek_id, kek)`` that new DEKs of `partner` are wrapped under; KekError if there is none."""
        ...

    def lookup(self, partner: str, kek_id: str) -> bytes:
        """The KEK named `kek_id` for `partner`; KekError if this provider does not have it."""
        ...

    def install(self, partner: str, kek_id: str, kek: bytes) -> None:
        """Make `kek` the partner's current KEK, keeping the previous ones available to `lookup`
        until they are retired. KekError if the key is not acceptable."""
        ...

    def retire(self, partner: str, kek_id: str) -> None:
        """Forget a KEK that no longer wraps anything (never the current one)."""
        ...


@dataclass
class _Keys:
    current: str
    by_id: dict[str, bytes]


class KekRing:
    """The KEK provider built from settings.

    For partner ``acme`` the KEK comes from, in this order: `key_files["acme"]`; the file named by
    ``LEDGERCRM_KEKFILE_ACME``; ``LEDGERCRM_KEK_ACME``. (Not ``..._KEK_ACME_FILE``: that would be the
    key variable of a partner called ``acme_file``.) A variable holds the 32-byte key as hex or base64;
    a file holds it raw (exactly 32 bytes) or as hex or base64 text. Setting more than one source for a
    partner is refused as ambiguous. The `kek_id` is ``LEDGERCRM_KEKID_ACME`` if set, else a fingerprint
    of the key (`fingerprint`), so a key configured on its own always gets the same id in every process.

    Outside development (the default) a missing KEK is a `KekError`, and so is the development KEK.

    DEVELOPMENT ONLY: with ``development=True`` a partner without a configured KEK gets
    `development_kek(partner)`, a key derived from a constant in this source file. It is public
    knowledge; anything wrapped under it is as good as unencrypted. It exists so that tests and demos run
    without secrets, and it is refused outside development even when configured explicitly.
    """

    def __init__(
        self,
        *,
        development: bool = False,
        environ: Mapping[str, str] | None = None,
        key_files: Mapping[str, str | os.PathLike[str]] | None = None,
    ) -> None:
        self.development = development
        # None means "os.environ, read when a partner is first used", so a ring built at import time
        # still sees variables set later by the process manager or a test fixture.
        self._environ = environ
        self._key_files = dict(key_files or {})
        self._keys: dict[str, _Keys] = {}
        self._lock = threading.Lock()

    @staticmethod
    def development_kek(partner: str) -> bytes:
        """The well-known development KEK of `partner`. NOT SECRET: see the class docstring."""
        return crypto.hkdf(_DEVELOPMENT_SEED, b"ledgercrm/dev-kek/v1|" + check_partner(partner).encode())

    @staticmethod
    def fingerprint(kek: bytes) -> str:
        """A KEK's id: a short keyed hash that names the key without revealing anything about it."""
        return "kek-" + crypto.hmac_sha256(kek, b"ledgercrm/kek-id/v1")[:8].hex()

    def current(self, partner: str) -> tuple[str, bytes]:
        """``(kek_id, kek)`` for new wraps; KekError if none is configured or it is not acceptable."""
        keys = self._keys_of(partner)
        return keys.current, keys.by_id[keys.current]

    def lookup(self, partner: str, kek_id: str) -> bytes:
        """The KEK named `kek_id`; KekError if this ring does not hold it (e.g. rotated elsewhere)."""
        keys = self._keys_of(partner)
        try:
            return keys.by_id[kek_id]
        except KeyError:
            raise KekError(
                f"partner {partner}: a key is wrapped under KEK {kek_id}, which is not configured here"
                f" (current KEK: {keys.current})"
            ) from None

    def install(self, partner: str, kek_id: str, kek: bytes) -> None:
        """Make `kek` the current KEK of `partner` in this process (the settings are not written)."""
        self._acceptable(partner, kek, "the new KEK")
        if not kek_id:
            raise KekError("a KEK id must not be empty")
        with self._lock:
            keys = self._keys.get(partner) or self._configured(partner)
            if keys is None:
                self._keys[partner] = _Keys(kek_id, {kek_id: kek})
                return
            if kek_id in keys.by_id and keys.by_id[kek_id] != kek:
                raise KekError(f"partner {partner}: KEK id {kek_id} already names a different key")
            keys.by_id[kek_id] = kek
            keys.current = kek_id
            self._keys[partner] = keys

    def retire(self, partner: str, kek_id: str) -> None:
        """Forget an old KEK of `partner`, so this process can no longer unwrap anything with it."""
        with self._lock:
            keys = self._keys.get(partner)
            if keys is None or kek_id not in keys.by_id:
                return
            if kek_id == keys.current:
                raise KekError(f"partner {partner}: cannot retire the current KEK {kek_id}")
            del keys.by_id[kek_id]

    def _keys_of(self, partner: str) -> _Keys:
        check_partner(partner)
        with self._lock:
            keys = self._keys.get(partner)
            if keys is None:
                keys = self._configured(partner)
                if keys is None:
                    if not self.development:
                        raise KekError(
                            f"no KEK for partner {partner}: set LEDGERCRM_KEK_{partner.upper()} (hex or"
                            f" base64, 32 bytes) or LEDGERCRM_KEKFILE_{partner.upper()} (a key file path)"
                        )
                    kek = self.development_kek(partner)
                    kek_id = "dev-" + self.fingerprint(kek)
                    keys = _Keys(kek_id, {kek_id: kek})
                self._keys[partner] = keys
            return keys

    def _configured(self, partner: str) -> _Keys | None:
        """The KEK from settings, or None if the settings name none. Malformed settings are KekError."""
        environ = os.environ if self._environ is None else self._environ
        name = partner.upper()
        sources: list[tuple[str, Callable[[], bytes]]] = []
        if partner in self._key_files:
            file = Path(self._key_files[partner])
            sources.append((f"key file {file}", partial(self._read_file, file)))
        if f"LEDGERCRM_KEKFILE_{name}" in environ:
            file = Path(environ[f"LEDGERCRM_KEKFILE_{name}"])
            sources.append((f"LEDGERCRM_KEKFILE_{name}", partial(self._read_file, file)))
        if f"LEDGERCRM_KEK_{name}" in environ:
            value = environ[f"LEDGERCRM_KEK_{name}"].encode()
            sources.append((f"LEDGERCRM_KEK_{name}", partial(self._decode, value)))
        if not sources:
            return None
        if len(sources) > 1:
            raise KekError(f"partner {partner}: KEK configured twice ({', '.join(s for s, _ in sources)})")
        where, load = sources[0]
        try:
            kek = load()
        except ValueError:
            # The message names the source and never echoes the value: it may be a real key, one typo off.
            raise KekError(f"{where}: not a 32-byte key in hex or base64") from None
        self._acceptable(partner, kek, where)
        kek_id = environ.get(f"LEDGERCRM_KEKID_{name}") or self.fingerprint(kek)
        return _Keys(kek_id, {kek_id: kek})

    def _acceptable(self, partner: str, kek: bytes, where: str) -> None:
        if len(kek) != crypto.KEY_SIZE:
            raise KekError(f"{where}: a KEK is {crypto.KEY_SIZE} bytes, got {len(kek)}")
        if not self.development and kek == self.development_kek(partner):
            raise KekError(
                f"{where}: this is the public development KEK of {partner}; refused outside development"
            )

    @classmethod
    def _read_file(cls, path: Path) -> bytes:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise KekError(f"key file {path}: {exc.strerror}") from None
        return data if len(data) == crypto.KEY_SIZE else cls._decode(data)

    @staticmethod
    def _decode(text: bytes) -> bytes:
        """A 32-byte key from hex or base64 (standard or URL-safe) text; ValueError otherwise."""
        text = text.strip()
        # 64 characters can only be hex of 32 bytes (base64 of 32 bytes is 44), so there is no guessing.
        if len(text) == 2 * crypto.KEY_SIZE:
            key = bytes.fromhex(text.decode("ascii"))
        else:
            key = base64.b64decode(text.translate(bytes.maketrans(b"-_", b"+/")), validate=True)
        if len(key) != crypto.KEY_SIZE:
            raise ValueError("wrong length")
        return key


class Vault:
    """Per-customer encryption, commitments, erasure and KEK rotation (see module docstring).

    Unwrapped DEKs are cached (LRU, `cache_size` entries, each for at most `cache_ttl` seconds) because
    unwrapping costs a key-store read. `shred` evicts from this vault's cache; another process (or
    another Vault object) sharing the key store keeps a shredded customer's DEK for at most `cache_ttl`
    seconds, so keep that short where several workers share one store, or set ``cache_size=0``.
    `monotonic` is the clock for the TTL, injectable for tests.
    """

    def __init__(
        self,
        keystore: KeyStore,
        keks: KekProvider,
        *,
        cache_size: int = 1024,
        cache_ttl: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keystore = keystore
        self._keks = keks
        self._cache_size = cache_size
        self._cache_ttl = cache_ttl
        self._monotonic = monotonic
        self._cache: OrderedDict[tuple[str, bytes], _Cached] = OrderedDict()
        # Bumped by every shred. A DEK read from the store before a shred must not be cached after it
        # (the reader may be slower than the shredder), so `_remember` drops keys read in an older epoch.
        self._epoch = 0
        self._lock = threading.Lock()
        # partner -> its lookup key (`index_key`); it never changes once created, so no expiry
        self._index_keys: dict[str, bytes] = {}

    # -- keys ----------------------------------------------------------------------------------------

    def create_customer_key(self, partner: str, member: bytes) -> None:
        """Give a new customer a fresh random DEK, wrapped under the partner's current KEK.

        Raises CustomerKeyExists if the customer has a key (replacing it would orphan their data) and
        CustomerErased if the member id was erased (ids are never reused).
        """
        aad = dek_aad(partner, member)
        kek_id, kek = self._keks.current(partner)
        dek = crypto.new_key()
        epoch = self._epoch
        self._keystore.put(partner, member, kek_id, crypto.wrap(kek, dek, aad))
        self._remember(partner, member, dek, epoch)

    def create_customer_keys(self, partner: str, members: Sequence[bytes]) -> None:
        """`create_customer_key` for many new customers in one key-store transaction (all or none)."""
        kek_id, kek = self._keks.current(partner)
        deks = [crypto.new_key() for _ in members]
        epoch = self._epoch
        self._keystore.put_many(
            partner,
            [
                (member, kek_id, crypto.wrap(kek, dek, dek_aad(partner, member)))
                for member, dek in zip(members, deks, strict=True)
            ],
        )
        for member, dek in zip(members, deks, strict=True):
            self._remember(partner, member, dek, epoch)

    def customer_keys(self, partner: str, members: Iterable[bytes]) -> dict[bytes, CustomerKeys]:
        """The keys of customers about to be worked on together (an import's chunk), under this vault's
        cache rules: each from the cache where it is, the others read with one key-store query per 500
        and cached, since an import's next chunk brings back most of this one's customers (`bulk_keys`,
        by contrast, is for one-off keys and never caches). Each `CustomerKeys` is fresh for as long as
        its cache entry would be (until the next shred, and its TTL); members without a key are left
        out, as in `bulk_keys`."""
        check_partner(partner)
        wanted = [_check_member(member) for member in dict.fromkeys(members)]
        keys: dict[bytes, CustomerKeys] = {}
        missing: list[bytes] = []
        epoch = self._epoch  # before any read: a shred from here on leaves these keys stale
        now = self._monotonic()
        for member in wanted:
            entry = self._recall_entry(partner, member)
            if entry is None:
                missing.append(member)
            else:
                keys[member] = self._keys_of(entry, partner, member, epoch)
        expires = now + self._cache_ttl if self._cache_size > 0 else now
        for member, dek in self._read_keys(partner, missing).items():
            entry = self._remember(partner, member, dek, epoch)
            keys[member] = (
                CustomerKeys(self, partner, member, dek, epoch, expires)
                if entry is None
                else self._keys_of(entry, partner, member, epoch)
            )
        return keys

    def _keys_of(self, entry: _Cached, partner: str, member: bytes, epoch: int) -> CustomerKeys:
        # One object per cache entry and epoch, handed out again while both last: what it derives (the
        # commitment key's HKDF, the AADs) is then derived once per customer in an import, not once per
        # chunk (31k HKDFs for Online Retail II's 5,881 customers). It is fresh exactly as long as a new
        # one would be: same key, same epoch, the entry's expiry.
        held = entry.keys
        if held is None or held._epoch != epoch:
            held = entry.keys = CustomerKeys(self, partner, member, entry.dek, epoch, entry.expires)
        return held

    def is_erased(self, partner: str, member: bytes) -> bool:
        """Whether the customer was shredded."""
        return self._keystore.was_erased(check_partner(partner), _check_member(member))

    def _dek(self, partner: str, member: bytes) -> bytes:
        cached = self._recall_entry(partner, member)
        if cached is not None:
            return cached.dek
        aad = dek_aad(partner, member)
        epoch = self._epoch
        stored = self._keystore.get(partner, member)
        if stored is None:
            if self._keystore.was_erased(partner, member):
                raise CustomerErased(partner, member)
            raise UnknownCustomer(partner, member)
        kek_id, wrapped = stored
        dek = crypto.unwrap(self._keks.lookup(partner, kek_id), wrapped, aad)
        self._remember(partner, member, dek, epoch)
        return dek

    # -- data ----------------------------------------------------------------------------------------

    def encrypt(self, partner: str, member: bytes, field: str, plaintext: bytes) -> bytes:
        """Encrypt one field of one customer; the result only decrypts for the same (partner, member,
        field). Raises CustomerErased / UnknownCustomer if the customer has no key."""
        aad = field_aad(partner, member, field)
        return crypto.seal(self._dek(partner, member), plaintext, aad)

    def decrypt(self, partner: str, member: bytes, field: str, blob: bytes) -> bytes:
        """The plaintext of `encrypt`'s output. DecryptionFailed if the blob was altered or belongs to
        another customer or field; CustomerErased / UnknownCustomer if the customer has no key."""
        aad = field_aad(partner, member, field)
        return crypto.open_sealed(self._dek(partner, member), blob, aad)

    def commitment_key(self, partner: str, member: bytes) -> bytes:
        """The customer's HMAC key for commitments. Derived from the DEK so that it dies with it on
        `shred` without a second key to delete; derived through HKDF (not the DEK itself) so that handing
        it out (e.g. to an auditor recomputing leaves) reveals nothing about the key that encrypts data."""
        return crypto.hkdf(self._dek(partner, member), COMMITMENT_INFO)

    def commit(self, partner: str, member: bytes, data: bytes) -> bytes:
        """HMAC-SHA256 commitment to `data` (canonical JSON of an interaction) under `commitment_key`.

        Keyed rather than a plain hash so that the on-chain leaf cannot be confirmed by guessing the
        data, and cannot be recomputed by anyone once the customer is erased.
        """
        return crypto.hmac_sha256(self.commitment_key(partner, member), data)

    def disclosure_key(self, partner: str, member: bytes, label: bytes) -> bytes:
        """A key for one commitment that may be handed to someone who must check it (an auditor
        checking a decision's explanation) without being able to check any other: derived from the
        customer's commitment key and `label`, one way. Dies with the data key on `shred`."""
        return crypto.hkdf(self.commitment_key(partner, member), DISCLOSURE_INFO + label)

    def reference(self, partner: str, member: bytes, value: bytes) -> bytes:
        """A keyed reference to `value` (the partner's own key for an event, e.g. an invoice number) for
        the chain: HMAC-SHA256 under a key derived from the customer's commitment key, so that it
        repeats for the same value (idempotent), cannot be confirmed by guessing the value, and can be
        recomputed by nobody once the customer is erased (as for leaves)."""
        return crypto.hmac_sha256(crypto.hkdf(self.commitment_key(partner, member), REFERENCE_INFO), value)

    def bulk_keys(self, partner: str, members: Iterable[bytes]) -> dict[bytes, CustomerKeys]:
        """The keys of many customers of `partner` at once, for work that touches thousands of them
        (verifying everything): one key-store query per 500 members (`KeyStore.get_many`) instead of a
        query per customer, and each commitment key derived once rather than once per `commit`.

        Members without a key (erased, or never given one) are left out: `decrypt`, `commit` or
        `is_erased` tell which. The keys are always read from the store, and follow the cache rules
        described in `CustomerKeys`; they are not added to this vault's LRU, where thousands of
        one-off keys would only evict the hot ones."""
        check_partner(partner)
        wanted = [_check_member(member) for member in dict.fromkeys(members)]
        # Epoch and clock before the read, as in `_dek`: a shred that lands after this point leaves the
        # keys read here stale, so `CustomerKeys` goes back to the vault (and finds the key gone).
        epoch = self._epoch
        now = self._monotonic()
        expires = now + self._cache_ttl if self._cache_size > 0 else now
        return {
            member: CustomerKeys(self, partner, member, dek, epoch, expires)
            for member, dek in self._read_keys(partner, wanted).items()
        }

    @property
    def shreds(self) -> int:
        """How many shreds this vault has made: work done with keys read before it counts for nothing once
        this moves (as `CustomerKeys.fresh` says of one key)."""
        return self._epoch

    def forked(self) -> None:
        """In a process forked from this vault's: no key cached in the parent is used here (each is read
        from the key store again, through connections of this process's own)."""
        with self._lock:
            self._cache.clear()
        self._keystore.forked()

    def handed_keys(self, partner: str, deks: Mapping[bytes, bytes]) -> dict[bytes, CustomerKeys]:
        """Keys this run's process read (`CustomerKeys.hand_over`), for a helper process forked from it
        that checks rows with them and nothing else: fresh for as long as that process lives (it never
        shreds and never reads the key store). Whether they were still good when the work was done is
        the reading process's to decide (`CustomerKeys.fresh` there, when it uses the answer): only there
        does a shred or the TTL take effect."""
        check_partner(partner)
        return {
            member: CustomerKeys(self, partner, _check_member(member), dek, self._epoch, math.inf)
            for member, dek in deks.items()
        }

    def _read_keys(self, partner: str, members: list[bytes]) -> dict[bytes, bytes]:
        """The DEKs of these members that have one, read from the key store (one query per 500) and
        unwrapped."""
        if not members:
            return {}
        return {
            member: crypto.unwrap(self._keks.lookup(partner, kek_id), wrapped, dek_aad(partner, member))
            for member, (kek_id, wrapped) in self._keystore.get_many(partner, members).items()
        }

    # -- keyed lookups -------------------------------------------------------------------------------

    def index_key(self, partner: str) -> bytes:
        """The partner's lookup key: 32 random bytes, created on first use, for keyed hashes that let
        the store find a row by a value it must not hold in the clear (`external_ref_hmac`).

        Stored wrapped under the partner's KEK in the key-store slot `INDEX_MEMBER`, so rotating the KEK
        rewraps it and it needs the KEK to be read. Per partner, so equal values of two partners do not
        hash alike. Never `shred` that slot: the key could not be created again (erased ids are never
        reused) and every lookup hash made with it would become unfindable."""
        check_partner(partner)
        with self._lock:
            cached = self._index_keys.get(partner)
        if cached is not None:
            return cached
        aad = dek_aad(partner, INDEX_MEMBER)
        stored = self._keystore.get(partner, INDEX_MEMBER)
        if stored is None:
            kek_id, kek = self._keks.current(partner)
            key = crypto.new_key()
            try:
                self._keystore.put(partner, INDEX_MEMBER, kek_id, crypto.wrap(kek, key, aad))
            except CustomerKeyExists:
                # another process created it between our read and our write: theirs is the key
                stored = self._keystore.get(partner, INDEX_MEMBER)
                if stored is None:  # pragma: no cover - a key that exists cannot vanish (no API erases it)
                    raise
        if stored is not None:
            kek_id, wrapped = stored
            key = crypto.unwrap(self._keks.lookup(partner, kek_id), wrapped, aad)
        with self._lock:
            self._index_keys[partner] = key
        return key

    def external_ref_hmac(self, partner: str, external_ref: str) -> bytes:
        """HMAC-SHA256(`index_key(partner)`, UTF-8 of `external_ref`): how the store finds a customer by
        the partner's own customer number without storing that number in the clear."""
        return crypto.hmac_sha256(self.index_key(partner), external_ref.encode("utf-8"))

    # -- erasure and rotation ------------------------------------------------------------------------

    def shred(self, partner: str, member: bytes) -> None:
        """Erase the customer for good: securely delete the wrapped DEK, record the tombstone, evict the
        cached DEK. Afterwards encrypt, decrypt and commit raise CustomerErased.

        Idempotent (a repeat also finishes an erasure interrupted by a KeyStoreError). Raises
        UnknownCustomer for a member that never had a key.
        """
        check_partner(partner)
        _check_member(member)
        try:
            deleted = self._keystore.delete(partner, member)
        finally:
            with self._lock:
                self._epoch += 1
                self._cache.pop((partner, member), None)
        if not deleted and not self._keystore.was_erased(partner, member):
            raise UnknownCustomer(partner, member)

    def rotate_kek(self, partner: str, new_kek_id: str, new_kek: bytes) -> int:
        """Rewrap every DEK of `partner` under `new_kek`; returns how many were rewrapped. Data is not
        touched (the DEKs stay the same) and other partners' keys are not read.

        The new KEK becomes the current one in this process, first, so that keys created during the
        rotation are wrapped under it; the rewrap runs in one key-store transaction; on success the old
        KEKs are retired from the provider, so this process can no longer unwrap with them. If anything
        fails, the old KEKs stay available and a repeat of the call completes the rotation.

        Operating procedure: store the new KEK safely BEFORE calling this (once it returns, the keys
        depend on it), then point every process's settings at it, then destroy the old KEK. With
        `KekRing`, pass ``KekRing.fingerprint(new_kek)`` as `new_kek_id` (the id a process configured
        with just the new key derives by itself), or set ``LEDGERCRM_KEKID_<PARTNER>`` to the id used.
        """
        check_partner(partner)
        old_id, _old = self._keks.current(partner)
        self._keks.install(partner, new_kek_id, new_kek)
        seen = {old_id}

        def rewrap(record: WrappedKey) -> tuple[str, bytes] | None:
            if record.kek_id == new_kek_id:
                return None  # already rotated by an earlier, interrupted call
            aad = dek_aad(partner, record.member)
            dek = crypto.unwrap(self._keks.lookup(partner, record.kek_id), record.wrapped, aad)
            seen.add(record.kek_id)
            return new_kek_id, crypto.wrap(new_kek, dek, aad)

        count = self._keystore.rewrap_partner(partner, rewrap)
        for kek_id in seen - {new_kek_id}:
            self._keks.retire(partner, kek_id)
        return count

    # -- cache ---------------------------------------------------------------------------------------

    def _recall_entry(self, partner: str, member: bytes) -> _Cached | None:
        """The cache entry of a customer (DEK, expiry, its CustomerKeys), if cached and not expired (an
        expired one is dropped)."""
        with self._lock:
            entry = self._cache.get((partner, member))
            if entry is None:
                return None
            if self._monotonic() >= entry.expires:
                del self._cache[(partner, member)]
                return None
            self._cache.move_to_end((partner, member))
            return entry

    def _remember(self, partner: str, member: bytes, dek: bytes, epoch: int) -> _Cached | None:
        """Cache a DEK read or made in `epoch`; the entry, or None if it is not cached."""
        if self._cache_size <= 0:
            return None
        with self._lock:
            if epoch != self._epoch:
                return None
            entry = self._cache[(partner, member)] = _Cached(dek, self._monotonic() + self._cache_ttl)
            self._cache.move_to_end((partner, member))
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return entry

    @contextmanager
    def cache_capacity(self, size: int) -> Iterator[None]:
        """Let the cache hold at least `size` DEKs while the block runs (bulk work that comes back to the
        same customers within seconds, like an import, where a smaller LRU would evict a key just before
        its next use and read it again: 19k key-store reads for the Online Retail II import at 1,024).
        The TTL is unchanged, so no key is kept longer; on exit the capacity and the cache shrink back.
        A vault without a cache (``cache_size=0``) stays without one."""
        with self._lock:
            before = self._cache_size
            if before > 0:
                self._cache_size = max(before, size)
        try:
            yield
        finally:
            with self._lock:
                self._cache_size = before
                while len(self._cache) > before:
                    self._cache.popitem(last=False)

    def clear_cache(self) -> None:
        """Drop every cached DEK (e.g. when another process may have shredded customers)."""
        with self._lock:
            self._cache.clear()


class _Cached:
    """A cached DEK, until `expires` (the vault's monotonic clock), and the `CustomerKeys` made of it."""

    __slots__ = ("dek", "expires", "keys")

    def __init__(self, dek: bytes, expires: float) -> None:
        self.dek = dek
        self.expires = expires
        self.keys: CustomerKeys | None = None


class CustomerKeys:
    """One customer's keys as `Vault.bulk_keys` and `Vault.customer_keys` hand them out: `encrypt`,
    `decrypt` and `commit` do exactly what the vault's methods do, without a key lookup (and an HKDF)
    per call.

    No cache of its own beyond the vault's rules: the key read from the store is used only until the
    vault's next `shred` (of anyone: its epoch changes) and for at most the vault's `cache_ttl` (not at
    all with ``cache_size=0``). Past that every call goes through the vault again, which raises
    CustomerErased once the key is gone, so erasure wins here exactly as it does for the vault's cache.
    Once stale, an object drops its keys (it can never become fresh again). `Vault.customer_keys` hands
    out the object of a cached key again while it is fresh. Meant for one run of work (e.g. one
    `verify_all`), not to be kept around.
    """

    __slots__ = (
        "_aads",
        "_cipher",
        "_commitment_key",
        "_dek",
        "_epoch",
        "_expires",
        "_reference_key",
        "_vault",
        "member",
        "partner",
    )

    def __init__(
        self, vault: Vault, partner: str, member: bytes, dek: bytes, epoch: int, expires: float
    ) -> None:
        self.partner = partner
        self.member = member
        self._vault = vault
        self._dek = dek
        self._epoch = epoch
        self._expires = expires
        self._commitment_key: bytes | None = None
        # derived on first use, once per customer: an import asks for a reference per invoice (36,951 of
        # Online Retail II), and an HKDF for each cost ~0.11 CPU s of it
        self._reference_key: bytes | None = None
        self._cipher: crypto.Sealed | None = None  # the DEK's cipher, set up on first use
        self._aads: dict[str, bytes] = {}

    @property
    def fresh(self) -> bool:
        """Whether the key read by `bulk_keys` is still used (no shred since, TTL not past). A stale
        object still works, through the vault; a holder that keeps many asks `bulk_keys` again."""
        vault = self._vault
        return self._epoch == vault._epoch and vault._monotonic() < self._expires

    def hand_over(self) -> bytes | None:
        """The data key, for a helper process forked from this one (`Vault.handed_keys` there), or None
        once stale: a key a shred or the TTL has retired is never handed on."""
        if not self.fresh:
            self._forget()
            return None
        return self._dek

    def _forget(self) -> None:
        # the epoch only grows and the clock only advances: stale is for good, so keep no key material
        self._dek = b""
        self._commitment_key = None
        self._reference_key = None
        self._cipher = None

    def encrypt(self, field: str, plaintext: bytes) -> bytes:
        """`Vault.encrypt` of this customer's `field` (a fresh random nonce each time, as there)."""
        if not self.fresh:
            self._forget()
            return self._vault.encrypt(self.partner, self.member, field, plaintext)
        return self._sealed().seal(plaintext, self._aad(field))

    def _sealed(self) -> crypto.Sealed:
        cipher = self._cipher
        if cipher is None:
            cipher = self._cipher = crypto.Sealed(self._dek)
        return cipher

    def _aad(self, field: str) -> bytes:
        aad = self._aads.get(field)
        if aad is None:
            aad = self._aads[field] = field_aad(self.partner, self.member, field)
        return aad

    def decrypt(self, field: str, blob: bytes) -> bytes:
        """`Vault.decrypt` of this customer's `field`."""
        if not self.fresh:
            self._forget()
            return self._vault.decrypt(self.partner, self.member, field, blob)
        return self._sealed().open(blob, self._aad(field))

    def commit(self, data: bytes) -> bytes:
        """`Vault.commit` of `data` for this customer."""
        if not self.fresh:
            self._forget()
            return self._vault.commit(self.partner, self.member, data)
        return crypto.hmac_sha256(self._commitment(), data)

    def disclosure_key(self, label: bytes) -> bytes:
        """`Vault.disclosure_key` for this customer."""
        if not self.fresh:
            self._forget()
            return self._vault.disclosure_key(self.partner, self.member, label)
        return crypto.hkdf(self._commitment(), DISCLOSURE_INFO + label)

    def reference(self, value: bytes) -> bytes:
        """`Vault.reference` of `value` for this customer."""
        if not self.fresh:
            self._forget()
            return self._vault.reference(self.partner, self.member, value)
        key = self._reference_key
        if key is None:
            key = self._reference_key = crypto.hkdf(self._commitment(), REFERENCE_INFO)
        return crypto.hmac_sha256(key, value)

    def _commitment(self) -> bytes:
        if self._commitment_key is None:
            self._commitment_key = crypto.hkdf(self._dek, COMMITMENT_INFO)
        return self._commitment_key
