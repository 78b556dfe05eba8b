"""What a partner submits to register a customer, validated without the store's ORM: an import's
reader process builds one per source customer, and loading SQLAlchemy and the store's tables there
(offchain.models, ~0.6 s) would delay the first record by that much. `offchain.models` re-exports it."""

from __future__ import annotations

import re

from pydantic import BaseModel, EmailStr, Field, field_validator
from pydantic_core import PydanticCustomError


class CustomerCreate(BaseModel):
    """What a partner submits to register a customer. Plaintext: lives in memory until the vault seals it
    into `Customer.pii_ciphertext`; it is never a table and never logged."""

    name: str = Field(min_length=1, max_length=200)
    email: EmailStr | None = Field(default=None, max_length=320)  # syntax only: no DNS lookups
    phone: str | None = Field(default=None, max_length=50)
    address: str | None = Field(default=None, max_length=500)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")  # ISO 3166-1 alpha-2
    external_ref: str | None = Field(default=None, max_length=200)  # the partner's own customer number

    @field_validator("country", mode="before")
    @classmethod
    def _country_code(cls, value: object) -> object:
        # the pattern alone would answer with a regular expression; a person needs the rule in words
        if isinstance(value, str) and not re.fullmatch(r"[A-Z]{2}", value):
            raise PydanticCustomError(
                "country_code",
                "a two-letter country code in capitals (ISO 3166-1), such as GB, not '{value}'",
                {"value": value},
            )
        return value
