"""The only module that touches cryptographic primitives (pyca/cryptography). Everything else in the
project goes through these few functions, so that an algorithm choice is made, reviewed and tested once.

Formats and choices:

- `seal`/`open_sealed`: AES-256-GCM with a fresh random 96-bit nonce per message. A sealed blob is
  ``version (1 byte) || nonce (12 bytes) || ciphertext || tag (16 bytes)``. The version byte lets a later
  format coexist with stored v1 blobs. It is not fed into the tag: v1 is the only version ever
  decrypted, so altering the byte can only turn a valid blob into a refused one, and keeping it out of
  the AAD leaves the rest of the blob plain standard AES-GCM (NIST's published vectors open through
  `open_sealed` unchanged, see tests/offchain/vectors). A future v2 must authenticate its own version.
  Random nonces under one key are safe for up to 2**32 messages (NIST SP 800-38D, section 8.3); a
  data key belongs to one customer and a KEK wraps one key per customer, both far below that.
- `wrap`/`unwrap`: the same AES-256-GCM seal, with the KEK as key and the DEK as plaintext. We use GCM
  rather than AES Key Wrap (RFC 3394) because AES-KW takes no associated data: a wrapped DEK copied onto
  another customer's row would unwrap without complaint, silently handing customer A's rows customer B's
  key. With GCM the AAD names the (partner, member) the key belongs to, so a moved key fails to unwrap.
  It also keeps the primitive count at one.
- `hkdf`: HKDF-SHA256 (RFC 5869) with the fixed, public salt `HKDF_SALT`. The input keys here are
  uniformly random 256-bit DEKs, so the extract step needs no secret salt; a fixed application salt only
  separates our derivations from any other HKDF use of the same key. It can never change: HMAC
  commitments anchored on chain are recomputed from keys derived with it.
- `hmac_sha256`: RFC 2104 HMAC with SHA-256, for commitments.

Every failure to open a blob raises the one opaque `DecryptionFailed`, with its cause suppressed.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as _hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from offchain.errors import DecryptionFailed

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
VERSION = b"\x01"
OVERHEAD = len(VERSION) + NONCE_SIZE + TAG_SIZE
HKDF_SALT = b"ledgercrm/hkdf-salt/v1"


def new_key() -> bytes:
    """A fresh 256-bit key from the operating system's CSPRNG (used for DEKs and test KEKs)."""
    return os.urandom(KEY_SIZE)


def _nonce() -> bytes:
    # A separate function so that known-answer tests can pin the nonce; production code never does.
    return os.urandom(NONCE_SIZE)


def _check_key(key: bytes) -> None:
    # A key of the wrong length is a programming error, not a property of attacker-supplied data, so it
    # is a ValueError rather than DecryptionFailed (and it is raised before anything is decrypted).
    if len(key) != KEY_SIZE:
        raise ValueError(f"AES-256 keys are {KEY_SIZE} bytes, got {len(key)}")


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate `plaintext`, binding it to `aad` (which is authenticated, not stored).

    Returns ``VERSION || nonce || ciphertext || tag``. Requires ``len(key) == 32``.
    """
    _check_key(key)
    nonce = _nonce()
    return VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """The plaintext of a `seal`ed blob, or `DecryptionFailed` if anything about it is wrong.

    Wrong key, wrong AAD, any modified byte, truncation and an unknown version all fail the same way.
    Requires ``len(key) == 32``.
    """
    _check_key(key)
    if len(blob) < OVERHEAD or blob[:1] != VERSION:
        raise DecryptionFailed()
    nonce, body = blob[1 : 1 + NONCE_SIZE], blob[1 + NONCE_SIZE :]
    try:
        return AESGCM(key).decrypt(nonce, body, aad)
    except InvalidTag:
        # `from None`: the library's exception adds nothing and must not become a side channel.
        raise DecryptionFailed() from None


class Sealed:
    """`seal` and `open_sealed` under one key, for work that opens many blobs of one key (a customer's
    interactions in a verification run): the cipher is set up once, not per blob (~1.8 µs each)."""

    __slots__ = ("_cipher",)

    def __init__(self, key: bytes) -> None:
        _check_key(key)
        self._cipher = AESGCM(key)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """`seal(key, plaintext, aad)`."""
        nonce = _nonce()
        return VERSION + nonce + self._cipher.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        """`open_sealed(key, blob, aad)`: the plaintext, or `DecryptionFailed`."""
        if len(blob) < OVERHEAD or blob[:1] != VERSION:
            raise DecryptionFailed()
        try:
            return self._cipher.decrypt(blob[1 : 1 + NONCE_SIZE], blob[1 + NONCE_SIZE :], aad)
        except InvalidTag:
            raise DecryptionFailed() from None


def wrap(kek: bytes, dek: bytes, aad: bytes) -> bytes:
    """Encrypt a 32-byte data key under a key-encryption key, bound to `aad` (see module docstring)."""
    _check_key(dek)
    return seal(kek, dek, aad)


def unwrap(kek: bytes, wrapped: bytes, aad: bytes) -> bytes:
    """The data key inside `wrapped`, or `DecryptionFailed` (wrong KEK, wrong AAD, tampering, ...)."""
    dek = open_sealed(kek, wrapped, aad)
    if len(dek) != KEY_SIZE:
        # Authentic but not a key we wrapped: still just a failure to unwrap, from the caller's side.
        raise DecryptionFailed()
    return dek


def hkdf(key: bytes, info: bytes, length: int = 32, *, salt: bytes = HKDF_SALT) -> bytes:
    """HKDF-SHA256 of `key` for the purpose named by `info` (distinct infos give independent keys).

    `salt` exists for the RFC 5869 known-answer tests; application code keeps the default, which is
    fixed forever (see module docstring). Requires ``1 <= length <= 8160``.
    """
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(key)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 of `data` under `key` (32 bytes)."""
    mac = _hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()
