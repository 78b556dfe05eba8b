"""Models, scores and decisions over HTTP, as jobs where the work is long: cafe (its synthetic customers
imported) trains and registers a model (a job) and scores them all (a job); then it reads its decisions
and discloses one, while acme, another partner, finds none of them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from api.http.idempotency import REPLAYED
from api.principal import Principal
from api.usecases.imports import import_synthetic
from offchain.repositories import customers
from tests.http.conftest import Api, open_api

PROBLEM = "application/problem+json"


def _job(api: Api, started: Any, headers: dict[str, str]) -> dict[str, Any]:
    """The finished job a 202 answer started."""
    assert started.status_code == 202, started.text
    location = started.headers["location"]
    assert location == f"/v1/jobs/{started.json()['job']}"
    api.client.app.state.jobs.wait_idle(timeout=600)  # type: ignore[attr-defined]
    done = api.client.get(location, headers=headers)
    assert done.status_code == 200
    return dict(done.json())


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """An API of its own, anchoring 512 leaves a batch: decisions are looked up in the chain's event
    log, which eth-tester reads block by block, so a short chain keeps each lookup quick."""
    with open_api(tmp_path_factory.mktemp("decisions"), batch_max_leaves=512) as opened:
        yield opened


@pytest.fixture(scope="module")
def cafe(api: Api) -> dict[str, Any]:
    """cafe's customers imported, a model trained on them (a job), every customer with profiling
    consent scored (a job)."""
    headers = api.key("cafe")
    imported = import_synthetic(
        api.crm,
        Principal.of_partner("cafe"),
        seed=5,
        customers=200,
        interactions=2500,
        purposes=["loyalty", "profiling"],
        in_process=True,
    )
    assert imported.customers_new == 200
    trained = _job(
        api,
        api.client.post(
            "/v1/models",
            headers=headers,
            json={"horizon_days": 90, "as_of": "2024-09-01T00:00:00Z", "backtest": False},
        ),
        headers,
    )
    assert trained["status"] == "succeeded", trained
    model_id = trained["result"]["model_id"]
    scored = _job(
        api,
        api.client.post(
            "/v1/scores",
            headers=headers,
            json={"all": True, "model": model_id, "as_of": "2024-12-01T00:00:00Z"},
        ),
        headers,
    )
    assert scored["status"] == "succeeded", scored
    assert scored["result"]["decided"] > 0
    with api.crm.unit_of_work() as db:
        members = [c.member_id for c in customers.of_partner(db, api.crm.partner(db, "cafe").id)]
    return {"headers": headers, "model": trained["result"], "score": scored["result"], "members": members}


def test_models_are_listed_checked_against_the_chain_with_their_cards(api: Api, cafe: dict[str, Any]) -> None:
    model = cafe["model"]
    listed = api.client.get("/v1/models", headers=cafe["headers"]).json()
    (mine,) = [m for m in listed if m["model_id"] == model["model_id"]]
    assert (
        mine["partner"] == "cafe" and mine["on_chain"] is True and mine["model_hash"] == model["model_hash"]
    )
    card = api.client.get(f"/v1/models/{model['model_id']}/card", headers=cafe["headers"])
    assert card.status_code == 200 and "metrics" in card.json()
    assert api.client.get("/v1/models/999999/card", headers=cafe["headers"]).status_code == 404
    assert api.client.get("/v1/models/-1/card", headers=cafe["headers"]).status_code == 422


def test_decisions_are_listed_and_shown_with_reasons_and_counterfactual(
    api: Api, cafe: dict[str, Any]
) -> None:
    headers = cafe["headers"]
    lines = api.client.get("/v1/decisions", headers=headers).json()
    assert [line["decision_id"] for line in lines][-len(cafe["score"]["decision_ids"]) :] == cafe["score"][
        "decision_ids"
    ]
    first = lines[-1]
    assert first["in_store"] is True
    of_member = api.client.get("/v1/decisions", headers=headers, params={"member": first["member"]}).json()
    assert [d["decision_id"] for d in of_member] == [first["decision_id"]]
    nested = api.client.get(f"/v1/customers/{first['member']}/decisions", headers=headers).json()
    assert nested == of_member
    shown = api.client.get(f"/v1/decisions/{first['decision_id']}", headers=headers)
    assert shown.status_code == 200
    body = shown.json()
    assert body["score_bps"] == first["score_bps"] and body["action"] == first["action"]
    assert body["reasons"] and {"feature", "meaning", "direction"} <= set(body["reasons"][0])
    assert "counterfactual" in body and body["explanation"]["scoreBps"] == body["score_bps"]


def test_a_disclosure_is_answered_but_never_kept_for_a_replay(api: Api, cafe: dict[str, Any]) -> None:
    headers = cafe["headers"] | {"Idempotency-Key": "disclose-" + os.urandom(4).hex()}
    decision_id = cafe["score"]["decision_ids"][0]
    first = api.client.post(f"/v1/decisions/{decision_id}/disclosure", headers=headers)
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    assert first.json()["decisionId"] == decision_id and first.json()["key"].startswith("0x")
    again = api.client.post(f"/v1/decisions/{decision_id}/disclosure", headers=headers)
    assert again.status_code == 200 and REPLAYED.lower() not in {k.lower() for k in again.headers}
    for path in api.crm.settings.home.glob("*.sqlite*"):  # the explanation is nowhere in clear
        assert first.json()["explanation"].encode()[:60] not in path.read_bytes()


def test_another_partner_finds_none_of_its_decisions(api: Api, cafe: dict[str, Any]) -> None:
    acme = api.key("acme")
    decision_id = cafe["score"]["decision_ids"][0]
    member = "0x" + cafe["members"][0].hex()
    unknown = "0x" + os.urandom(32).hex()
    for path in (f"/v1/decisions/{decision_id}", f"/v1/customers/{member}/decisions"):
        answer = api.client.get(path, headers=acme)
        assert answer.status_code == 404 and answer.headers["content-type"] == PROBLEM
    assert api.client.get(f"/v1/customers/{unknown}/decisions", headers=acme).status_code == 404
    assert api.client.post(f"/v1/decisions/{decision_id}/disclosure", headers=acme).status_code == 404
    assert api.client.get("/v1/decisions", headers=acme, params={"member": member}).status_code == 404
    theirs = api.client.post("/v1/scores", headers=acme, json={"member": member})
    nobody = api.client.post("/v1/scores", headers=acme, json={"member": unknown})
    assert theirs.status_code == nobody.status_code == 404  # refused at once: no job is started
    assert theirs.json()["detail"].replace(member, "?") == nobody.json()["detail"].replace(unknown, "?")


def test_bad_score_requests_are_422_problems(api: Api, cafe: dict[str, Any]) -> None:
    headers = cafe["headers"]
    member = "0x" + cafe["members"][0].hex()
    for body in (
        {},
        {"all": True, "member": member},
        {"member": "0x12"},
        {"all": True, "as_of": "2024-12-01"},
        {"all": True, "model": -1},
        {"all": True, "extra": 1},
    ):
        answer = api.client.post("/v1/scores", headers=headers, json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.headers["content-type"] == PROBLEM
    not_mine = api.client.post("/v1/scores", headers=api.key("borealis"), json={"all": True})
    assert not_mine.status_code == 422 and "registered no model" in not_mine.json()["detail"]


def test_a_member_who_withdrew_profiling_is_skipped(api: Api, cafe: dict[str, Any]) -> None:
    member = cafe["members"][-1]
    withdrawn = api.client.post(
        f"/v1/customers/0x{member.hex()}/consents",
        headers=cafe["headers"],
        json={"purpose": "profiling", "status": "withdrawn"},
    )
    assert withdrawn.status_code == 201, withdrawn.text
    scored = _job(
        api,
        api.client.post("/v1/scores", headers=cafe["headers"], json={"member": "0x" + member.hex()}),
        cafe["headers"],
    )
    assert scored["status"] == "succeeded" and scored["result"]["skipped_for_consent"] == 1
    assert scored["result"]["decided"] == 0
    # a recommendation is profiling too: refused for her, in words; given to one who consents
    refused = api.client.get(f"/v1/customers/0x{member.hex()}/recommendations", headers=cafe["headers"])
    assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"
    assert "no valid profiling consent" in refused.json()["detail"]
    given = api.client.get(
        f"/v1/customers/0x{cafe['members'][0].hex()}/recommendations?top=3", headers=cafe["headers"]
    )
    assert given.status_code == 200 and 0 < len(given.json()["items"]) <= 3, given.text


def test_segments_of_verified_interactions(api: Api, cafe: dict[str, Any]) -> None:
    answer = api.client.get("/v1/segments", headers=cafe["headers"], params={"as_of": "2024-12-01T00:00:00Z"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert sum(s["members"] for s in body["segments"]) > 12 and body["kmeans"]["ks"]
    assert body["without_consent"] == 1  # the one who withdrew profiling consent above
    assert (
        api.client.get("/v1/segments", headers=cafe["headers"], params={"as_of": "2024-12-01"}).status_code
        == 422
    )
