"""One APIRouter per resource; `ROUTERS` is what `create_app` includes, in order."""

from __future__ import annotations

from fastapi import APIRouter

from api.http.routes import (
    audit,
    auth,
    consents,
    customers,
    decisions,
    events,
    evidence,
    governance,
    health,
    imports,
    interactions,
    invitations,
    jobs,
    me,
    members,
    models,
    partners,
    points,
)

ROUTERS: list[APIRouter] = [
    health.router,
    auth.router,
    customers.router,
    interactions.router,
    consents.router,
    points.router,
    decisions.router,
    decisions.disclosure_router,
    models.router,
    evidence.router,
    governance.router,
    members.router,
    imports.router,
    events.router,
    partners.router,
    jobs.router,
    me.router,
    invitations.router,
    audit.router,
]
