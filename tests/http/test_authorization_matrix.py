"""Every route of the app x every kind of caller x (own object, another's object): who gets in, who is
refused and how. Generated from the app's OpenAPI document (which FastAPI builds from every route, with
each route's `x-role` and `x-scope`), so a new route is checked the day it is added; a path parameter
the matrix does not know, or a route that declares no role, fails the test until it is taught one."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.http.conftest import Api, Customer


@dataclass
class World:
    callers: dict[str, dict[str, str]]  # caller name -> headers
    own: dict[str, str]  # path parameter -> value of an object partner A / customer X owns
    other: dict[str, str]  # the same, owned by partner B / customer Y


@pytest.fixture(scope="module")
def world(api: Api) -> World:
    a_member: Customer = api.customer("acme", name="Matrix Own")
    b_member: Customer = api.customer("borealis", name="Matrix Other")
    x = api.customer("acme", name="Xena Keyed", keyed=True)
    y = api.customer("acme", name="Yves Keyed", keyed=True)
    assert x.key is not None and y.key is not None
    acme = api.key("acme")
    borealis = api.key("borealis")
    started = api.client.post("/v1/verifications", headers=acme)
    job = started.headers.get("location", "/v1/jobs/none").rsplit("/", 1)[-1]
    return World(
        callers={
            "nobody": {},
            "partner A": acme,
            "partner B": borealis,
            "partner A, too few scopes": api.key("acme", ("events:read",)),
            "customer X": api.bearer(x.key),
            "customer Y": api.bearer(y.key),
            "auditor": api.bearer(api.auditor),
        },
        own={"member": a_member.hex, "job_id": job},
        other={"member": b_member.hex, "job_id": job},
    )


# values for path parameters that name no owned object (ids the chain or store may or may not hold)
NEUTRAL = {
    "decision_id": "0",
    "proposal_id": "0",
    "model_id": "0",
    "purpose": "loyalty",
    "prefix": "abcdefgh",
    "partner": "acme",
    "leaf_index": "0",
}


ANY_PARTNERS_MEMBER = {"/v1/members/{member}/votes"}


def routes(api: Api) -> list[tuple[str, str, dict[str, Any]]]:
    paths = api.client.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), path, operation)
        for path, operations in paths.items()
        if path.startswith("/v1")
        for method, operation in operations.items()
        # signing out ends the very sessions the matrix signs in with: tested in test_auth.py
        if path != "/v1/auth/logout"
    ]


def fill(path: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in values:
            return values[name]
        if name in NEUTRAL:
            return NEUTRAL[name]
        raise AssertionError(f"the authorization matrix has no value for path parameter {{{name}}} of {path}")

    return re.sub(r"\{(\w+)(?::\w+)?\}", one, path)


def expect(path: str, operation: dict[str, Any], caller: str, whose: str) -> Callable[[int], bool]:
    """What `caller` must get from `route` on an object that is `whose` ("own": partner A's or customer
    X's; "other": partner B's or customer Y's)."""
    role, scope = operation.get("x-role"), operation.get("x-scope")
    assert role is not None, f"{path} declares no x-role: use needs(scope) or role(...)"
    if role == "public":
        return lambda status: status not in (401, 403) and status < 500
    if caller == "nobody":
        return lambda status: status == 401
    if role == "any":
        return lambda status: status not in (401, 403) and status < 500
    wanted = {
        "partner": ("partner A", "partner B", "partner A, too few scopes"),
        "customer": ("customer X", "customer Y"),
        "auditor": ("auditor",),
    }[role]
    if caller not in wanted:
        return lambda status: status == 403
    if caller == "partner A, too few scopes" and scope != "events:read":
        return lambda status: status == 403
    # a vote on a member is for any partner to cast, whoever holds her record (her home left, or she lost
    # her key): the member's id and the tally are public on chain, so there is nothing to hide by a 404
    has_member = "{member}" in path and path not in ANY_PARTNERS_MEMBER
    if caller == "partner B" and has_member and whose == "own":
        return lambda status: status == 404  # A's member, asked for by B: as if it did not exist
    if caller == "partner A" and has_member and whose == "other":
        return lambda status: status == 404
    if "{job_id}" in path and caller != "partner A":
        return lambda status: status == 404  # a job is seen only by whoever started it
    return lambda status: status not in (401, 403) and status < 500


def test_every_route_admits_only_its_principals_and_never_leaks(api: Api, world: World) -> None:
    failures = []
    checked = 0
    for method, path, operation in routes(api):
        for caller, headers in world.callers.items():
            for whose, values in (("own", world.own), ("other", world.other)):
                url = fill(path, values)
                answer = api.client.request(
                    method, url, headers=headers, json={} if method != "GET" else None
                )
                checked += 1
                if not expect(path, operation, caller, whose)(answer.status_code):
                    failures.append(
                        f"{method} {url} as {caller} ({whose}): {answer.status_code} {answer.text[:120]}"
                    )
                if answer.status_code >= 400:
                    assert answer.headers["content-type"] == "application/problem+json", (method, url)
    assert checked > 0
    assert not failures, "\n".join(failures)
