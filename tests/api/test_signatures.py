"""A customer's signature relayed by a partner: only for the very act she signed, once, in time.

Each hostile relay (another member, another partner, another amount, purpose or receipt, an expired
or a used signature, a forged file) is refused with words before anything is written, on or off chain
(issue 30, high 2)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from eth_account import Account
from sqlmodel import select

from api.errors import InvalidInput
from api.principal import Principal
from api.usecases.consent import give_consent
from api.usecases.customer_keys import change_customer_key, customer_binding
from api.usecases.customers import register_customer
from api.usecases.loyalty import PointsRequest, earn_points, redeem_points
from api.usecases.signing import (
    customer_signs_consent,
    customer_signs_key_change,
    customer_signs_redeem,
    read_signature_file,
    redeem_typed_data,
    write_signature_file,
)
from offchain.models import ConsentReceipt, CustomerCreate, PointEvent

P = Principal.of_partner


def count(crm, model) -> int:
    with crm.unit_of_work() as db:
        return len(db.exec(select(model)).all())


@pytest.fixture
def bea(crm):
    """A member with a key of her own (held by her alone), loyalty consent signed to acme, 50 points."""
    key = Account.create()
    member = register_customer(
        crm, P("acme"), CustomerCreate(name="Bea"), signer=key.address, binding=customer_binding(crm, key)
    )
    give_consent(
        crm, P("acme"), member, "loyalty", signed=customer_signs_consent(crm, key, member, "acme", "loyalty")
    )
    earn_points(crm, P("acme"), PointsRequest(member, 50))
    return member, key


def unchanged(crm, member):
    """What a refused relay must leave as it was: the store's rows, the member's balance and nonce."""
    return (
        count(crm, PointEvent),
        count(crm, ConsentReceipt),
        crm.coalition.loyalty.balance_of(member),
        crm.coalition.members.member(member).nonce,
        crm.coalition.chain.w3.eth.block_number,
    )


def test_a_redemption_signature_counts_only_for_its_member_partner_and_amount(crm, bea):
    member, key = bea
    other_key = Account.create()
    other = register_customer(
        crm,
        P("acme"),
        CustomerCreate(name="Cy"),
        signer=other_key.address,
        binding=customer_binding(crm, other_key),
    )
    signed = customer_signs_redeem(crm, key, member, "cafe", 5)
    before = unchanged(crm, member)
    with pytest.raises(InvalidInput, match=f"is for member 0x{member.hex()}, not 0x{other.hex()}"):
        redeem_points(crm, P("cafe"), PointsRequest(other, 5), signed=signed)
    cafe = crm.signer("cafe").address
    with pytest.raises(InvalidInput, match=f"for a redemption at {cafe}, not at 'borealis'"):
        redeem_points(crm, P("borealis"), PointsRequest(member, 5), signed=signed)
    with pytest.raises(InvalidInput, match="for 5 points, not 40"):
        redeem_points(crm, P("cafe"), PointsRequest(member, 40), signed=signed)
    forged = dataclasses.replace(
        signed, typed_data={**signed.typed_data, "message": {**signed.message, "amount": 40}}
    )  # the amount edited in the file: the signature no longer recovers to her key
    with pytest.raises(InvalidInput, match="not by member"):
        redeem_points(crm, P("cafe"), PointsRequest(member, 40), signed=forged)
    assert unchanged(crm, member) == before
    # the genuine relay works once; the same file again is a replay
    assert redeem_points(crm, P("cafe"), PointsRequest(member, 5), signed=signed).balance == 45
    after = unchanged(crm, member)
    with pytest.raises(InvalidInput, match="already used"):
        redeem_points(crm, P("cafe"), PointsRequest(member, 5), signed=signed)
    assert unchanged(crm, member) == after


def test_an_expired_signature_or_one_for_another_act_is_refused(crm, bea):
    member, key = bea
    now = crm.coalition.members.chain_time()
    expired = customer_signs_redeem(crm, key, member, "cafe", 5, deadline=now - 1)
    before = unchanged(crm, member)
    with pytest.raises(InvalidInput, match="expired at"):
        redeem_points(crm, P("cafe"), PointsRequest(member, 5), signed=expired)
    with pytest.raises(InvalidInput, match="at most 24 hours ahead"):
        customer_signs_redeem(crm, key, member, "cafe", 5, deadline=now + 30 * 86400)
    consent = customer_signs_consent(crm, key, member, "cafe", "profiling")
    with pytest.raises(InvalidInput, match="is for a Consent message, not a redemption"):
        redeem_points(crm, P("cafe"), PointsRequest(member, 5), signed=consent)
    with pytest.raises(InvalidInput, match="for another purpose"):
        give_consent(crm, P("cafe"), member, "marketing", signed=consent)
    with pytest.raises(InvalidInput, match="towards"):
        give_consent(crm, P("borealis"), member, "profiling", signed=consent)
    tampered = dataclasses.replace(consent, receipt={**(consent.receipt or {}), "noticeVersion": "2"})
    with pytest.raises(InvalidInput, match="of another receipt"):
        give_consent(crm, P("cafe"), member, "profiling", signed=tampered)
    rehashed = dataclasses.replace(
        consent,
        typed_data={**consent.typed_data, "message": {**consent.message, "receiptHash": "0x" + "11" * 32}},
    )
    with pytest.raises(InvalidInput, match="not by member"):
        give_consent(crm, P("cafe"), member, "profiling", signed=rehashed)
    assert unchanged(crm, member) == before
    give_consent(crm, P("cafe"), member, "profiling", signed=consent)  # the act she signed, relayed by cafe


def test_a_key_change_signature_is_for_its_member_and_only_once(crm, bea):
    member, key = bea
    new = Account.create()
    cy = Account.create()
    other = register_customer(
        crm, P("acme"), CustomerCreate(name="Cy"), signer=cy.address, binding=customer_binding(crm, cy)
    )
    signed = customer_signs_key_change(crm, key, member, new.address)
    before = unchanged(crm, member)
    with pytest.raises(InvalidInput, match=f"is for member 0x{member.hex()}"):
        change_customer_key(crm, P("borealis"), other, signed)
    assert unchanged(crm, member) == before
    change_customer_key(crm, P("borealis"), member, signed)
    assert crm.coalition.members.member(member).signer == new.address
    with pytest.raises(InvalidInput, match=r"already used|key already"):
        change_customer_key(crm, P("borealis"), member, signed)


def test_the_signature_file_round_trips_and_a_bad_one_is_one_clear_line(crm, bea, tmp_path):
    member, key = bea
    signed = customer_signs_redeem(crm, key, member, "cafe", 5)
    path = tmp_path / "redeem.json"
    write_signature_file(path, signed)
    assert read_signature_file(path) == signed
    typed = json.loads(path.read_text())["typedData"]
    assert Account.sign_typed_data(key.key, full_message=typed).signature == signed.signature
    with pytest.raises(InvalidInput, match="exists"):
        write_signature_file(path, signed)
    # the typed data is the same function's, for the HTTP API and the CLI alike
    prepared = redeem_typed_data(crm, Principal.of_customer(member), member, "cafe", 5)
    assert set(prepared) == {"domain", "types", "primaryType", "message"}
    assert prepared["domain"] == typed["domain"] and prepared["types"] == typed["types"]
    for content, words in (
        ("not json", "not JSON"),
        ("{}", "not a ledgercrm signature file"),
        (json.dumps({**json.loads(path.read_text()), "signature": "0x12"}), "not 65 bytes"),
    ):
        bad = tmp_path / f"bad-{len(content)}.json"
        bad.write_text(content)
        with pytest.raises(InvalidInput, match=words):
            read_signature_file(bad)
    with pytest.raises(InvalidInput, match="cannot read"):
        read_signature_file(tmp_path / "nowhere.json")
