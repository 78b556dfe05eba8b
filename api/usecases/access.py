"""Who may call the HTTP API: partners' API keys, and sign-in with an Ethereum key (EIP-4361) for
customers and auditors, whose role the chain decides.

An API key is `lcrm_<prefix>_<secret>`: the prefix is public (listed, revoked by), the secret is 32
random bytes of which only the SHA-256 is stored. A session token is the same kind of secret. Sign-in
messages are made here and kept with their nonce: the signed message must be the very text that was
handed out, so every field (domain, address, chain, issue and expiry times) is checked by equality.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_address, to_checksum_address
from sqlalchemy.exc import OperationalError

from api.context import Crm
from api.errors import InvalidInput, MalformedInput, NotAllowed, NotFound, Unauthenticated
from api.principal import Principal, Role
from offchain.models import ApiToken, SignInChallenge, WebSession
from offchain.repositories import enrolments, partners, sessions, tokens

# What a partner's key may do, `resource:action`; a key is issued with all of them unless narrowed.
SCOPES: tuple[str, ...] = (
    "customers:read",
    "customers:write",
    "interactions:read",
    "interactions:write",
    "consent:read",
    "consent:write",
    "points:read",
    "points:write",
    "anchoring:write",
    "verification:read",
    "governance:read",
    "governance:write",
    "models:read",
    "models:write",
    "decisions:read",
    "decisions:write",
    "imports:write",
    "events:read",
)
KEY_PREFIX = "lcrm"
CHALLENGE_LIFETIME = timedelta(minutes=5)
SESSION_LIFETIME = timedelta(hours=8)
LAST_USED_GRANULARITY = timedelta(minutes=1)  # a read per request, a write at most once a minute
_DURATION = re.compile(r"^(\d{1,5})([mhd])$")
_KEY = re.compile(r"^lcrm_([a-z0-9]{8})_([A-Za-z0-9_-]{43})$")
_NONCE = re.compile(r"^Nonce: ([A-Za-z0-9]{8,32})$", re.MULTILINE)


def _sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h` or `90m`."""
    found = _DURATION.match(text.strip())
    if found is None or int(found.group(1)) == 0:
        raise MalformedInput(f"a duration is a number and m, h or d, e.g. 30d, not {text!r}")
    count, unit = int(found.group(1)), found.group(2)
    return {"m": timedelta(minutes=count), "h": timedelta(hours=count), "d": timedelta(days=count)}[unit]


def check_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise MalformedInput(f"unknown scope {unknown[0]!r}: the scopes are {', '.join(SCOPES)}")
    return tuple(dict.fromkeys(scopes)) or SCOPES


# --- API keys ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    key: str  # shown once
    prefix: str
    scopes: tuple[str, ...]
    expires_at: datetime | None


@dataclass(frozen=True)
class TokenLine:
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


def issue_token(
    crm: Crm, who: Principal, scopes: Sequence[str] = (), expires_in: timedelta | None = None
) -> IssuedToken:
    """A new API key for the acting partner, with `scopes` (default: all of them)."""
    partner_name = who.acting_partner()
    chosen = check_scopes(scopes)
    now = datetime.now(UTC)
    expires_at = now + expires_in if expires_in is not None else None
    secret = secrets.token_urlsafe(32)
    with crm.unit_of_work(writes=True) as db:
        partner = crm.partner(db, partner_name)
        while True:  # 36**8 prefixes: a clash is rare, and then the next draw serves
            prefix = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))
            if tokens.by_prefix(db, prefix) is None:
                break
        tokens.add(
            db,
            ApiToken(
                partner_id=partner.id,
                prefix=prefix,
                secret_hash=_sha256(secret),
                scopes=" ".join(chosen),
                created_at=now,
                expires_at=expires_at,
            ),
        )
    return IssuedToken(f"{KEY_PREFIX}_{prefix}_{secret}", prefix, chosen, expires_at)


def list_tokens(crm: Crm, who: Principal) -> list[TokenLine]:
    with crm.unit_of_work() as db:
        partner = crm.partner(db, who.acting_partner())
        return [
            TokenLine(
                t.prefix,
                tuple(t.scopes.split()),
                t.created_at,
                t.expires_at,
                t.last_used_at,
                t.revoked_at,
            )
            for t in tokens.of_partner(db, partner.id)
        ]


def revoke_token(crm: Crm, who: Principal, prefix: str) -> None:
    """Revoke the key `prefix` of a partner in `who`'s scope; at once, for every request after."""
    prefix = prefix.removeprefix(f"{KEY_PREFIX}_").split("_")[0]
    with crm.unit_of_work(writes=True) as db:
        token = tokens.by_prefix(db, prefix)
        partner = None if token is None else partners.by_id(db, token.partner_id)
        if token is None or partner is None or not who.partners_in_scope([partner.name]):
            raise NotFound(f"no API key {prefix!r}")
        if token.revoked_at is not None:
            raise InvalidInput(f"the API key {prefix!r} was revoked already")
        tokens.revoke(db, prefix, datetime.now(UTC))


