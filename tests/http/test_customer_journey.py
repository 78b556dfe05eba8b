"""The customer's journey end to end over HTTP, on anvil: she signs in with her own key, sees her
consents, withdraws profiling consent by signing in her own key (the chain records it as signed by her),
and the partner's next scoring skips her; a replayed signature and a signature for another member are
refused with problem bodies, and nothing changes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from api.context import Crm
from api.http.app import create_app
from api.principal import Principal
from api.usecases import decisions as deciding
from api.usecases.consent import send_staged_consents, stage_consents
from api.usecases.customer_keys import bind_customer_key, customer_binding
from ledger.clients import ConsentSource, purpose_id
from tests.fixtures.trained import TRAINED, TrainedHome, forked
from tests.http.conftest import sign_in_over

ACME = Principal.of_partner("acme")
HOLDOUT = datetime(2024, 9, 1, tzinfo=UTC)
AS_OF = datetime(2024, 12, 1, tzinfo=UTC)

pytestmark = [pytest.mark.anvil, pytest.mark.xdist_group(TRAINED)]


@pytest.fixture(scope="module")
def journey(trained_home: TrainedHome, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """acme's customers and model (the trained home, forked), all of them consenting to profiling and
    scored; Bea, one the model decided for, holds a key of her own."""
    home: Path = tmp_path_factory.mktemp("journey") / "home"
    with forked(trained_home, home, batch_max_leaves=512, http_rate_limit="100000/minute") as crm:
        model_id = trained_home.model_id
        stage_consents(crm, ACME, trained_home.members, "profiling")
        send_staged_consents(crm, ACME)
        first = deciding.score(crm, ACME, model_id=model_id, as_of=AS_OF)
        decided = {
            line.member for line in deciding.list_decisions(crm, ACME) if line.decision_id in first.decided
        }
        bea_member = sorted(decided)[0]  # a member the model scores (ids are random: not one by position)
        bea = Account.create()
        bind_customer_key(crm, ACME, bea_member, bea.address, customer_binding(crm, bea)(bea_member))
        with TestClient(create_app(crm.settings, crm), raise_server_exceptions=False) as client:
            yield {"crm": crm, "client": client, "bea": bea, "member": bea_member, "model": model_id}


def signed_body(client: TestClient, headers: dict[str, str], url: str, key: LocalAccount) -> dict[str, Any]:
    typed = client.get(url, headers=headers)
    assert typed.status_code == 200, typed.text
    signature = Account.sign_typed_data(key.key, full_message=typed.json()).signature
    return {"typed_data": typed.json(), "signature": "0x" + bytes(signature).hex()}


def test_she_withdraws_profiling_by_her_own_signature_and_is_not_scored(journey: dict[str, Any]) -> None:
    crm: Crm = journey["crm"]
    client: TestClient = journey["client"]
    bea: LocalAccount = journey["bea"]
    member: bytes = journey["member"]
    session = sign_in_over(client, bea)
    assert session["role"] == "customer" and session["member"] == "0x" + member.hex()
    headers = {"Authorization": f"Bearer {session['token']}"}
    states = client.get("/v1/me/consents", headers=headers).json()["consents"]
    assert {"partner": "acme", "purpose": "profiling"}.items() <= next(
        s for s in states if s["purpose"] == "profiling"
    ).items()
    assert next(s for s in states if s["purpose"] == "profiling")["valid"] is True
    decisions = client.get("/v1/me/decisions", headers=headers).json()
    assert decisions and decisions[0]["reasons"] and decisions[0]["outcome"]

    url = "/v1/me/consents/typed-data?partner=acme&purpose=profiling&status=withdrawn"
    body = signed_body(client, headers, url, bea)
    recorded = client.post("/v1/me/consents", headers=headers, json=body)
    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["status"] == "withdrawn"
    acme = crm.signer("acme").address
    last = crm.coalition.consent.history(member, acme, purpose_id("profiling"))[-1]
    assert last.source is ConsentSource.SIGNED  # on chain: made by her signature, relayed by acme
    assert not crm.coalition.consent.is_valid(member, acme, purpose_id("profiling"))

    replayed = client.post("/v1/me/consents", headers=headers, json=body)
    assert replayed.status_code == 422
    assert replayed.headers["content-type"] == "application/problem+json"

    again = deciding.score(crm, ACME, members=[member], model_id=journey["model"], as_of=AS_OF)
    assert again.skipped_for_consent == 1 and not again.decided


def test_a_signature_made_by_another_key_is_refused_and_changes_nothing(journey: dict[str, Any]) -> None:
    crm: Crm = journey["crm"]
    client: TestClient = journey["client"]
    member: bytes = journey["member"]
    headers = {"Authorization": f"Bearer {sign_in_over(client, journey['bea'])['token']}"}
    url = "/v1/me/consents/typed-data?partner=acme&purpose=marketing&status=given"
    body = signed_body(client, headers, url, Account.create())
    before = crm.coalition.consent.history(member, crm.signer("acme").address, purpose_id("marketing"))
    refused = client.post("/v1/me/consents", headers=headers, json=body)
    assert refused.status_code == 422 and "not by member" in refused.json()["detail"]
    after = crm.coalition.consent.history(member, crm.signer("acme").address, purpose_id("marketing"))
    assert before == after
