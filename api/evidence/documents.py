"""The committed document of an interaction: the exact bytes that are sealed and committed to.

It is the RFC 8785 canonical JSON of who, what, when and the data:

    {"data": ..., "externalKey": ..., "kind": ..., "member": "0x...", "occurredAt": ..., "partner": ...,
     "v": 1}

Its layout is stated here once: `header` gives every member but "data", as recording writes them
and as verification expects them of a row; `tail` is how such a document ends, for verification's
fast path.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import Any

from api.errors import InvalidInput
from offchain.canonical import Canonical, CanonicalizationError, canonical_object
from offchain.models import InteractionKind
from offchain.repositories.interactions import InteractionRow

PAYLOAD_FIELD = "interaction"  # the vault's field name (AAD) of the sealed document
DOCUMENT_VERSION = 1


def interaction_kind(kind: InteractionKind | str) -> InteractionKind:
    if type(kind) is InteractionKind:  # already one (every row of an import, twice): no Enum lookup
        return kind
    try:
        return InteractionKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in InteractionKind)
        raise InvalidInput(f"unknown interaction kind {kind!r} (expected one of {known})") from None


def header(
    partner: str, member: bytes, kind: InteractionKind, occurred_at: datetime, external_key: str | None
) -> dict[str, Any]:
    """Every member of the document but "data"."""
    return {
        "v": DOCUMENT_VERSION,
        "partner": partner,
        "member": "0x" + member.hex(),
        "kind": kind.value,
        "occurredAt": occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "externalKey": external_key,
    }


def interaction_document(
    partner: str,
    member: bytes,
    kind: InteractionKind | str,
    data: dict[str, Any] | Canonical,
    occurred_at: datetime,
    external_key: str | None,
) -> bytes:
    """The document's bytes. `data` may come serialized ahead (`Canonical`: imports do it in their
    reader process); then the document is put together from its parts: "data" sorts first (RFC 8785
    orders members by name), the rest is `tail`'s, which a test holds to `header`. An import records
    44,876 of these: building and sorting the object for each cost 0.8 s."""
    kind = interaction_kind(kind)
    if isinstance(data, Canonical):
        try:
            return b'{"data":' + data.json + _tail(partner, member, kind, occurred_at, external_key)
        except UnicodeEncodeError as exc:  # a lone surrogate, which canonical JSON refuses too
            raise InvalidInput(f"interaction is not valid JSON data: {exc}") from exc
    fields = header(partner, member, kind, occurred_at, external_key)
    try:
        return canonical_object(fields | {"data": data})
    except (CanonicalizationError, ValueError) as exc:
        raise InvalidInput(f"interaction is not valid JSON data: {exc}") from exc


def row_header(partner: str, row: InteractionRow) -> dict[str, Any]:
    """The header a row's document must have (the row repeats member, kind, time and external key)."""
    return header(partner, row.member_id, row.kind, row.occurred_at, row.external_key)


def disagreement(partner: str, row: InteractionRow, document: dict[str, object]) -> str | None:
    """The first header member in which a parsed document and its row differ, or None."""
    for name, value in row_header(partner, row).items():
        if name != "partner" and name != "v" and document.get(name) != value:
            return name
    return None


def tail(partner: str, row: InteractionRow) -> bytes:
    """How the canonical document of `row` ends: every header member (RFC 8785 sorts the keys, and
    "data" comes first, so these are all the members after it), with the values the row says.

    If an authenticated document (it decrypted, and its HMAC is the leaf hash) ends with these bytes,
    parsing it would find exactly these values: the tail starts with a comma followed by a quote and a
    letter, which cannot be inside a JSON string, so it is the document's own top-level members, the
    last ones (which win over any duplicate). So `disagreement` would find nothing. When the tail
    differs in any way, even just in how a string is escaped, the document is parsed after all; this
    only decides how fast an agreeing row is found to agree.

    The kind (an enum value), the member (hex) and the ISO time never hold a character JSON escapes,
    so only the external key and the partner go through the encoder (a test holds this function to
    `header`)."""
    return _tail(partner, row.member_id, row.kind, row.occurred_at, row.external_key)


def _tail(
    partner: str, member: bytes, kind: InteractionKind, occurred_at: datetime, external_key: str | None
) -> bytes:
    occurred = occurred_at.astimezone(UTC).isoformat(timespec="microseconds")
    # the encoder `json.dumps(..., ensure_ascii=False)` uses for a str, without making one per call
    external = "null" if external_key is None else _encode_string(external_key)
    return (
        f',"externalKey":{external},"kind":"{kind.value}","member":"0x{member.hex()}"'
        f',"occurredAt":"{occurred}","partner":{_json_string(partner)},"v":{DOCUMENT_VERSION}}}'
    ).encode()


_encode_string = json.encoder.encode_basestring


@functools.cache
def _json_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)
