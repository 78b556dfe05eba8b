"""Every failure of the vault and its key store: one root (`VaultError`) and a few explicit cases.

Two rules shape this module:

- Decryption failures are deliberately indistinguishable. A wrong key, a flipped bit, a ciphertext moved
  to another customer or field, a truncated blob and an unknown format version all raise the same
  `DecryptionFailed` with the same message, so that an error message or type can never serve as an
  oracle that tells an attacker which part of a forgery was wrong.
- An erased customer is *not* a decryption failure. After erasure the answer "this customer's key was
  destroyed on purpose" is the truth and callers must be able to act on it (show "erased", skip the
  record in an export, exclude it from scoring), so it is its own error.

No error carries personal data: customers are named by partner and random member id only.
"""

from __future__ import annotations


class VaultError(Exception):
    """Root of every error raised by the vault, the key store and the crypto layer under them."""


class DecryptionFailed(VaultError):
    """A ciphertext or wrapped key could not be opened. Deliberately says nothing about why."""

    def __init__(self) -> None:
        super().__init__("decryption failed")


class _CustomerError(VaultError):
    """Shared shape: the customer named by partner and member id (hex), never by anything personal."""

    def __init__(self, partner: str, member: bytes, detail: str) -> None:
        self.partner = partner
        self.member_hex = member.hex()
        super().__init__(f"{detail}: partner={partner} member=0x{self.member_hex}")


class CustomerErased(_CustomerError):
    """The customer's data key was shredded: their data is gone for good, by request."""

    def __init__(self, partner: str, member: bytes) -> None:
        super().__init__(partner, member, "customer erased")


class UnknownCustomer(_CustomerError):
    """No data key was ever created for this customer (and none was erased either)."""

    def __init__(self, partner: str, member: bytes) -> None:
        super().__init__(partner, member, "unknown customer")


class CustomerKeyExists(_CustomerError):
    """A data key already exists for this customer; replacing it would make their data unreadable."""

    def __init__(self, partner: str, member: bytes) -> None:
        super().__init__(partner, member, "customer key already exists")


class KekError(VaultError):
    """A partner's KEK is missing or malformed, or is the development default outside development."""


class KeyStoreError(VaultError):
    """The key store could not guarantee what was asked of it (e.g. purging deleted keys from its journal)."""
