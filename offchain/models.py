"""The off-chain store's schema: SQLModel tables plus the API-facing model families around them.

What the store holds, and what it never holds:

- Personal data only as ciphertext (`Customer.pii_ciphertext`, `Interaction.payload_ciphertext`), sealed
  by the vault with the customer's data key. The store never sees plaintext, so deleting that key (the
  key store lives elsewhere) erases a customer without touching this database.
- Hashes and ids that also appear on chain (member ids, leaf hashes, Merkle roots, receipt hashes), as
  raw bytes: 32-byte values are checked by the database, so a hex string or a truncated digest stored
  by mistake fails loudly instead of silently never matching the chain.

Conventions:

- Every table hangs off `metadata` (its own registry, not `SQLModel.metadata`), so other SQLModel
  tables in the same process (e.g. a key store) never leak into this schema's migrations.
- Constraint and index names come from `NAMING_CONVENTION`, so migrations can name them explicitly
  (SQLite batch migrations cannot drop an unnamed constraint).
- Datetimes are timezone-aware and stored as UTC (SQLModel's `UTCDateTime`); naive ones are refused.
- Statuses and kinds are `StrEnum`s stored as VARCHAR with a CHECK constraint, not PostgreSQL ENUM types:
  adding a value then needs no `ALTER TYPE`, and both dialects behave the same.
- Surrogate keys are BIGINT on PostgreSQL and INTEGER on SQLite (where only `INTEGER PRIMARY KEY`
  aliases the rowid and autoincrements).
- `*Public` models are what the API may return: hex strings for binary ids, never a ciphertext or a keyed
  hash.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import sqlalchemy as sa
from pydantic import BeforeValidator
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

# defined apart so that an import's reader process can use them without loading the store; here too
from offchain.kinds import InteractionKind as InteractionKind

if TYPE_CHECKING:
    from offchain.customer_data import CustomerCreate as CustomerCreate


def __getattr__(name: str) -> Any:
    """`CustomerCreate` on first use: its EmailStr imports email_validator (0.03 CPU s), which a command
    that creates no customer (`decision verify`) does not need."""
    if name == "CustomerCreate":
        from offchain.customer_data import CustomerCreate

        return CustomerCreate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

HASH_SIZE = 32  # member ids, SHA-256 leaf hashes and roots, receipt hashes: all bytes32 on chain

# INTEGER on SQLite so the column aliases the rowid (autoincrement); BIGINT elsewhere, as interaction and
# point-event ids of a long-lived coalition can pass 2**31.
ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _hex(value: Any) -> Any:
    """Binary ids become 0x-hex for JSON; pydantic would otherwise try to decode random bytes as UTF-8."""
    return "0x" + value.hex() if isinstance(value, bytes) else value


HexId = Annotated[str, BeforeValidator(_hex)]


class CustomerStatus(enum.StrEnum):
    ACTIVE = "active"
    ERASED = "erased"


class AnchorStatus(enum.StrEnum):
    """The anchoring outbox: built locally -> transaction sent -> root confirmed on chain."""

    PENDING = "pending"
    SUBMITTED = "submitted"
    ANCHORED = "anchored"


class ConsentStatus(enum.StrEnum):
    GIVEN = "given"
    WITHDRAWN = "withdrawn"


class PointKind(enum.StrEnum):
    EARN = "earn"
    REDEEM = "redeem"


def _enum_type(enum_cls: type[enum.StrEnum], name: str) -> sa.Enum:
    # One instance per column: an Enum attaches its CHECK constraint to the first table it meets.
    return sa.Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        # store the lowercase values the API and the receipts use, not the Python member names
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


def _length_check(column: str, size: int = HASH_SIZE) -> sa.CheckConstraint:
    # length() counts bytes for SQLite BLOBs and PostgreSQL bytea alike
    return sa.CheckConstraint(f"length({column}) = {size}", name=f"{column}_length")


class StoreModel(SQLModel, registry=registry(metadata=metadata)):
    """Base of every model in this module; binds the tables to the store's own `metadata`."""


# --- partners ----------------------------------------------------------------------------------------


class PartnerBase(StoreModel):
    name: str = Field(min_length=1, max_length=200)
    # the EVM address of the partner's signing key: its identity on chain
    address: str = Field(max_length=42, schema_extra={"pattern": r"^0x[0-9a-fA-F]{40}$"})


