"""Invitations over HTTP: a one-time code binds a key made on the customer's own device to her member id
(her signature, relayed by her home partner), once; every other use of a code is refused with a
problem, in words, and changes nothing on chain or in the store."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlmodel import select

from api.errors import Conflict, NotFound
from api.principal import Principal
from api.usecases.customer_keys import bind_customer_key, customer_binding
from api.usecases.invitations import invite_customer
from offchain.models import Invitation
from tests.http.conftest import Api


def _typed(api: Api, code: str, signer: str) -> Any:
    return api.client.post("/v1/invitations/binding/typed-data", json={"code": code, "signer": signer})


def _bind(api: Api, code: str, key: LocalAccount, typed: dict[str, Any]) -> Any:
    signature = Account.sign_typed_data(key.key, full_message=typed).signature
    return api.client.post(
        "/v1/invitations/binding",
        json={"code": code, "typed_data": typed, "signature": "0x" + signature.hex()},
    )


def _problem(answer: Any, status: int, words: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert words in answer.json()["detail"]


def test_a_code_binds_a_key_made_on_her_device_once(api: Api) -> None:
    erin = api.customer("acme", name="Erin Invited")
    invited = invite_customer(api.crm, Principal.of_partner("acme"), erin.member)
    with api.crm.unit_of_work() as db:  # only the code's hash is kept
        row = db.exec(select(Invitation).where(Invitation.member_id == erin.member)).one()
        assert row.code_hash == hashlib.sha256(invited.code.encode()).digest()
        assert invited.code not in repr(row.model_dump())
    key, stranger = Account.create(), Account.create()
    answer = _typed(api, invited.code, key.address)
    assert answer.status_code == 200, answer.text
    assert answer.json()["member"] == erin.hex
    typed = answer.json()["typed_data"]
    assert typed["primaryType"] == "SignerBinding" and typed["message"]["signer"] == key.address

    # signed by another key than the one it names: refused, and the code stays good
    _problem(
        _bind(api, invited.code, stranger, typed), 422, f"not signed by the key it names ({key.address})"
    )
    assert api.crm.coalition.members.member(erin.member).signer is None

    answer = _bind(api, invited.code, key, typed)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"member": erin.hex, "signer": key.address}
    assert api.crm.coalition.members.member(erin.member).signer == key.address
    assert api.sign_in(key)["member"] == erin.hex  # she signs in with it

    # the same code again, even with a fresh binding: used
    _problem(_typed(api, invited.code, stranger.address), 410, "used already")
    _problem(_bind(api, invited.code, stranger, typed), 410, "used already")
    assert api.crm.coalition.members.member(erin.member).signer == key.address


def test_unknown_expired_and_keyed_codes_are_refused_in_words(api: Api) -> None:
    key = Account.create()
    _problem(_typed(api, "inv_" + "x" * 32, key.address), 404, "no invitation has this code")
    _problem(_typed(api, "not-a-code", key.address), 404, "not an invitation code")

    fay = api.customer("acme", name="Fay Expired")
    expired = invite_customer(
        api.crm, Principal.of_partner("acme"), fay.member, lifetime=timedelta(minutes=5)
    )
    with api.crm.unit_of_work() as db:
        row = db.exec(select(Invitation).where(Invitation.member_id == fay.member)).one()
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        db.add(row)
    _problem(_typed(api, expired.code, key.address), 410, "expired: ask acme for a new one")

    # a member that came to hold a key another way since (`customer key bind`): the code is refused
    gil = api.customer("acme", name="Gil Keyed Later")
    pending = invite_customer(api.crm, Principal.of_partner("acme"), gil.member)
    typed = _typed(api, pending.code, key.address).json()["typed_data"]
    other = Account.create()
    bind_customer_key(
        api.crm,
        Principal.of_partner("acme"),
        gil.member,
        other.address,
        customer_binding(api.crm, other)(gil.member),
    )
    _problem(_bind(api, pending.code, key, typed), 409, "holds a key already")
    assert api.crm.coalition.members.member(gil.member).signer == other.address


def test_only_the_home_partner_invites_and_only_a_member_without_a_key(api: Api) -> None:
    hal = api.customer("acme", name="Hal Home")
    with pytest.raises(NotFound):
        invite_customer(api.crm, Principal.of_partner("borealis"), hal.member)
    keyed = api.customer("acme", name="Ida Keyed", keyed=True)
    with pytest.raises(Conflict, match="holds a key already"):
        invite_customer(api.crm, Principal.of_partner("acme"), keyed.member)
    with api.crm.unit_of_work() as db:
        assert db.exec(select(Invitation).where(Invitation.member_id == hal.member)).first() is None
