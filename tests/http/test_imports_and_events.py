"""An uploaded Online Retail II file imported as a job, and the stream of the chain's events about a
partner's own customers (server-sent events, bounded so that each test ends)."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.http.conftest import Api

PROBLEM = "application/problem+json"
DATA = Path("/work/shared/data/online_retail_II.csv.gz")


def _job(api: Api, started: Any, headers: dict[str, str]) -> dict[str, Any]:
    assert started.status_code == 202, started.text
    api.client.app.state.jobs.wait_idle(timeout=600)  # type: ignore[attr-defined]
    done = api.client.get(started.headers["location"], headers=headers)
    assert done.status_code == 200
    return dict(done.json())


def _events(api: Api, headers: dict[str, str], **params: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """(event, id, data) of each event of a bounded stream."""
    found: list[tuple[str, str, dict[str, Any]]] = []
    asking = headers | {"Accept": "text/event-stream"}
    with api.client.stream("GET", "/v1/events", headers=asking, params=params) as answer:
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in answer.iter_lines():
            if not line:
                if "data" in fields:
                    found.append((fields["event"], fields["id"], json.loads(fields["data"])))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.strip()
    return found


# --- imports ----------------------------------------------------------------------------------------------


def test_an_uploaded_online_retail_file_is_imported_as_a_job(api: Api) -> None:
    if not DATA.exists():
        pytest.skip(f"{DATA} is not on this machine (see /work/shared/data/README.md)")
    with gzip.open(DATA, "rt", newline="") as whole:
        head = "".join(next(whole) for _ in range(60))  # the header and the first invoices
    upload = gzip.compress(head.encode())
    cafe = api.key("cafe")
    started = api.client.post(
        "/v1/imports/online-retail",
        headers=cafe,
        files={"file": ("online_retail_II.csv.gz", io.BytesIO(upload), "application/gzip")},
        data={"purposes": "loyalty"},
    )
    done = _job(api, started, cafe)
    assert done["status"] == "succeeded", done
    report = done["result"]
    assert report["rows_read"] == 59 and report["customers_new"] >= 1 and report["interactions_new"] >= 1
    assert report["consents_recorded"] == report["customers_new"]
    assert not list(api.crm.settings.home.glob("upload-*"))  # the upload is gone once read
    again = _job(
        api,
        api.client.post(
            "/v1/imports/online-retail",
            headers=cafe,
            files={"file": ("again.csv.gz", io.BytesIO(upload), "application/gzip")},
        ),
        cafe,
    )
    assert again["result"]["customers_new"] == 0 and again["result"]["interactions_new"] == 0


def test_a_file_that_is_not_the_data_set_fails_its_job_in_words(api: Api) -> None:
    cafe = api.key("cafe")
    started = api.client.post(
        "/v1/imports/online-retail",
        headers=cafe,
        files={"file": ("notes.csv", io.BytesIO(b"name,colour\nBea,red\n"), "text/csv")},
    )
    done = _job(api, started, cafe)
    assert done["status"] == "failed" and done["error"].startswith("cannot import")
    assert "Traceback" not in done["error"]
    assert not list(api.crm.settings.home.glob("upload-*"))


def test_bad_import_requests_are_refused_before_any_job(api: Api) -> None:
    cafe = api.key("cafe")
    missing = api.client.post("/v1/imports/online-retail", headers=cafe, data={"purposes": "loyalty"})
    assert missing.status_code == 422 and missing.headers["content-type"] == PROBLEM
    # the upload route has its own body limit (200 MiB): a 2 MiB file is read, where JSON routes stop at 1
    big = api.client.post(
        "/v1/imports/online-retail",
        headers=cafe,
        files={"file": ("big.csv", io.BytesIO(b"x" * (2 * 1024 * 1024)), "text/csv")},
    )
    assert big.status_code == 202
    api.client.app.state.jobs.wait_idle(timeout=600)  # type: ignore[attr-defined]
    too_big = api.client.post(
        "/v1/customers/0x" + "00" * 32 + "/interactions",
        headers=cafe,
        json={"kind": "visit", "data": {"x": "y" * (2 * 1024 * 1024)}},
    )
    # 413; its body is the framework's plain "Content Too Large" where the declared Content-Length is
    # over the app's limit (answered outside the app's handlers: see the report of this branch)
    assert too_big.status_code == 413
    unknown = api.client.post(
        "/v1/imports/online-retail",
        headers=cafe,
        files={"file": ("x.csv", io.BytesIO(b"Invoice\n"), "text/csv")},
        data={"purposes": "loyalty,astrology"},
    )
    assert unknown.status_code == 422 and "astrology" in unknown.json()["detail"]
    assert not list(api.crm.settings.home.glob("upload-*"))
    narrow = api.key("cafe", ("customers:write",))
    files = {"file": ("x.csv", io.BytesIO(b"Invoice\n"), "text/csv")}
    refused = api.client.post("/v1/imports/online-retail", headers=narrow, files=files)
    assert refused.status_code == 403 and "imports:write" in refused.json()["detail"]


# --- events -----------------------------------------------------------------------------------------------


def test_the_stream_carries_the_chains_events_about_the_partners_own_customers(api: Api) -> None:
    acme = api.key("acme")
    start = api.crm.coalition.chain.block_number() + 1
    bea = api.customer("acme")
    other = api.customer("borealis")  # not acme's: nothing of it may reach acme's stream
    for who, member in (("acme", bea), ("borealis", other)):
        key = api.key(who)
        api.client.post(
            f"/v1/customers/{member.hex}/consents",
            headers=key,
            json={"purpose": "loyalty", "status": "given"},
        )
        api.client.post(f"/v1/customers/{member.hex}/points/earn", headers=key, json={"amount": 25})
    api.client.post(f"/v1/customers/{bea.hex}/points/redeem", headers=acme, json={"amount": 5})
    assert api.client.delete(f"/v1/customers/{bea.hex}", headers=acme).status_code == 200
    end = api.crm.coalition.chain.block_number()
    found = _events(api, acme, from_block=start, until_block=end)
    assert {data["member"] for _, _, data in found} == {bea.hex}
    kinds = [kind for kind, _, _ in found]
    assert kinds[:3] == ["consent-given", "points-earned", "points-redeemed"]
    assert set(kinds[3:]) == {"consent-withdrawn", "points-forfeited", "erased"}  # erasure reaches the chain
    earned = found[1][2]
    assert earned["partner"] == "acme" and earned["amount"] == 25 and earned["purpose"] is None
    assert found[0][2]["purpose"] == "loyalty"
    # resuming after an event (Last-Event-ID) gives the rest, and max_events ends a stream early
    rest = _events(api, acme | {"Last-Event-ID": found[1][1]}, until_block=end)
    assert [e[1] for e in rest] == [e[1] for e in found[2:]]
    assert len(_events(api, acme, from_block=start, until_block=end, max_events=2)) == 2


def test_a_stream_without_the_scope_or_with_bad_bounds_is_refused(api: Api) -> None:
    narrow = api.key("acme", ("customers:read",))
    answer = api.client.get("/v1/events", headers=narrow, params={"until_block": 1})
    assert answer.status_code == 403 and answer.headers["content-type"] == PROBLEM
    acme = api.key("acme") | {"Accept": "text/event-stream"}
    for params in ({"from_block": -1}, {"until_block": "soon"}, {"max_events": 0}):
        bad = api.client.get("/v1/events", headers=acme, params=params)
        assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
    assert api.client.get("/v1/events", params={"until_block": 1}).status_code == 401
    # a client that did not ask for a stream (one that may never end) is told so, not kept waiting
    plain = api.client.get("/v1/events", headers=api.key("acme"))
    assert plain.status_code == 406 and "text/event-stream" in plain.json()["detail"]


def test_a_key_revoked_while_its_stream_is_open_ends_the_stream(api: Api) -> None:
    from api.principal import Principal
    from api.usecases import access

    issued = access.issue_token(api.crm, Principal.of_partner("acme"))
    headers = {"Authorization": f"Bearer {issued.key}", "Accept": "text/event-stream"}
    with api.client.stream("GET", "/v1/events", headers=headers) as answer:  # no bound: follows the chain
        assert answer.status_code == 200
        access.revoke_token(api.crm, Principal.of_partner("acme"), issued.prefix)
        assert list(answer.iter_lines()) == []  # the next poll finds the key revoked and ends it