class PartnerCreate(PartnerBase):
    pass


class Partner(PartnerBase, table=True):
    """A tenant. Every other row belongs to exactly one partner."""

    __tablename__ = "partners"
    __table_args__ = (
        sa.UniqueConstraint("name"),
        # two tenants with one signing key would be indistinguishable on chain
        sa.UniqueConstraint("address"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ID_TYPE)
    created_at: datetime = Field(default_factory=utcnow)


class PartnerPublic(PartnerBase):
    id: int
    created_at: datetime


# --- customers ---------------------------------------------------------------------------------------


class CustomerBase(StoreModel):
    status: CustomerStatus = Field(
        default=CustomerStatus.ACTIVE, sa_type=_enum_type(CustomerStatus, "status")
    )


class Customer(CustomerBase, table=True):
    """A partner's customer. Erasure keeps the row (member id, status, dates: needed to explain on-chain
    history) and destroys the data key, which leaves `pii_ciphertext` unreadable."""

    __tablename__ = "customers"
    __table_args__ = (
        _length_check("member_id"),
        # a keyed hash of the partner's customer number finds a customer without decrypting every row;
        # NULLs (no reference given) do not collide on either dialect
        sa.UniqueConstraint("partner_id", "external_ref_hmac"),
        # target of the tenant-scoped foreign keys below: a row can only point at its own partner's customer
        sa.UniqueConstraint("partner_id", "member_id"),
        sa.CheckConstraint("(status = 'erased') = (erased_at IS NOT NULL)", name="erased_at_iff_erased"),
    )

    # random, never derived from PII: the same id is the member's key on chain
    member_id: bytes = Field(primary_key=True)
    partner_id: int = Field(foreign_key="partners.id", sa_type=ID_TYPE)
    pii_ciphertext: bytes
    external_ref_hmac: bytes | None = None
    created_at: datetime = Field(default_factory=utcnow)
    erased_at: datetime | None = None


class CustomerPublic(CustomerBase):
    member_id: HexId
    partner_id: int
    created_at: datetime
    erased_at: datetime | None


# --- interactions ------------------------------------------------------------------------------------


class InteractionBase(StoreModel):
    kind: InteractionKind = Field(sa_type=_enum_type(InteractionKind, "kind"))
    # idempotency key from the partner's system (e.g. an invoice number): unique per partner, so a
    # re-import cannot record the same interaction twice
    external_key: str | None = Field(default=None, min_length=1, max_length=200)
    occurred_at: datetime


class InteractionCreate(InteractionBase):
    """What a partner submits. `payload` is plaintext until the vault seals it."""

    member_id: HexId = Field(schema_extra={"pattern": r"^0x[0-9a-fA-F]{64}$"})
    payload: dict[str, Any]


class Interaction(InteractionBase, table=True):
    """One customer interaction and its place in the anchoring pipeline.

    `leaf_hash` is the RFC 6962 leaf hash of an HMAC commitment to the payload; it stays after erasure,
    when `payload_ciphertext` becomes NULL (a tombstone) and the HMAC key is gone with the data key.
    `leaf_index` is the leaf's place in its partner's log (0, 1, 2, ... across every batch) and `proof`
    its inclusion proof against the head its batch anchored: sibling hashes from the leaf up, 32 bytes each.
    Where it stands in anchoring is its batch's status (no batch yet: pending). The row does not repeat
    it: rewriting each ~3 KB row once more per batch, only to copy the batch's status, was half the
    cost of anchoring.
    """

    __tablename__ = "interactions"
    __table_args__ = (
        sa.UniqueConstraint("partner_id", "external_key"),
        sa.UniqueConstraint("batch_id", "leaf_index"),
        sa.ForeignKeyConstraint(["partner_id", "member_id"], ["customers.partner_id", "customers.member_id"]),
        _length_check("leaf_hash"),
        sa.CheckConstraint(f"length(proof) % {HASH_SIZE} = 0", name="proof_length"),
        sa.CheckConstraint("(batch_id IS NULL) = (leaf_index IS NULL)", name="leaf_index_iff_batch"),
        # a batch's leaves; with batch_id IS NULL, the anchoring worker's scan: one partner's leaves not
        # yet in a batch, oldest first
        sa.Index(None, "batch_id", "partner_id", "id"),
        # a member's history, for export, scoring and erasure
        sa.Index(None, "member_id", "occurred_at"),
        # the partner's log in leaf order, for verification (not unique: verification reports duplicates)
        sa.Index(None, "partner_id", "leaf_index"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ID_TYPE)
    partner_id: int = Field(foreign_key="partners.id", sa_type=ID_TYPE)
    member_id: bytes
    payload_ciphertext: bytes | None = None
    leaf_hash: bytes
    batch_id: int | None = Field(default=None, foreign_key="batches.id", sa_type=ID_TYPE)
    leaf_index: int | None = None
    proof: bytes | None = None
    created_at: datetime = Field(default_factory=utcnow)


class InteractionPublic(InteractionBase):
    id: int
    partner_id: int
    member_id: HexId
    leaf_hash: HexId
    batch_id: int | None  # None: not yet in an anchoring batch; else the batch's status says how far it got
    leaf_index: int | None
    created_at: datetime


# --- batches (the anchoring outbox) ------------------------------------------------------------------


class Batch(StoreModel, table=True):
    """Leaves [first_index, first_index + size) appended to one partner's log, and the tree head they
    make: `root` is the log's root at first_index + size leaves, `frontier` its compact range there (what
    the next batch is built from), `consistency` the proof from the previous head that the contract
    checks. Written *before* the anchoring transaction is sent (pending), updated with its hash once
    sent (submitted) and with the on-chain batch id and block once mined (anchored). A crash between two
    steps leaves a row that says what to reconcile."""

    __tablename__ = "batches"
    __table_args__ = (
        _length_check("root"),
        sa.UniqueConstraint("onchain_batch_id"),
        # one log per partner: two batches appended at the same place would fork it
        sa.UniqueConstraint("partner_id", "first_index"),
        sa.CheckConstraint("size > 0", name="size_positive"),
        sa.CheckConstraint("first_index >= 0", name="first_index_nonnegative"),
        sa.CheckConstraint(
            "status = 'pending' OR (tx_hash IS NOT NULL AND submitted_at IS NOT NULL)",
            name="submitted_has_tx",
        ),
        sa.CheckConstraint(
            "status <> 'anchored' OR (onchain_batch_id IS NOT NULL AND block_number IS NOT NULL"
            " AND anchored_at IS NOT NULL)",
            name="anchored_has_block",
        ),
        sa.Index(None, "status", "partner_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ID_TYPE)
    partner_id: int = Field(foreign_key="partners.id", sa_type=ID_TYPE)
    root: bytes
    size: int
    first_index: int = Field(default=0, sa_type=sa.BigInteger)
    frontier: bytes | None = None
    consistency: bytes | None = None
    status: AnchorStatus = Field(default=AnchorStatus.PENDING, sa_type=_enum_type(AnchorStatus, "status"))
    tx_hash: str | None = Field(default=None, max_length=66)
    onchain_batch_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    block_number: int | None = Field(default=None, sa_type=sa.BigInteger)
    created_at: datetime = Field(default_factory=utcnow)
    submitted_at: datetime | None = None
    anchored_at: datetime | None = None


# --- consent, points, erasure ------------------------------------------------------------------------


class ConsentReceipt(StoreModel, table=True):
    """One consent event (ISO/IEC TS 27560 / DPV fields). `receipt_json` is its RFC 8785 canonical JSON
    (ids and vocabulary only, no personal data); `receipt_hash` is what the ConsentRegistry stores."""

    __tablename__ = "consent_receipts"
    __table_args__ = (
        _length_check("receipt_hash"),
        sa.UniqueConstraint("receipt_hash"),
        # "what is this member's consent for this purpose", latest first
        sa.Index(None, "member_id", "purpose", "recorded_at"),
        # the outbox: a partner's receipts not yet mined, oldest first; the receipts of one transaction
        sa.Index(None, "block_number", "partner_id", "id"),
        sa.Index(None, "tx_hash"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ID_TYPE)
    partner_id: int = Field(foreign_key="partners.id", sa_type=ID_TYPE)
    member_id: bytes = Field(foreign_key="customers.member_id")
    purpose: str = Field(max_length=100)
    status: ConsentStatus = Field(sa_type=_enum_type(ConsentStatus, "status"))
    legal_basis: str = Field(max_length=100)
    notice_version: str = Field(max_length=100)
    controller: str = Field(max_length=200)
    collection_method: str = Field(max_length=100)
    expires_at: datetime | None = None
    withdrawal_method: str = Field(max_length=200)
    recorded_at: datetime = Field(default_factory=utcnow)
    receipt_json: str = Field(sa_type=sa.Text)
    receipt_hash: bytes
    tx_hash: str | None = Field(default=None, max_length=66)
    block_number: int | None = Field(default=None, sa_type=sa.BigInteger)


class PointEvent(StoreModel, table=True):
    """A coalition-points earn or redeem by a partner, mirrored from the LoyaltyPoints contract."""

    __tablename__ = "point_events"
    __table_args__ = (
        _length_check("ref"),
        sa.UniqueConstraint("partner_id", "external_key"),
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.Index(None, "member_id", "created_at"),
        # the outbox: a partner's events not yet mined, oldest first; the events of one transaction
        sa.Index(None, "block_number", "partner_id", "id"),
        sa.Index(None, "tx_hash"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ID_TYPE)
    partner_id: int = Field(foreign_key="partners.id", sa_type=ID_TYPE)
    member_id: bytes = Field(foreign_key="customers.member_id")
    kind: PointKind = Field(sa_type=_enum_type(PointKind, "kind"))
    amount: int = Field(sa_type=sa.BigInteger)
    ref: bytes  # the bytes32 reference passed to the contract
    external_key: str | None = Field(default=None, max_length=200)
    tx_hash: str | None = Field(default=None, max_length=66)
    block_number: int | None = Field(default=None, sa_type=sa.BigInteger)
    created_at: datetime = Field(default_factory=utcnow)


class Enrolment(StoreModel, table=True):
    """A customer's enrolment on chain (MemberRegistry): the partner that registered it becomes its home
    partner there, with the customer's own key's address as its signer if it has one. Staged with the
    customer, sent in batches through the outbox."""

    __tablename__ = "enrolments"
    __table_args__ = (
        _length_check("member_id"),
        sa.UniqueConstraint("member_id"),
        # the outbox: a partner's enrolments not yet mined, oldest first; those of one transaction
        sa.Index(None, "block_number", "partner_id", "id"),
        sa.Index(None, "tx_hash"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ID_TYPE)
    partner_id: int = Field(foreign_key="partners.id", sa_type=ID_TYPE)
    member_id: bytes = Field(foreign_key="customers.member_id")
    signer: str | None = Field(default=None, max_length=42)  # checksummed address, or None: no key
    tx_hash: str | None = Field(default=None, max_length=66)
    block_number: int | None = Field(default=None, sa_type=sa.BigInteger)
    created_at: datetime = Field(default_factory=utcnow)


class ErasureReceipt(StoreModel, table=True):
    """Proof that a customer was erased: canonical JSON of what was destroyed (ids and counts), its hash,
    and where that hash sits in the partner's log: leaf `leaf_index` (leaf hash of the receipt hash) of
    batch `anchored_batch_id`, with its inclusion `proof`. At most one per member: a data key can only
    die once."""

    __tablename__ = "erasure_receipts"
    __table_args__ = (
        _length_check("receipt_hash"),
        sa.UniqueConstraint("receipt_hash"),
        sa.UniqueConstraint("member_id"),
        sa.ForeignKeyConstraint(["partner_id", "member_id"], ["customers.partner_id", "customers.member_id"]),
        sa.CheckConstraint("interactions_count >= 0", name="interactions_count_nonnegative"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ID_TYPE)
    partner_id: int = Field(foreign_key="partners.id", sa_type=ID_TYPE)
    member_id: bytes
    erased_at: datetime
    interactions_count: int
    receipt_json: str = Field(sa_type=sa.Text)
    receipt_hash: bytes
    anchored_batch_id: int | None = Field(default=None, foreign_key="batches.id", sa_type=ID_TYPE)
    leaf_index: int | None = Field(default=None, sa_type=sa.BigInteger)
    proof: bytes | None = None


# --- models -------------------------------------------------------------------------------------------


class RegisteredModel(StoreModel, table=True):
    """A fitted model as registered on chain: its canonical bytes (`model_json`, whose SHA-256 is
    `model_hash`), its card (RFC 8785 JSON, `card_hash`) and the root of the leaves it was trained on.
    Holds no personal data: member ids never enter a model or its card."""

    __tablename__ = "models"
    __table_args__ = (
        _length_check("model_hash"),
        _length_check("card_hash"),
        _length_check("training_root"),
        sa.UniqueConstraint("onchain_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ID_TYPE)
    partner_id: int = Field(foreign_key="partners.id", sa_type=ID_TYPE)
    onchain_id: int = Field(sa_type=sa.BigInteger)
    model_hash: bytes
    model_json: str = Field(sa_type=sa.Text)
    card_hash: bytes
    card_json: str = Field(sa_type=sa.Text)
    training_root: bytes
    block_number: int = Field(sa_type=sa.BigInteger)
    created_at: datetime = Field(default_factory=utcnow)


class DecisionRecord(StoreModel, table=True):
    """An automated decision about a member, as logged on chain (DecisionLog): the model, the
    interactions it read (their leaves' root is `input_root`), the score, the action and the reason
    codes, and the full explanation encrypted under the member's data key (`explanation_ciphertext`,
    dropped at erasure) with its keyed commitment. Staged, then sent in batches through the outbox;
    `decision_id` is the chain's number for it once mined."""

    __tablename__ = "decisions"
    __table_args__ = (
        _length_check("member_id"),
        _length_check("input_root"),
        _length_check("reasons"),
        _length_check("explanation_hash"),
        sa.UniqueConstraint("decision_id"),
        sa.CheckConstraint("score_bps BETWEEN 0 AND 10000", name="score_bps_range"),
        sa.Index(None, "member_id"),
        # the outbox: a partner's decisions not yet mined, oldest first; those of one transaction
        sa.Index(None, "block_number", "partner_id", "id"),
        sa.Index(None, "tx_hash"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ID_TYPE)
    partner_id: int = Field(foreign_key="partners.id", sa_type=ID_TYPE)
    member_id: bytes = Field(foreign_key="customers.member_id")
    model_id: int = Field(sa_type=sa.BigInteger)  # the model's on-chain id
    as_of: datetime
    input_ids: str = Field(sa_type=sa.Text)  # JSON list of the interaction ids read, in leaf order
    input_root: bytes
    score_bps: int
    action: str = Field(max_length=32)
    reasons: bytes
    explanation_hash: bytes
    explanation_ciphertext: bytes | None = None
    decision_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    tx_hash: str | None = Field(default=None, max_length=66)
    block_number: int | None = Field(default=None, sa_type=sa.BigInteger)
    created_at: datetime = Field(default_factory=utcnow)


# --- access: partner API keys, sign-in challenges and sessions, idempotent writes, jobs ----------------


class ApiToken(StoreModel, table=True):
    """A partner's API key. Only the key's SHA-256 is kept: the key is 32 random bytes, so a slow hash
    would add nothing but latency to every request. `prefix` is the key's visible part, by which it is
    listed, found and revoked."""

    __tablename__ = "api_tokens"
    __table_args__ = (_length_check("secret_hash"), sa.UniqueConstraint("prefix"))

    id: int | None = Field(default=None, primary_key=True, sa_type=ID_TYPE)
    partner_id: int = Field(foreign_key="partners.id", sa_type=ID_TYPE)
    prefix: str = Field(max_length=16)
    secret_hash: bytes
    scopes: str = Field(sa_type=sa.Text)  # space-separated `resource:action`
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class SignInChallenge(StoreModel, table=True):
    """An EIP-4361 message handed out for one sign-in: its nonce is good once and for a few minutes."""

    __tablename__ = "sign_in_challenges"

    nonce: str = Field(primary_key=True, max_length=32)
    address: str = Field(max_length=42)
    message: str = Field(sa_type=sa.Text)
    expires_at: datetime
    used_at: datetime | None = None


class WebSession(StoreModel, table=True):
    """A signed-in customer, auditor or partner (pages). Only the token's and the CSRF token's SHA-256
    are kept. `signer` is the key that signed in: a session ends when the chain no longer names it."""

    __tablename__ = "web_sessions"
    __table_args__ = (_length_check("token_hash"), sa.UniqueConstraint("token_hash"))

    id: int | None = Field(default=None, primary_key=True, sa_type=ID_TYPE)
    token_hash: bytes
    csrf_hash: bytes
    role: str = Field(max_length=16)
    signer: str | None = Field(default=None, max_length=42)
    member_id: bytes | None = None
    partner_id: int | None = Field(default=None, foreign_key="partners.id", sa_type=ID_TYPE)
    token_id: int | None = Field(default=None, foreign_key="api_tokens.id", sa_type=ID_TYPE)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    ended_at: datetime | None = None


class IdempotentRequest(StoreModel, table=True):
    """A write sent with an `Idempotency-Key`: the request's hash and, once answered, the answer, which
    is replayed for the same key and body. Write answers carry ids and states, never personal data."""

    __tablename__ = "idempotent_requests"
    __table_args__ = (_length_check("request_hash"), sa.UniqueConstraint("credential", "key"))

    id: int | None = Field(default=None, primary_key=True, sa_type=ID_TYPE)
    credential: str = Field(max_length=64)
    key: str = Field(max_length=255)
    request_hash: bytes
    status_code: int | None = None  # None: still being answered
    headers_json: str | None = Field(default=None, sa_type=sa.Text)
    body: bytes | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ConsentRequest(StoreModel, table=True):
    """A consent receipt handed to a customer to sign (its hash is in the typed data she signs), kept
    until she sends the signature back or its deadline passes. Ids and vocabulary only, like receipts."""

    __tablename__ = "consent_requests"
    __table_args__ = (_length_check("receipt_hash"), _length_check("member_id"))

    receipt_hash: bytes = Field(primary_key=True)
    member_id: bytes
    receipt_json: str = Field(sa_type=sa.Text)
    expires_at: datetime


class Job(StoreModel, table=True):
    """Long work started over HTTP (an import, training, scoring everyone, a verification). `runner`
    names the server process that runs it: a job of a process that is gone is reported failed."""

    __tablename__ = "jobs"

    id: str = Field(primary_key=True, max_length=36)
    owner: str = Field(max_length=120)  # the principal that started it, e.g. "partner acme"
    kind: str = Field(max_length=32)
    status: str = Field(max_length=16)  # queued, running, succeeded, failed
    progress: float = 0.0
    message: str = Field(default="", sa_type=sa.Text)
    result_json: str | None = Field(default=None, sa_type=sa.Text)
    error: str | None = Field(default=None, sa_type=sa.Text)
    runner: str = Field(max_length=36)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Invitation(StoreModel, table=True):
    """A one-time code with which a customer who holds no key yet makes one in her browser and binds it
    to her member id (`ledgercrm customer invite`). Only the code's SHA-256 is kept: the code is 24
    random bytes, so a slow hash would add nothing. Good once, until `expires_at`."""

    __tablename__ = "invitations"
    __table_args__ = (
        _length_check("code_hash"),
        _length_check("member_id"),
        sa.UniqueConstraint("code_hash"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ID_TYPE)
    partner_id: int = Field(foreign_key="partners.id", sa_type=ID_TYPE)
    member_id: bytes
    code_hash: bytes
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None


class VerifiedInputs(StoreModel, table=True):
    """What a content check of a member's interactions found, kept so that the next run for the same
    leaves need not decrypt and re-hash them one by one (`api/evidence/inputs.py`): for each interaction
    that verified, its id, a hash of its leaf, payload digest and header, and the event read from its
    document.
    Personal data, so one blob per member encrypted under the member's data key (erasure unlinks it with
    the rest), and only ever used for a row whose leaf the same run proved against the chain and whose
    id, leaf, payload and header are still exactly those it names."""

    __tablename__ = "verified_inputs"
    __table_args__ = (_length_check("member_id"),)

    partner_id: int = Field(foreign_key="partners.id", primary_key=True, sa_type=ID_TYPE)
    member_id: bytes = Field(primary_key=True)
    blob: bytes
    updated_at: datetime = Field(default_factory=utcnow)
