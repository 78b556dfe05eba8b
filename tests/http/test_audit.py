"""The auditor's API: logs, proofs with the contract's verdicts, a verification job, erasure receipts,
settlement; and not one byte of any customer's personal data in any answer an auditor gets."""

from __future__ import annotations

import time
from typing import Any

import pytest

from api.evidence.recording import NewInteraction
from api.principal import Principal
from api.usecases.anchoring import anchor_now
from api.usecases.consent import give_consent
from api.usecases.erasure import erase_customer
from api.usecases.interactions import add_interaction
from api.usecases.loyalty import PointsRequest, earn_points
from tests.http.conftest import Api

ACME = Principal.of_partner("acme")
PII = {
    "name": "Ottoline Quillfeather",
    "email": "ottoline.q@example.org",
    "payload": "haberdashery-9731",
}


@pytest.fixture(scope="module")
def populated(api: Api) -> dict[str, Any]:
    """Customers with personal data, interactions, consent and points, anchored; one erased."""
    kept = api.customer("acme", name=PII["name"])
    gone = api.customer("acme", name="Erasmus Gone")
    for customer in (kept, gone):
        give_consent(api.crm, ACME, customer.member, "loyalty")
        earn_points(api.crm, ACME, PointsRequest(customer.member, 40))
        for n in range(3):
            add_interaction(
                api.crm,
                ACME,
                NewInteraction(
                    customer.member, "purchase", {"item": PII["payload"], "email": PII["email"], "n": n}
                ),
            )
    anchor_now(api.crm, ACME, "acme")
    erase_customer(api.crm, ACME, gone.member)
    return {"kept": kept, "gone": gone}


def wait_for(api: Api, location: str, headers: dict[str, str]) -> dict[str, Any]:
    for _ in range(600):
        job = api.client.get(location, headers=headers).json()
        if job["status"] in ("succeeded", "failed"):
            return dict(job)
        time.sleep(0.1)
    raise AssertionError(f"job {location} did not end")


def test_logs_proofs_and_their_on_chain_verdicts(api: Api, populated: dict[str, Any]) -> None:
    auditor = api.bearer(api.auditor)
    found = api.client.get("/v1/audit/logs", headers=auditor).json()
    acme = next(log for log in found if log["partner"] == "acme")
    assert acme["heads"] and all(h["block_number"] > 0 for h in acme["heads"])
    last = acme["heads"][-1]
    leaf = api.client.get(f"/v1/audit/logs/acme/leaves/{last['size'] - 1}", headers=auditor)
    assert leaf.status_code == 200, leaf.text
    assert leaf.json()["verified_on_chain"] is True
    if len(acme["heads"]) >= 2:
        first, second = acme["heads"][0]["size"], last["size"]
        steps = api.client.get(
            f"/v1/audit/logs/acme/consistency?first={first}&second={second}", headers=auditor
        )
        assert steps.status_code == 200, steps.text
        assert steps.json() and all(s["verified_on_chain"] for s in steps.json())
    beyond = api.client.get(f"/v1/audit/logs/acme/leaves/{last['size'] + 10_000}", headers=auditor)
    assert beyond.status_code == 404
    # past what the store's column holds (PostgreSQL's 4-byte INTEGER, SQLite's 8 bytes): no leaf there,
    # not a driver's overflow
    for index in (2**31, 2**63 - 1):
        past = api.client.get(f"/v1/audit/logs/acme/leaves/{index}", headers=auditor)
        assert past.status_code == 404, past.text
        assert past.headers["content-type"].startswith("application/problem+json")


def test_erasures_carry_the_chains_flag(api: Api, populated: dict[str, Any]) -> None:
    found = api.client.get("/v1/audit/erasures", headers=api.bearer(api.auditor)).json()
    mine = [e for e in found if e["member"] == populated["gone"].hex]
    assert len(mine) == 1 and mine[0]["erased_on_chain"] is True and mine[0]["anchored"] is True


def test_a_verification_job_reports_what_it_checked(api: Api, populated: dict[str, Any]) -> None:
    auditor = api.bearer(api.auditor)
    started = api.client.post("/v1/audit/verifications", headers=auditor)
    assert started.status_code == 202
    job = wait_for(api, started.headers["location"], auditor)
    assert job["status"] == "succeeded", job
    assert job["result"]["checked"] and "counts" in job["result"]
    other = api.client.get(started.headers["location"], headers=api.key("acme"))
    assert other.status_code == 404  # a job is seen by whoever started it only


def test_no_answer_to_an_auditor_holds_personal_data(api: Api, populated: dict[str, Any]) -> None:
    auditor = api.bearer(api.auditor)
    answers: list[bytes] = []
    paths = api.client.get("/openapi.json").json()["paths"]
    logs = api.client.get("/v1/audit/logs", headers=auditor).json()
    size = next(log for log in logs if log["partner"] == "acme")["heads"][-1]["size"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            if operation.get("x-role") != "auditor" or method != "get":
                continue
            if "{leaf_index}" in path:
                for index in range(size):
                    answers.append(
                        api.client.get(path.format(partner="acme", leaf_index=index), headers=auditor).content
                    )
            elif "consistency" in path:
                answers.append(
                    api.client.get(
                        path.format(partner="acme") + f"?first=1&second={size}", headers=auditor
                    ).content
                )
            else:
                answers.append(api.client.get(path, headers=auditor).content)
    started = api.client.post("/v1/audit/verifications", headers=auditor)
    answers.append(str(wait_for(api, started.headers["location"], auditor)).encode())
    answers.append(api.client.get("/v1/auth/whoami", headers=auditor).content)
    assert len(answers) > 5
    for answer in answers:
        for value in PII.values():
            assert value.encode() not in answer
            assert value.lower().encode() not in answer.lower()