def _token_principal(crm: Crm, token: ApiToken) -> Principal:
    with crm.unit_of_work() as db:
        partner = partners.by_id(db, token.partner_id)
    assert partner is not None  # a key's partner row is never deleted
    return Principal.of_partner(partner.name, scopes=frozenset(token.scopes.split()))


def authenticate_key(crm: Crm, key: str, *, now: datetime | None = None) -> tuple[Principal, str]:
    """The partner an API key acts for (with its scopes) and the key's prefix; Unauthenticated for a
    key that is malformed, unknown, revoked or expired (one answer for all: no probing)."""
    now = now or datetime.now(UTC)
    found = _KEY.match(key)
    if found is None:
        raise Unauthenticated("that API key is not valid")
    prefix, secret = found.groups()
    with crm.unit_of_work() as db:
        token = tokens.by_prefix(db, prefix)
        if (
            token is None
            or not hmac.compare_digest(token.secret_hash, _sha256(secret))
            or token.revoked_at is not None
            or (token.expires_at is not None and _aware(token.expires_at) <= now)
        ):
            raise Unauthenticated("that API key is not valid (unknown, revoked or expired)")
        assert token.id is not None
        stale = token.last_used_at is None or _aware(token.last_used_at) < now - LAST_USED_GRANULARITY
    if stale:
        _touch(crm, token.id, now)
    return _token_principal(crm, token), prefix


def _touch(crm: Crm, token_id: int, now: datetime) -> None:
    """Note when a key was last used: its own short transaction, and skipped while another writer holds
    the store (a read must never fail for a timestamp kept to the minute)."""
    try:
        with crm.unit_of_work() as db:
            tokens.touch(db, token_id, now)
    except OperationalError:
        pass


def _aware(when: datetime) -> datetime:
    # SQLite hands back naive datetimes for what was written as UTC
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


# --- sign-in with an Ethereum key (EIP-4361) ------------------------------------------------------------


def sign_in_challenge(crm: Crm, address: str, *, domain: str, uri: str) -> str:
    """The EIP-4361 message `address` is to sign to open a session here; good once, for a few minutes."""
    if not isinstance(address, str) or not is_address(address):
        raise MalformedInput("address: an Ethereum address is 0x followed by 40 hex digits")
    now = datetime.now(UTC).replace(microsecond=0)
    nonce = secrets.token_hex(16)
    expires = now + CHALLENGE_LIFETIME
    message = (
        f"{domain} wants you to sign in with your Ethereum account:\n"
        f"{to_checksum_address(address)}\n\n"
        "Sign in to ledgercrm with your own key, as a member of the coalition or as its auditor.\n\n"
        f"URI: {uri}\n"
        "Version: 1\n"
        f"Chain ID: {crm.coalition.chain.chain_id}\n"
        f"Nonce: {nonce}\n"
        f"Issued At: {now.isoformat().replace('+00:00', 'Z')}\n"
        f"Expiration Time: {expires.isoformat().replace('+00:00', 'Z')}"
    )
    with crm.unit_of_work() as db:
        sessions.forget_challenges_before(db, now - timedelta(hours=1))
        sessions.add_challenge(
            db,
            SignInChallenge(
                nonce=nonce, address=to_checksum_address(address), message=message, expires_at=expires
            ),
        )
    return message


@dataclass(frozen=True)
class OpenedSession:
    token: str  # shown once: the bearer token, and the session cookie's value
    csrf_token: str
    role: Role
    member: bytes | None
    partner: str | None
    expires_at: datetime


def sign_in(crm: Crm, message: str, signature: str) -> OpenedSession:
    """Open a session for whoever signed `message` (a challenge handed out here): an auditor of the
    Consortium, or the current key of a member this store enrolled. The chain decides the role."""
    found = _NONCE.search(message) if isinstance(message, str) else None
    if found is None:
        raise Unauthenticated("that is not a sign-in message from this server: ask for a new challenge")
    now = datetime.now(UTC)
    with crm.unit_of_work() as db:
        challenge = sessions.use_challenge(db, found.group(1), now)
        expected = None if challenge is None else (challenge.message, challenge.address)
    if expected is None:
        raise Unauthenticated("that sign-in challenge is unknown, used or expired: ask for a new one")
    if message != expected[0]:
        raise Unauthenticated("the signed message is not the challenge that was handed out")
    try:
        signer = Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception:  # eth-account raises several types for a malformed signature; all mean "not valid"
        raise Unauthenticated("that signature is not valid") from None
    if signer != expected[1]:
        raise Unauthenticated("the message was not signed by the address it names")
    return _open(crm, signer, now)


