"""Who is who: partner API keys, sign-in with an Ethereum key (the chain decides the role), sessions."""

from __future__ import annotations

from eth_account import Account
from eth_account.messages import encode_defunct

from api.errors import NotFound
from api.principal import Principal
from api.usecases import access
from tests.http.conftest import Api

PROBLEM = "application/problem+json"


def test_health_names_the_chain(api: Api) -> None:
    answer = api.client.get("/v1/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok" and body["chain_id"] == api.crm.coalition.chain.chain_id
    assert body["block_number"] >= 1


def test_no_credential_is_401_with_a_problem(api: Api) -> None:
    answer = api.client.get("/v1/customers")
    assert answer.status_code == 401
    assert answer.headers["content-type"] == PROBLEM
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json()["title"] == "Not signed in"


def test_a_key_works_until_revoked_and_is_stored_only_as_a_hash(api: Api) -> None:
    issued = access.issue_token(api.crm, Principal.of_partner("acme"))
    assert issued.key.startswith(f"lcrm_{issued.prefix}_")
    headers = {"Authorization": f"Bearer {issued.key}"}
    assert api.client.get("/v1/customers", headers=headers).status_code == 200
    secret = issued.key.split("_", 2)[2]
    for path in api.crm.settings.home.glob("*.sqlite*"):
        assert secret.encode() not in path.read_bytes()
    listed = {t.prefix: t for t in access.list_tokens(api.crm, Principal.of_partner("acme"))}
    assert listed[issued.prefix].last_used_at is not None
    access.revoke_token(api.crm, Principal.of_partner("acme"), issued.prefix)
    assert api.client.get("/v1/customers", headers=headers).status_code == 401


def test_a_forged_or_altered_key_is_401(api: Api) -> None:
    issued = access.issue_token(api.crm, Principal.of_partner("acme"))
    altered = issued.key[:-1] + ("A" if issued.key[-1] != "A" else "B")
    for key in (altered, "lcrm_abcdefgh_" + "x" * 43, "lcrm_nope", "not-a-key"):
        assert api.client.get("/v1/customers", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_another_partner_may_not_revoke_a_key(api: Api) -> None:
    issued = access.issue_token(api.crm, Principal.of_partner("acme"))
    try:
        access.revoke_token(api.crm, Principal.of_partner("borealis"), issued.prefix)
    except NotFound:
        pass
    else:
        raise AssertionError("borealis revoked acme's key")
    assert (
        api.client.get("/v1/customers", headers={"Authorization": f"Bearer {issued.key}"}).status_code == 200
    )


def test_a_key_without_the_scope_is_403(api: Api) -> None:
    reader = api.key("acme", ("customers:read",))
    assert api.client.get("/v1/customers", headers=reader).status_code == 200
    answer = api.client.post("/v1/customers", headers=reader, json={"name": "Nobody"})
    assert answer.status_code == 403
    assert "customers:write" in answer.json()["detail"]


def test_a_customer_signs_in_with_her_key_and_the_chain_names_her_member(api: Api) -> None:
    bea = api.customer(keyed=True)
    assert bea.key is not None
    session = api.sign_in(bea.key)
    assert session["role"] == "customer" and session["member"] == bea.hex


def test_the_auditor_signs_in_as_auditor(api: Api) -> None:
    session = api.sign_in(api.auditor)
    assert session["role"] == "auditor" and session["member"] is None


def test_a_stranger_key_cannot_sign_in(api: Api) -> None:
    stranger = Account.create()
    message = api.client.post("/v1/auth/challenge", json={"address": stranger.address}).json()["message"]
    signature = "0x" + stranger.sign_message(encode_defunct(text=message)).signature.hex()
    answer = api.client.post("/v1/auth/session", json={"message": message, "signature": signature})
    assert answer.status_code == 403


def test_a_nonce_signs_in_once(api: Api) -> None:
    message = api.client.post("/v1/auth/challenge", json={"address": api.auditor.address}).json()["message"]
    signature = "0x" + api.auditor.sign_message(encode_defunct(text=message)).signature.hex()
    first = api.client.post("/v1/auth/session", json={"message": message, "signature": signature})
    replay = api.client.post("/v1/auth/session", json={"message": message, "signature": signature})
    assert first.status_code == 200
    assert replay.status_code == 401 and "used" in replay.json()["detail"]


def test_a_challenge_signed_by_another_key_or_edited_is_refused(api: Api) -> None:
    message = api.client.post("/v1/auth/challenge", json={"address": api.auditor.address}).json()["message"]
    other = Account.create()
    by_other = "0x" + other.sign_message(encode_defunct(text=message)).signature.hex()
    assert (
        api.client.post("/v1/auth/session", json={"message": message, "signature": by_other}).status_code
        == 401
    )
    edited = message.replace("Version: 1", "Version: 2")
    signed = "0x" + api.auditor.sign_message(encode_defunct(text=edited)).signature.hex()
    assert (
        api.client.post("/v1/auth/session", json={"message": edited, "signature": signed}).status_code == 401
    )


def test_an_expired_challenge_is_refused(api: Api) -> None:
    from datetime import UTC, datetime, timedelta

    from offchain.models import SignInChallenge

    message = api.client.post("/v1/auth/challenge", json={"address": api.auditor.address}).json()["message"]
    nonce = message.split("Nonce: ")[1].split("\n")[0]
    with api.crm.unit_of_work() as db:
        row = db.get(SignInChallenge, nonce)
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        db.add(row)
    signature = "0x" + api.auditor.sign_message(encode_defunct(text=message)).signature.hex()
    answer = api.client.post("/v1/auth/session", json={"message": message, "signature": signature})
    assert answer.status_code == 401 and "expired" in answer.json()["detail"]


def test_a_key_changed_on_chain_ends_the_customers_sessions(api: Api) -> None:
    bea = api.customer(keyed=True)
    assert bea.key is not None
    headers = api.bearer(bea.key)
    assert api.client.get("/v1/auth/whoami", headers=headers).status_code == 200
    new = Account.create()
    authorization = api.crm.coalition.members.authorize_signer_change(bea.key, bea.member, new.address)
    api.crm.coalition.members.change_signer(api.crm.signer("acme"), bea.member, new.address, authorization)
    answer = api.client.get("/v1/auth/whoami", headers=headers)
    assert answer.status_code == 401 and "changed on chain" in answer.json()["detail"]


def test_cookie_writes_need_the_csrf_token(api: Api) -> None:
    issued = access.issue_token(api.crm, Principal.of_partner("acme"))
    client = api.client
    session = client.post("/v1/auth/partner-session", json={"api_key": issued.key})
    assert session.status_code == 200
    assert "httponly" in session.headers["set-cookie"].lower()
    assert "samesite=strict" in session.headers["set-cookie"].lower()
    try:
        assert client.get("/v1/customers").status_code == 200  # reads: the cookie alone
        refused = client.post("/v1/customers", json={"name": "Cookie Only"})
        assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
        csrf = session.json()["csrf_token"]
        accepted = client.post("/v1/customers", json={"name": "With Token"}, headers={"X-CSRF-Token": csrf})
        assert accepted.status_code == 201
    finally:
        client.cookies.clear()


def test_signing_out_ends_the_session_and_an_api_key_cannot_sign_out(api: Api) -> None:
    headers = api.bearer(api.auditor)
    assert api.client.get("/v1/auth/whoami", headers=headers).json()["role"] == "auditor"
    assert api.client.post("/v1/auth/logout", headers=headers).status_code == 204
    assert api.client.get("/v1/auth/whoami", headers=headers).status_code == 401
    assert api.client.post("/v1/auth/logout", headers=api.key("acme")).status_code == 401
    assert api.client.post("/v1/auth/logout").status_code == 401


def test_a_partner_enrols_a_customer_with_her_key_only_with_its_signature(api: Api) -> None:
    headers = api.key("acme")
    key = Account.create()
    handed = api.client.get(f"/v1/customers/typed-data/binding?signer={key.address}", headers=headers).json()
    signature = (
        "0x" + bytes(Account.sign_typed_data(key.key, full_message=handed["typed_data"]).signature).hex()
    )
    binding = {"typed_data": handed["typed_data"], "signature": signature}
    by_other = (
        "0x"
        + bytes(
            Account.sign_typed_data(Account.create().key, full_message=handed["typed_data"]).signature
        ).hex()
    )
    refused = api.client.post(
        "/v1/customers",
        headers=headers,
        json={"name": "Keyed Kay", "signer": key.address, "binding": {**binding, "signature": by_other}},
    )
    assert refused.status_code == 422
    unsigned = api.client.post(
        "/v1/customers", headers=headers, json={"name": "Keyed Kay", "signer": key.address}
    )
    assert unsigned.status_code == 422
    created = api.client.post(
        "/v1/customers",
        headers=headers,
        json={"name": "Keyed Kay", "signer": key.address, "binding": binding},
    )
    assert created.status_code == 201, created.text
    assert created.json()["member"] == handed["member"]
    assert api.sign_in(key)["member"] == handed["member"]


def test_a_customer_erases_herself_by_her_signature_and_her_sessions_end(api: Api) -> None:
    eve = api.customer("acme", name="Eve Erasable", keyed=True)
    assert eve.key is not None
    headers = api.bearer(eve.key)
    typed = api.client.get("/v1/me/erasure/typed-data", headers=headers).json()
    forged = Account.sign_typed_data(Account.create().key, full_message=typed).signature
    refused = api.client.post(
        "/v1/me/erasure", headers=headers, json={"typed_data": typed, "signature": "0x" + bytes(forged).hex()}
    )
    assert refused.status_code == 422
    assert api.client.get("/v1/me", headers=headers).status_code == 200  # nothing changed
    signature = Account.sign_typed_data(eve.key.key, full_message=typed).signature
    erased = api.client.post(
        "/v1/me/erasure",
        headers=headers,
        json={"typed_data": typed, "signature": "0x" + bytes(signature).hex()},
    )
    assert erased.status_code == 200, erased.text
    assert api.crm.coalition.members.member(eve.member).erased
    assert api.client.get("/v1/me", headers=headers).status_code == 401
