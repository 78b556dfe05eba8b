"""What every route does whatever it is: concurrent writes all land, limits per credential, body size,
CORS closed, request ids, logs without secrets or personal data, and jobs a restarted server lost."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
from api.http.jobs import JobRunner
from offchain.models import Job
from offchain.repositories import jobs
from tests.http.conftest import Api


def test_concurrent_writes_all_land_on_chain(api: Api) -> None:
    headers = api.key("acme")

    def create(n: int) -> int:
        answer = api.client.post("/v1/customers", headers=headers, json={"name": f"Parallel {n}"})
        assert answer.status_code == 201, answer.text
        member = bytes.fromhex(answer.json()["member"][2:])
        return int(api.crm.coalition.members.member(member).enrolled)

    with ThreadPoolExecutor(max_workers=8) as pool:
        enrolled = list(pool.map(create, range(16)))
    assert enrolled == [1] * 16


def test_a_credential_over_its_limit_gets_429_with_retry_after(api: Api) -> None:
    settings = api.crm.settings.model_copy(update={"http_rate_limit": "3/minute"})
    headers = api.key("acme")
    with TestClient(create_app(settings, api.crm)) as client:
        answers = [client.get("/v1/customers?limit=1", headers=headers) for _ in range(4)]
        other = client.get("/v1/customers?limit=1", headers=api.key("acme"))
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert answers[-1].headers["content-type"] == "application/problem+json"
    assert other.status_code == 200  # counted per credential


def test_a_body_over_the_limit_is_413(api: Api) -> None:
    answer = api.client.post(
        "/v1/customers",
        headers={**api.key("acme"), "Content-Type": "application/json"},
        content=b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}',
    )
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"


def test_cors_is_closed_and_every_answer_has_a_request_id(api: Api) -> None:
    answer = api.client.get("/v1/health", headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in answer.headers
    assert len(answer.headers["x-request-id"]) >= 16
    given = api.client.get("/v1/health", headers={"X-Request-Id": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"


def test_logs_hold_no_secret_token_or_personal_data(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    headers = api.key("acme")
    secret = headers["Authorization"].split()[-1]
    session = api.sign_in(api.auditor)["token"]
    with caplog.at_level(logging.DEBUG):
        created = api.client.post("/v1/customers", headers=headers, json={"name": "Loggable Lorelei"})
        api.client.get("/v1/customers?search=Lorelei", headers=headers)
        api.client.get(f"/v1/customers/{created.json()['member']}", headers=headers)
        api.client.get("/v1/audit/logs", headers={"Authorization": f"Bearer {session}"})
        api.client.get("/v1/customers", headers={"Authorization": "Bearer lcrm_wrongpre_" + "y" * 43})
    # the server's own records (the test client's httpx logs the URLs it is asked to fetch)
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert "GET /v1/customers 200" in text or "GET /v1/customers/{member} 200" in text
    # the secret part is the last 43 characters: it may itself contain "_", so it is not split on one
    for forbidden in (secret, secret[-43:], session, "Lorelei", "y" * 43):
        assert forbidden not in text


def test_a_job_of_a_server_that_stopped_is_reported_failed_and_a_live_servers_is_not(api: Api) -> None:
    now = datetime.now(UTC)
    running = JobRunner(api.crm)  # another server over the same store, alive
    with api.crm.unit_of_work() as db:
        for job_id, runner in (("42", "a-server-that-died"), ("43", running.runner)):
            jobs.add(
                db,
                Job(
                    id=f"00000000-0000-0000-0000-0000000000{job_id}",
                    owner="partner acme",
                    kind="verification",
                    status="running",
                    runner=runner,
                    created_at=now,
                    updated_at=now,
                ),
            )
    try:
        JobRunner(api.crm).shutdown()  # a server starting over the same store
    finally:
        running.shutdown()
    key = api.key("acme")
    answer = api.client.get("/v1/jobs/00000000-0000-0000-0000-000000000042", headers=key)
    assert answer.status_code == 200
    assert answer.json()["status"] == "failed" and "stopped" in answer.json()["error"]
    assert api.client.get("/v1/jobs/00000000-0000-0000-0000-000000000043", headers=key).json()["status"] == (
        "running"
    )


def test_a_body_sent_without_a_length_is_cut_at_the_limit(api: Api) -> None:
    def chunks():  # no Content-Length: the server counts what it reads
        yield b'{"name": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    answer = api.client.post(
        "/v1/customers", headers={**api.key("acme"), "Content-Type": "application/json"}, content=chunks()
    )
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"


def test_a_query_parameter_given_twice_is_refused(api: Api) -> None:
    answer = api.client.get("/v1/customers?search=a&search=b", headers=api.key("acme"))
    assert answer.status_code == 422 and "search" in answer.json()["detail"]


def test_an_idempotency_key_still_being_answered_is_409(api: Api) -> None:
    from api.http.deps import credential_id

    headers = api.key("acme")

    class Asked:  # the credential id as the server computes it from the request's headers
        cookies: dict[str, str] = {}  # noqa: RUF012 - a stand-in for a request, read only

        def __init__(self, headers: dict[str, str]) -> None:
            self.headers = {k.lower(): v for k, v in headers.items()}

    credential = credential_id(Asked(headers))  # type: ignore[arg-type]
    assert credential is not None
    body = b'{"name": "In Flight"}'
    import hashlib

    from offchain.repositories import idempotency

    digest = hashlib.sha256(b"\0".join((b"POST", b"/v1/customers", b"", body))).digest()
    with api.crm.unit_of_work() as db:
        assert idempotency.claim(db, credential, "in-flight-1", digest) is None  # a first request, unanswered
    answer = api.client.post(
        "/v1/customers",
        headers={**headers, "Idempotency-Key": "in-flight-1", "Content-Type": "application/json"},
        content=body,
    )
    assert answer.status_code == 409 and "still being answered" in answer.json()["detail"]


def test_the_docs_need_no_network(api: Api) -> None:
    page = api.client.get("/docs").text
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert "cdn." not in page and "https://" not in page.replace("https://ledgercrm.dev/problems/", "")
    assert api.client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200
    schema = api.client.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.1")
    assert "Problem" in schema["components"]["schemas"]
    assert {"HTTPBearer", "APIKeyCookie"} <= set(schema["components"]["securitySchemes"])


def test_concurrent_writes_on_each_store(db_url: str, tester_coalition, tmp_path) -> None:
    """The same, on SQLite and on PostgreSQL: one writer at a time, every write lands."""
    from api.context import Crm
    from api.principal import Principal
    from api.settings import Settings
    from api.usecases import access
    from api.usecases.partners import register_partner

    settings = Settings(
        environment="development",
        home=tmp_path,
        database_url=db_url,
        keystore_url=str(tmp_path / "keys.sqlite"),
        http_rate_limit="100000/minute",
    )
    crm = Crm.open(settings, tester_coalition)
    try:
        register_partner(crm, "acme", tester_coalition.chain.backend.accounts[0])
        headers = {"Authorization": f"Bearer {access.issue_token(crm, Principal.of_partner('acme')).key}"}
        with TestClient(create_app(settings, crm)) as client:

            def create(n: int) -> int:
                answer = client.post("/v1/customers", headers=headers, json={"name": f"Store {n}"})
                reads = client.get("/v1/customers?limit=5", headers=headers)
                return int(answer.status_code * 1000 + reads.status_code)

            with ThreadPoolExecutor(max_workers=6) as pool:
                codes = list(pool.map(create, range(12)))
            listed = client.get("/v1/customers?limit=50", headers=headers).json()
        assert codes == [201200] * 12
        assert listed["total"] == 12
    finally:
        crm.close()
