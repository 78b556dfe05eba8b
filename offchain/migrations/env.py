"""Alembic environment for the off-chain store.

Runs on the connection that `offchain.db.migrate` passes in; from the command line it connects to the URL
given as ``-x url=...`` or in ``LEDGERCRM_DATABASE_URL``, e.g.::

    LEDGERCRM_DATABASE_URL=sqlite:///.ledgercrm/data.sqlite \\
        .venv/bin/alembic -c offchain/alembic.ini revision --autogenerate --rev-id 0002_... -m "..."
"""

from __future__ import annotations

import os
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from offchain.db import make_engine
from offchain.models import metadata


def _render_item(type_: str, obj: Any, _context: AutogenContext) -> str | Literal[False]:
    # Render SQLModel's column types as the plain SQLAlchemy types they compile to, so that revisions
    # do not depend on sqlmodel internals (and compare equal: Alembic compares the compiled DDL types).
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("LEDGERCRM_DATABASE_URL")
    if not url:
        raise SystemExit("no database: pass -x url=... or set LEDGERCRM_DATABASE_URL")
    return url


def run() -> None:
    if context.is_offline_mode():
        raise SystemExit("offline (--sql) migrations are not supported: run against a database")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


run()
