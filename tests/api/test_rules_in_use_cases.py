"""Issue 11's hostile partner, through the use cases, on every store and both chains: each refusal comes
before anything is written, off chain or on."""

from __future__ import annotations

import pytest
from eth_account import Account
from sqlmodel import select

from api.errors import CustomerIsErased, InvalidInput, NotAllowed
from api.principal import Principal
from api.usecases.consent import give_consent, withdraw_consent
from api.usecases.customer_keys import bind_customer_key, customer_binding
from api.usecases.customers import register_customer
from api.usecases.erasure import erase_customer
from api.usecases.loyalty import PointsRequest, earn_points, reconcile, redeem_points
from api.usecases.signing import customer_signs_consent, customer_signs_redeem
from ledger.clients import purpose_id
from offchain.models import ConsentReceipt, CustomerCreate, PointEvent

P = Principal.of_partner
OP = Principal.operator()


def rows(crm, model) -> int:
    with crm.unit_of_work() as db:
        return len(db.exec(select(model)).all())


def test_row1_another_partner_cannot_redeem(crm, alice):
    give_consent(crm, P("acme"), alice, "loyalty")
    earn_points(crm, P("acme"), PointsRequest(alice, 100))
    borealis = crm.coalition.consortium.partners()[1]
    before = (rows(crm, PointEvent), crm.coalition.chain.w3.eth.block_number)
    with pytest.raises(NotAllowed, match="home partner"):
        redeem_points(crm, P("borealis"), PointsRequest(alice, 100))
    assert (rows(crm, PointEvent), crm.coalition.chain.w3.eth.block_number) == before
    assert crm.coalition.loyalty.position_of(borealis) == 0
    assert reconcile(crm, OP).ok


def test_row2_another_partner_cannot_attest_consent(crm, alice):
    with pytest.raises(NotAllowed, match="home partner"):
        give_consent(crm, P("cafe"), alice, "profiling")
    with pytest.raises(InvalidInput, match="unknown purpose"):
        give_consent(crm, P("acme"), alice, "selling-data")
    assert rows(crm, ConsentReceipt) == 0


def test_row4_after_erasure_nothing_is_earned_redeemed_or_consented(crm, alice):
    give_consent(crm, P("acme"), alice, "loyalty")
    earn_points(crm, P("acme"), PointsRequest(alice, 30))
    erase_customer(crm, P("acme"), alice)
    acme = crm.coalition.consortium.partners()[0]
    assert not crm.coalition.consent.is_valid(alice, acme, purpose_id("loyalty"))
    assert crm.coalition.loyalty.balance_of(alice) == 0
    for attempt in (
        lambda: earn_points(crm, P("acme"), PointsRequest(alice, 1)),
        lambda: redeem_points(crm, P("acme"), PointsRequest(alice, 1)),
        lambda: give_consent(crm, P("acme"), alice, "loyalty"),
    ):
        with pytest.raises(CustomerIsErased):
            attempt()
    assert reconcile(crm, OP).ok  # the forfeited balance is what the store expects of an erased member


def test_row8_withdrawing_what_was_never_given_and_erasing_twice_are_refused(crm, alice):
    with pytest.raises(InvalidInput, match="no 'loyalty' consent"):
        withdraw_consent(crm, P("acme"), alice, "loyalty")
    acme = crm.coalition.consortium.partners()[0]
    assert crm.coalition.consent.history_length(alice, acme, purpose_id("loyalty")) == 0
    assert rows(crm, ConsentReceipt) == 0
    erase_customer(crm, P("acme"), alice)
    with pytest.raises(CustomerIsErased, match="already erased"):
        erase_customer(crm, P("acme"), alice)


def test_a_member_with_a_key_signs_and_no_partner_acts_for_it(crm):
    key, stranger = Account.create(), Account.create()
    bea = register_customer(
        crm, P("acme"), CustomerCreate(name="Bea"), signer=key.address, binding=customer_binding(crm, key)
    )
    with pytest.raises(NotAllowed, match="own key"):
        give_consent(crm, P("acme"), bea, "loyalty")
    with pytest.raises(InvalidInput, match="not by member"):
        give_consent(
            crm,
            P("borealis"),
            bea,
            "loyalty",
            signed=customer_signs_consent(crm, stranger, bea, "borealis", "loyalty"),
        )
    assert rows(crm, ConsentReceipt) == 0
    give_consent(
        crm,
        P("borealis"),
        bea,
        "loyalty",
        signed=customer_signs_consent(crm, key, bea, "borealis", "loyalty"),
    )
    earn_points(crm, P("borealis"), PointsRequest(bea, 20))
    with pytest.raises(NotAllowed, match="own key"):
        redeem_points(crm, P("acme"), PointsRequest(bea, 5))  # not even its home partner
    signed = customer_signs_redeem(crm, key, bea, "cafe", 5)
    assert redeem_points(crm, P("cafe"), PointsRequest(bea, 5), signed=signed).balance == 15
    # a partner records a withdrawal towards itself without the member
    withdraw_consent(crm, P("borealis"), bea, "loyalty")
    with pytest.raises(InvalidInput, match="already has a key"):
        bind_customer_key(crm, P("acme"), bea, stranger.address, customer_binding(crm, stranger)(bea))


def test_a_key_is_bound_by_the_home_partner_only(crm, alice):
    key = Account.create()
    with pytest.raises(Exception, match="no member"):
        bind_customer_key(crm, P("borealis"), alice, key.address, customer_binding(crm, key)(alice))
    bind_customer_key(crm, P("acme"), alice, key.address, customer_binding(crm, key)(alice))
    assert crm.coalition.members.member(alice).signer == key.address
    give_consent(
        crm, P("cafe"), alice, "loyalty", signed=customer_signs_consent(crm, key, alice, "cafe", "loyalty")
    )
