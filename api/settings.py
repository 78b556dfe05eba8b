"""One settings object for the whole application, read from the environment (prefix LEDGERCRM_)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from offchain.db import default_url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGERCRM_", extra="ignore")

    # "development" allows the deterministic development KEKs; anything else refuses them
    environment: Literal["development", "production"] = "development"
    home: Path = Path(".ledgercrm")
    # SQLAlchemy URLs; default: SQLite files under `home`, data and keys in separate files
    database_url: str | None = None
    keystore_url: str | None = None
    # anchoring outbox: a batch is due when this many leaves wait, or the oldest waited this long
    batch_max_leaves: int = 1000
    batch_max_age_seconds: float = 60.0
    # HTTP: requests per credential (or per client address before sign-in), in the `limits` notation
    http_rate_limit: str = "1200/minute"

    @property
    def development(self) -> bool:
        return self.environment == "development"

    def data_url(self) -> str:
        return self.database_url or default_url(self.home)

    def keys_location(self) -> str:
        return self.keystore_url or str(self.home / "keys.sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