def _open(crm: Crm, signer: str, now: datetime) -> OpenedSession:
    member: bytes | None = None
    if crm.coalition.consortium.is_auditor(signer):
        role = Role.AUDITOR
    else:
        with crm.unit_of_work() as db:
            candidates = enrolments.members_of_signer(db, signer)
        member = next((m for m in candidates if _holds(crm, m, signer)), None)
        if member is None:
            raise NotAllowed(
                f"{signer} is neither an auditor of the consortium nor the key of a member enrolled here"
            )
        role = Role.CUSTOMER
    return _new_session(crm, role, now, signer=signer, member=member)


def _holds(crm: Crm, member: bytes, signer: str) -> bool:
    info = crm.coalition.members.member(member)
    return info.signer == signer and not info.erased


def partner_session(crm: Crm, api_key: str) -> OpenedSession:
    """A cookie session for the partner an API key acts for (the partner's pages sign in this way); it
    lasts while the key does."""
    principal, prefix = authenticate_key(crm, api_key)
    now = datetime.now(UTC)
    with crm.unit_of_work() as db:
        token = tokens.by_prefix(db, prefix)
        assert token is not None and token.id is not None
        token_id, expires = token.id, token.expires_at
    lifetime = now + SESSION_LIFETIME
    ends = min(lifetime, _aware(expires)) if expires is not None else lifetime
    return _new_session(crm, Role.PARTNER, now, partner=principal.partner, token_id=token_id, until=ends)


def _new_session(
    crm: Crm,
    role: Role,
    now: datetime,
    *,
    signer: str | None = None,
    member: bytes | None = None,
    partner: str | None = None,
    token_id: int | None = None,
    until: datetime | None = None,
) -> OpenedSession:
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = until or now + SESSION_LIFETIME
    with crm.unit_of_work() as db:
        partner_id = None if partner is None else crm.partner(db, partner).id
        sessions.add(
            db,
            WebSession(
                token_hash=_sha256(token),
                csrf_hash=_sha256(csrf),
                role=role.value,
                signer=signer,
                member_id=member,
                partner_id=partner_id,
                token_id=token_id,
                created_at=now,
                expires_at=expires,
            ),
        )
    return OpenedSession(token, csrf, role, member, partner, expires)


@dataclass(frozen=True)
class SessionPrincipal:
    principal: Principal
    session_id: int
    csrf_hash: bytes


def authenticate_session(crm: Crm, token: str) -> SessionPrincipal:
    """Who a session token signs in; Unauthenticated once it ended, expired, its partner key was revoked,
    or the chain no longer names its key (the member's key changed or was reset, the auditor removed)."""
    now = datetime.now(UTC)
    with crm.unit_of_work() as db:
        row = sessions.by_token_hash(db, _sha256(token))
        if row is None or row.ended_at is not None or _aware(row.expires_at) <= now:
            raise Unauthenticated("the session has ended: sign in again")
        assert row.id is not None
        token_row = None if row.token_id is None else tokens.get(db, row.token_id)
        partner = None if row.partner_id is None else partners.by_id(db, row.partner_id)
        partner_name = None if partner is None else partner.name
    role = Role(row.role)
    principal: Principal
    if role is Role.PARTNER:
        if (
            token_row is None
            or token_row.revoked_at is not None
            or (token_row.expires_at is not None and _aware(token_row.expires_at) <= now)
            or partner_name is None
        ):
            raise Unauthenticated("the API key this session was opened with is no longer valid")
        principal = Principal.of_partner(partner_name, scopes=frozenset(token_row.scopes.split()))
    elif role is Role.AUDITOR:
        assert row.signer is not None
        if not crm.coalition.consortium.is_auditor(row.signer):
            _end(crm, row.id)
            raise Unauthenticated("this key is no longer an auditor of the consortium")
        principal = Principal.of_auditor(row.signer)
    else:
        assert row.member_id is not None and row.signer is not None
        if not _holds(crm, row.member_id, row.signer):
            _end(crm, row.id)
            raise Unauthenticated("the member's key changed on chain since this session began: sign in again")
        principal = Principal.of_customer(row.member_id, signer=row.signer)
    return SessionPrincipal(principal, row.id, row.csrf_hash)


def csrf_matches(session: SessionPrincipal, csrf_token: str | None) -> bool:
    return csrf_token is not None and hmac.compare_digest(session.csrf_hash, _sha256(csrf_token))


def _end(crm: Crm, session_id: int) -> None:
    """End a session the chain no longer backs; found again on its next use if the store is busy now."""
    try:
        with crm.unit_of_work() as db:
            sessions.end(db, session_id, datetime.now(UTC))
    except OperationalError:
        pass


def sign_out(crm: Crm, token: str) -> None:
    with crm.unit_of_work() as db:
        row = sessions.by_token_hash(db, _sha256(token))
        if row is not None and row.id is not None:
            sessions.end(db, row.id, datetime.now(UTC))
