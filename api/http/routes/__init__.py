"""One APIRouter per resource; `ROUTERS` is what `create_app` includes, in order."""

from __future__ import annotations

from fastapi import APIRouter

from api.http.routes import audit, auth, customers, health, jobs, me, partners

ROUTERS: list[APIRouter] = [
    health.router,
    auth.router,
    customers.router,
    partners.router,
    jobs.router,
    me.router,
    audit.router,
]
