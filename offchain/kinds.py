"""Enumerations the store shares with code that must not load it: an import's reader process parses a
file and tags each record with its kind, and loading SQLAlchemy and the store's tables there (offchain
.models, ~0.6 s) would delay the first record by that much. `offchain.models` stores them."""

from __future__ import annotations

import enum


class InteractionKind(enum.StrEnum):
    PURCHASE = "purchase"
    RETURN = "return"
    SUPPORT_TICKET = "support_ticket"
    EMAIL = "email"
    VISIT = "visit"
    # a change of the customer's personal data: its document commits to the changed fields' new values
    # (sealed and keyed like any interaction's), so an auditor can prove when a record changed, not how
    RECORD_UPDATE = "record_update"
