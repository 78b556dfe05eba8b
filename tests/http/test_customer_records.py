"""A partner's routes about one customer: interactions, consent, points. Each tried by its owner, by
another partner (the answer of a member that does not exist), and with bad input (a 4xx problem)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from api.principal import Principal
from tests.http.conftest import Api

PROBLEM = "application/problem+json"


def _unknown() -> str:
    return "0x" + os.urandom(32).hex()


def _same_refusal(api: Api, path_of: str, other: str, *, method: str = "GET", **kwargs: object) -> None:
    """Borealis asking about acme's member gets exactly what it gets for a member no one has."""
    borealis = api.key("borealis")
    unknown = _unknown()
    theirs = api.client.request(method, path_of.format(other), headers=borealis, **kwargs)  # type: ignore[arg-type]
    nobody = api.client.request(method, path_of.format(unknown), headers=borealis, **kwargs)  # type: ignore[arg-type]
    assert theirs.status_code == nobody.status_code == 404, (theirs.text, nobody.text)
    assert theirs.headers["content-type"] == PROBLEM
    first, second = theirs.json(), nobody.json()
    assert first["title"] == second["title"]
    assert first["detail"].replace(other, "?") == second["detail"].replace(unknown, "?")


# --- interactions -----------------------------------------------------------------------------------------


def test_an_interaction_is_recorded_once_and_listed_with_its_anchoring(api: Api) -> None:
    bea = api.customer()
    acme = api.key("acme")
    path = f"/v1/customers/{bea.hex}/interactions"
    body = {"kind": "purchase", "data": {"total": 12.5}, "external_key": "INV-1"}
    first = api.client.post(path, headers=acme, json=body)
    assert first.status_code == 201, first.text
    added = first.json()
    assert added["duplicate"] is False and isinstance(added["interaction_id"], int)
    again = api.client.post(path, headers=acme, json=body)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    changed = api.client.post(path, headers=acme, json=body | {"data": {"total": 99}})
    assert changed.status_code == 409 and "different data" in changed.json()["detail"]
    listed = api.client.get(path, headers=acme)
    assert listed.status_code == 200
    (line,) = listed.json()
    assert line["interaction_id"] == added["interaction_id"] and line["external_key"] == "INV-1"
    assert line["anchoring"] in ("pending", "submitted") or line["anchoring"].startswith("anchored in batch")
    assert line["occurred_at"].endswith(("Z", "+00:00"))


def test_another_partner_sees_no_interactions_and_records_none(api: Api) -> None:
    bea = api.customer()
    _same_refusal(api, "/v1/customers/{}/interactions", bea.hex)
    _same_refusal(
        api, "/v1/customers/{}/interactions", bea.hex, method="POST", json={"kind": "visit", "data": {}}
    )
    assert api.client.get(f"/v1/customers/{bea.hex}/interactions", headers=api.key("acme")).json() == []


