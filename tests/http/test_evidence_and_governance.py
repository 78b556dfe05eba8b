"""Anchoring now, verification (a job), reconciliation, and consortium governance over HTTP."""

from __future__ import annotations

from typing import Any

from eth_account import Account

from tests.http.conftest import Api

PROBLEM = "application/problem+json"


def _job(api: Api, started: Any, headers: dict[str, str]) -> dict[str, Any]:
    assert started.status_code == 202, started.text
    api.client.app.state.jobs.wait_idle(timeout=600)  # type: ignore[attr-defined]
    done = api.client.get(started.headers["location"], headers=headers)
    assert done.status_code == 200
    return dict(done.json())


def test_anchor_flushes_the_partners_pending_interactions(api: Api) -> None:
    bea = api.customer("borealis")
    borealis = api.key("borealis")
    added = api.client.post(
        f"/v1/customers/{bea.hex}/interactions", headers=borealis, json={"kind": "visit", "data": {"n": 1}}
    )
    assert added.status_code == 201
    answer = api.client.post("/v1/anchor", headers=borealis)
    assert answer.status_code == 200, answer.text
    batches = answer.json()["batches"]
    assert batches and {b["partner"] for b in batches} == {"borealis"}
    (line,) = api.client.get(f"/v1/customers/{bea.hex}/interactions", headers=borealis).json()
    assert line["anchoring"] == f"anchored in batch {batches[-1]['batch']}"
    again = api.client.post("/v1/anchor", headers=borealis)
    assert again.status_code == 200 and again.json()["batches"] == []


def test_anchoring_needs_its_scope(api: Api) -> None:
    answer = api.client.post("/v1/anchor", headers=api.key("borealis", ("customers:read",)))
    assert answer.status_code == 403 and "anchoring:write" in answer.json()["detail"]


def test_a_verification_job_reports_the_findings_of_the_partners_records(api: Api) -> None:
    bea = api.customer("borealis")
    borealis = api.key("borealis")
    api.client.post(
        f"/v1/customers/{bea.hex}/interactions", headers=borealis, json={"kind": "visit", "data": {}}
    )
    api.client.post("/v1/anchor", headers=borealis)
    done = _job(api, api.client.post("/v1/verifications", headers=borealis), borealis)
    assert done["status"] == "succeeded" and done["kind"] == "verify", done
    result = done["result"]
    assert result["ok"] is True and result["failures"] == []
    assert result["counts"].get("verified", 0) >= 1 and result["checks"]
    # a partner's job is not there for another partner: the answer for a job that does not exist
    other = api.client.post("/v1/verifications", headers=borealis).headers["location"]
    api.client.app.state.jobs.wait_idle()  # type: ignore[attr-defined]
    assert api.client.get(other, headers=api.key("acme")).status_code == 404


def test_a_verification_names_a_record_edited_behind_the_systems_back(api: Api) -> None:
    from offchain.models import Interaction

    bea = api.customer("borealis")
    borealis = api.key("borealis")
    added = api.client.post(
        f"/v1/customers/{bea.hex}/interactions", headers=borealis, json={"kind": "visit", "data": {"n": 7}}
    ).json()
    api.client.post("/v1/anchor", headers=borealis)
    with api.crm.unit_of_work() as db:
        row = db.get(Interaction, added["interaction_id"])
        assert row is not None
        original = row.leaf_hash
        row.leaf_hash = bytes(32)
        db.add(row)
    try:
        done = _job(api, api.client.post("/v1/verifications", headers=borealis), borealis)
        assert done["status"] == "succeeded"
        assert done["result"]["ok"] is False
        assert any(
            f["outcome"] == "tampered" and f["record"] == f"interaction {added['interaction_id']}"
            for f in done["result"]["failures"]
        )
    finally:
        with api.crm.unit_of_work() as db:
            row = db.get(Interaction, added["interaction_id"])
            assert row is not None
            row.leaf_hash = original
            db.add(row)


def test_reconciliation_compares_the_partners_points_and_consent_with_the_chain(api: Api) -> None:
    bea = api.customer("borealis")
    borealis = api.key("borealis")
    api.client.post(
        f"/v1/customers/{bea.hex}/consents", headers=borealis, json={"purpose": "loyalty", "status": "given"}
    )
    api.client.post(f"/v1/customers/{bea.hex}/points/earn", headers=borealis, json={"amount": 40})
    answer = api.client.post("/v1/reconciliations", headers=borealis)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["ok"] is True and body["mismatches"] == [] and body["partners_checked"] == 1
    assert body["members_checked"] >= 1


def test_governance_propose_vote_and_list(api: Api) -> None:
    newcomer = Account.create().address
    acme, borealis = api.key("acme"), api.key("borealis")
    proposed = api.client.post(
        "/v1/governance/proposals", headers=acme, json={"action": "admit-auditor", "account": newcomer}
    )
    assert proposed.status_code == 201, proposed.text
    proposal = proposed.json()["proposal_id"]
    assert proposed.json()["executed"] is False
    listed = {p["proposal_id"]: p for p in api.client.get("/v1/governance/proposals", headers=acme).json()}
    assert listed[proposal]["account"] == newcomer and listed[proposal]["votes"] == 1
    twice = api.client.post(f"/v1/governance/proposals/{proposal}/votes", headers=acme)
    assert twice.status_code == 409 and twice.headers["content-type"] == PROBLEM
    assert twice.json()["error"].startswith("Consortium")
    voted = api.client.post(f"/v1/governance/proposals/{proposal}/votes", headers=borealis)
    assert voted.status_code == 200 and voted.json() == {"proposal_id": proposal, "executed": True}
    assert api.crm.coalition.consortium.is_auditor(newcomer)


def test_bad_governance_requests_are_4xx_problems(api: Api) -> None:
    acme = api.key("acme")
    for body in (
        {"action": "crown", "account": Account.create().address},
        {"action": "remove", "account": "0x1234"},
        {"action": "remove"},
    ):
        answer = api.client.post("/v1/governance/proposals", headers=acme, json=body)
        assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM
    unknown = api.client.post("/v1/governance/proposals/99999/votes", headers=acme)
    assert unknown.status_code == 409 and unknown.headers["content-type"] == PROBLEM
    assert api.client.post("/v1/governance/proposals/-1/execute", headers=acme).status_code == 422
    reader = api.key("acme", ("governance:read",))
    refused = api.client.post(
        "/v1/governance/proposals",
        headers=reader,
        json={"action": "remove", "account": Account.create().address},
    )
    assert refused.status_code == 403 and "governance:write" in refused.json()["detail"]