def test_bad_interactions_are_4xx_problems_and_write_nothing(api: Api) -> None:
    bea = api.customer()
    acme = api.key("acme")
    path = f"/v1/customers/{bea.hex}/interactions"
    too_big = {"kind": "purchase", "data": {"note": "x" * (64 * 1024)}}
    cases = [
        (too_big, 422, "64 KiB"),
        ({"kind": "teleport", "data": {}}, 422, "kind"),
        ({"kind": "visit", "data": [1, 2]}, 422, "data"),
        ({"kind": "visit", "data": {}, "colour": "red"}, 422, "colour"),
        ({"kind": "visit", "data": {}, "occurred_at": "2026-01-01T10:00:00"}, 422, "occurred_at"),
        ({"kind": "visit"}, 422, "data"),
    ]
    for body, status, words in cases:
        answer = api.client.post(path, headers=acme, json=body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.headers["content-type"] == PROBLEM and words in answer.json()["detail"]
    malformed = api.client.post(path, headers=acme | {"content-type": "application/json"}, content=b"{nope")
    assert malformed.status_code == 400 and malformed.headers["content-type"] == PROBLEM
    assert api.client.post("/v1/customers/0x12/interactions", headers=acme, json={}).status_code == 422
    assert api.client.get(path, headers=acme).json() == []  # nothing was recorded


def test_reading_interactions_needs_the_scope(api: Api) -> None:
    bea = api.customer()
    writer = api.key("acme", ("interactions:write",))
    answer = api.client.get(f"/v1/customers/{bea.hex}/interactions", headers=writer)
    assert answer.status_code == 403 and "interactions:read" in answer.json()["detail"]


# --- consent ----------------------------------------------------------------------------------------------


def test_consent_given_checked_at_a_time_withdrawn_and_its_history(api: Api) -> None:
    bea = api.customer()
    acme = api.key("acme")
    base = f"/v1/customers/{bea.hex}/consents"
    before = datetime.now(UTC) - timedelta(days=1)
    given = api.client.post(base, headers=acme, json={"purpose": "marketing", "status": "given"})
    assert given.status_code == 201, given.text
    assert given.json()["status"] == "given" and given.json()["block_number"] >= 1
    now = api.client.get(f"{base}/marketing", headers=acme).json()
    assert now == {"member": bea.hex, "partner": "acme", "purpose": "marketing", "at": None, "valid": True}
    earlier = api.client.get(f"{base}/marketing", headers=acme, params={"at": before.isoformat()})
    assert earlier.status_code == 200 and earlier.json()["valid"] is False
    towards_borealis = api.client.get(f"{base}/marketing", headers=acme, params={"partner": "borealis"})
    assert towards_borealis.json()["valid"] is False
    withdrawn = api.client.post(base, headers=acme, json={"purpose": "marketing", "status": "withdrawn"})
    assert withdrawn.status_code == 201 and withdrawn.json()["status"] == "withdrawn"
    assert api.client.get(f"{base}/marketing", headers=acme).json()["valid"] is False
    history = api.client.get(base, headers=acme).json()
    assert [(e["purpose"], e["status"], e["on_chain"]) for e in history] == [
        ("marketing", "given", True),
        ("marketing", "withdrawn", True),
    ]
    assert history[0]["receipt_hash"] == given.json()["receipt_hash"]


def test_another_partner_reads_no_consent_and_attests_none(api: Api) -> None:
    bea = api.customer()
    acme = api.key("acme")
    api.client.post(
        f"/v1/customers/{bea.hex}/consents", headers=acme, json={"purpose": "loyalty", "status": "given"}
    )
    _same_refusal(api, "/v1/customers/{}/consents", bea.hex)
    _same_refusal(api, "/v1/customers/{}/consents/loyalty", bea.hex)
    # nor may it attest consent for acme's member (a member without a key: only its home partner may),
    # asked with a valid request or not: the answer of a member that does not exist
    for body in ({"purpose": "loyalty", "status": "given"}, {}):
        _same_refusal(api, "/v1/customers/{}/consents", bea.hex, method="POST", json=body)
    history = api.client.get(f"/v1/customers/{bea.hex}/consents", headers=acme).json()
    assert [e["controller"] for e in history] == ["acme"]


def test_a_member_with_its_own_key_is_reached_by_any_partner_and_must_sign(api: Api) -> None:
    """A member holding a key may consent and redeem at any partner, by its own signature: borealis
    reaches acme's keyed member, and is told that the member signs (which this API does not relay yet)."""
    cai = api.customer("acme", keyed=True)
    borealis = api.key("borealis")
    consent = api.client.post(
        f"/v1/customers/{cai.hex}/consents", headers=borealis, json={"purpose": "loyalty", "status": "given"}
    )
    assert consent.status_code == 403 and "its own key" in consent.json()["detail"]
    redeem = api.client.post(f"/v1/customers/{cai.hex}/points/redeem", headers=borealis, json={"amount": 1})
    assert redeem.status_code == 403 and "signed" in redeem.json()["detail"]
    _same_refusal(api, "/v1/customers/{}/points", cai.hex)  # its records stay acme's to read


def test_a_member_with_a_key_is_not_consented_for_by_a_partner(api: Api) -> None:
    cai = api.customer(keyed=True)
    answer = api.client.post(
        f"/v1/customers/{cai.hex}/consents",
        headers=api.key("acme"),
        json={"purpose": "loyalty", "status": "given"},
    )
    assert answer.status_code == 403 and "its own key" in answer.json()["detail"]
    assert api.client.get(f"/v1/customers/{cai.hex}/consents", headers=api.key("acme")).json() == []


def test_bad_consent_requests_are_4xx_problems(api: Api) -> None:
    bea = api.customer()
    acme = api.key("acme")
    base = f"/v1/customers/{bea.hex}/consents"
    for body, status, words in [
        ({"purpose": "astrology", "status": "given"}, 422, "unknown purpose"),
        ({"purpose": "loyalty", "status": "maybe"}, 422, "status"),
        (
            {"purpose": "loyalty", "status": "withdrawn", "expires_at": "2030-01-01T00:00:00Z"},
            422,
            "expires_at",
        ),
        ({"purpose": "loyalty", "status": "given", "expires_at": "2030-01-01T00:00:00"}, 422, "expires_at"),
        ({"purpose": "loyalty", "status": "withdrawn"}, 422, "no 'loyalty' consent"),
    ]:
        answer = api.client.post(base, headers=acme, json=body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.headers["content-type"] == PROBLEM and words in answer.json()["detail"]
    assert api.client.get(f"{base}/astrology", headers=acme).status_code == 422
    assert api.client.get(f"{base}/loyalty", headers=acme, params={"at": "yesterday"}).status_code == 422
    assert (
        api.client.get(f"{base}/loyalty", headers=acme, params={"at": "2026-01-01T00:00:00"}).status_code
        == 422
    )
    assert api.client.get(base, headers=acme).json() == []


# --- points -----------------------------------------------------------------------------------------------


def test_points_earned_redeemed_and_shown_with_the_chains_balance(api: Api) -> None:
    bea = api.customer()
    acme = api.key("acme")
    base = f"/v1/customers/{bea.hex}"
    refused = api.client.post(f"{base}/points/earn", headers=acme, json={"amount": 100})
    assert refused.status_code == 409 and refused.json()["title"] == "Consent required"
    api.client.post(f"{base}/consents", headers=acme, json={"purpose": "loyalty", "status": "given"})
    earned = api.client.post(f"{base}/points/earn", headers=acme, json={"amount": 100, "external_key": "E-1"})
    assert earned.status_code == 201, earned.text
    assert earned.json() | {"block_number": 0} == {
        "member": bea.hex,
        "kind": "earn",
        "amount": 100,
        "balance": 100,
        "block_number": 0,
    }
    redeemed = api.client.post(f"{base}/points/redeem", headers=acme, json={"amount": 30})
    assert redeemed.status_code == 201 and redeemed.json()["balance"] == 70
    statement = api.client.get(f"{base}/points", headers=acme).json()
    assert statement["balance"] == api.crm.coalition.loyalty.balance_of(bea.member) == 70
    assert [(line["kind"], line["amount"], line["partner"]) for line in statement["history"]] == [
        ("earn", 100, "acme"),
        ("redeem", 30, "acme"),
    ]
    too_much = api.client.post(f"{base}/points/redeem", headers=acme, json={"amount": 71})
    assert too_much.status_code == 409 and too_much.json()["error"] == "LoyaltyInsufficientBalance"
    twice = api.client.post(f"{base}/points/earn", headers=acme, json={"amount": 5, "external_key": "E-1"})
    assert twice.status_code == 422 and "already recorded" in twice.json()["detail"]
    assert api.client.get(f"{base}/points", headers=acme).json()["balance"] == 70  # neither wrote anything


def test_another_partner_reads_no_points_and_moves_none(api: Api) -> None:
    bea = api.customer()
    acme = api.key("acme")
    api.client.post(
        f"/v1/customers/{bea.hex}/consents", headers=acme, json={"purpose": "loyalty", "status": "given"}
    )
    api.client.post(f"/v1/customers/{bea.hex}/points/earn", headers=acme, json={"amount": 50})
    _same_refusal(api, "/v1/customers/{}/points", bea.hex)
    for action in ("earn", "redeem"):
        for body in ({"amount": 10}, {}):
            _same_refusal(api, "/v1/customers/{}/points/" + action, bea.hex, method="POST", json=body)
    assert api.crm.coalition.loyalty.balance_of(bea.member) == 50


def test_bad_amounts_are_422_problems(api: Api) -> None:
    bea = api.customer()
    acme = api.key("acme")
    api.client.post(
        f"/v1/customers/{bea.hex}/consents", headers=acme, json={"purpose": "loyalty", "status": "given"}
    )
    for amount in (0, -5, 10**40, 1.5, "ten", None):
        answer = api.client.post(
            f"/v1/customers/{bea.hex}/points/earn", headers=acme, json={"amount": amount}
        )
        assert answer.status_code == 422, (amount, answer.text)
        assert answer.headers["content-type"] == PROBLEM
    assert api.client.get(f"/v1/customers/{bea.hex}/points", headers=acme).json()["balance"] == 0


def test_a_repeated_idempotency_key_earns_once(api: Api) -> None:
    bea = api.customer()
    acme = api.key("acme")
    base = f"/v1/customers/{bea.hex}"
    api.client.post(f"{base}/consents", headers=acme, json={"purpose": "loyalty", "status": "given"})
    keyed = acme | {"Idempotency-Key": "earn-" + os.urandom(6).hex()}
    first = api.client.post(f"{base}/points/earn", headers=keyed, json={"amount": 10})
    again = api.client.post(f"{base}/points/earn", headers=keyed, json={"amount": 10})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    other = api.client.post(f"{base}/points/earn", headers=keyed, json={"amount": 11})
    assert other.status_code == 422 and other.headers["content-type"] == PROBLEM
    assert api.crm.coalition.loyalty.balance_of(bea.member) == 10


def test_another_partner_relays_a_keyed_members_own_signatures(api: Api) -> None:
    """Acme's member who holds a key consents to borealis and redeems there by her own signatures
    (made on her device), which borealis relays; a replay and another key's signature are refused with
    words, and change nothing."""
    from eth_account import Account

    from api.usecases import signing

    cai = api.customer("acme", keyed=True)
    assert cai.key is not None
    borealis = api.key("borealis")
    base = f"/v1/customers/{cai.hex}"
    signed = signing.customer_signs_consent(api.crm, cai.key, cai.member, "borealis", "loyalty")
    body = {
        "purpose": "loyalty",
        "status": "given",
        "typed_data": signed.typed_data,
        "signature": "0x" + signed.signature.hex(),
        "receipt": signed.receipt,
    }
    given = api.client.post(f"{base}/consents", headers=borealis, json=body)
    assert given.status_code == 201, given.text
    replay = api.client.post(f"{base}/consents", headers=borealis, json=body)
    assert replay.status_code == 422 and "already used" in replay.json()["detail"]
    earned = api.client.post(f"{base}/points/earn", headers=borealis, json={"amount": 20})
    assert earned.status_code == 201 and earned.json()["balance"] == 20
    forged = signing.sign(Account.create(), signing.redeem_typed_data(
        api.crm, Principal.of_customer(cai.member), cai.member, "borealis", 5
    ))  # fmt: skip
    wrong = api.client.post(
        f"{base}/points/redeem",
        headers=borealis,
        json={"amount": 5, "typed_data": forged.typed_data, "signature": "0x" + forged.signature.hex()},
    )
    assert wrong.status_code == 422 and "not by member" in wrong.json()["detail"]
    redeem = signing.customer_signs_redeem(api.crm, cai.key, cai.member, "borealis", 5)
    sent = {"amount": 5, "typed_data": redeem.typed_data, "signature": "0x" + redeem.signature.hex()}
    redeemed = api.client.post(f"{base}/points/redeem", headers=borealis, json=sent)
    assert redeemed.status_code == 201, redeemed.text
    assert redeemed.json()["balance"] == 15
    again = api.client.post(f"{base}/points/redeem", headers=borealis, json=sent)
    assert again.status_code == 422 and api.crm.coalition.loyalty.balance_of(cai.member) == 15
    half = api.client.post(
        f"{base}/points/redeem", headers=borealis, json={"amount": 5, "signature": sent["signature"]}
    )
    assert half.status_code == 422 and half.headers["content-type"] == PROBLEM


def test_a_customers_timeline_shows_each_change_without_its_values(api: Api) -> None:
    headers = api.key("acme")
    created = api.client.post("/v1/customers", headers=headers, json={"name": "Tilly Timeline"}).json()[
        "member"
    ]
    assert (
        api.client.patch(
            f"/v1/customers/{created}", headers=headers, json={"email": "tilly@example.org"}
        ).status_code
        == 200
    )
    entries = api.client.get(f"/v1/customers/{created}/timeline", headers=headers)
    assert entries.status_code == 200, entries.text
    events = [e["event"] for e in entries.json()]
    assert events[0] == "registered" and len(events) >= 2
    assert "tilly@example.org" not in entries.text and "email" in entries.text
    assert api.client.get(f"/v1/customers/{created}/timeline", headers=api.key("borealis")).status_code == 404
