"""A member's home and key over HTTP: she moves her home by her own signature (/v1/me/home), and the
partners vote on a member (/v1/members/{member}/votes: move her home, erase her, reset her lost key).
The rules are the MemberRegistry's and the use cases' (tests/api/test_member_governance.py); these
check that each route reaches them, answers what the chain says, and refuses what it must in words.
Who may call each route at all: tests/http/test_authorization_matrix.py."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.clients import VoteKind
from tests.http.conftest import Api

PROBLEM = "application/problem+json"


def _signed(api: Api, headers: dict[str, str], url: str, key: LocalAccount) -> dict[str, Any]:
    typed = api.client.get(url, headers=headers)
    assert typed.status_code == 200, typed.text
    signature = Account.sign_typed_data(key.key, full_message=typed.json()).signature
    return {"typed_data": typed.json(), "signature": "0x" + bytes(signature).hex()}


def test_a_customer_moves_her_home_by_her_own_signature_once(api: Api) -> None:
    her = api.customer("acme", name="Hanna Mover", keyed=True)
    assert her.key is not None
    members = api.crm.coalition.members
    acme, borealis = api.crm.signer("acme").address, api.crm.signer("borealis").address
    assert members.member(her.member).home == acme
    headers = api.bearer(her.key)
    body = _signed(api, headers, "/v1/me/home/typed-data?to=borealis", her.key)

    moved = api.client.post("/v1/me/home", headers=headers, json=body)

    assert moved.status_code == 200, moved.text
    assert moved.json() == {
        "member": her.hex,
        "previous": acme,
        "home": borealis,
        "block_number": moved.json()["block_number"],
    }
    assert members.member(her.member).home == borealis
    replayed = api.client.post("/v1/me/home", headers=headers, json=body)
    assert replayed.status_code == 422 and replayed.headers["content-type"] == PROBLEM
    assert "already used" in replayed.json()["detail"]
    already = api.client.get("/v1/me/home/typed-data?to=borealis", headers=headers)
    assert already.status_code == 422 and "home partner already" in already.json()["detail"]


def test_a_move_she_did_not_sign_is_refused_and_her_home_stays(api: Api) -> None:
    her = api.customer("acme", name="Ines Stays", keyed=True)
    other = api.customer("acme", name="Jon Elsewhere", keyed=True)
    assert her.key is not None and other.key is not None
    members = api.crm.coalition.members
    home = members.member(her.member).home
    headers = api.bearer(her.key)
    forged = _signed(api, headers, "/v1/me/home/typed-data?to=cafe", Account.create())
    # another customer's own signed move, sent in her session: it moves the sender, not its signer
    theirs = _signed(api, api.bearer(other.key), "/v1/me/home/typed-data?to=cafe", other.key)
    for body, words in ((forged, "not by member"), (theirs, f"not {her.hex}")):
        refused = api.client.post("/v1/me/home", headers=headers, json=body)
        assert refused.status_code == 422 and refused.headers["content-type"] == PROBLEM, refused.text
        assert words in refused.json()["detail"]
    assert members.member(her.member).home == home
    assert members.member(other.member).home == home
    nowhere = api.client.get("/v1/me/home/typed-data?to=0x" + "11" * 20, headers=headers)
    assert nowhere.status_code == 422 and "not a partner of the consortium" in nowhere.json()["detail"]


def test_partners_vote_a_keyless_members_home_to_another_partner(api: Api) -> None:
    member = api.customer("acme", name="Kai Orphan")
    members = api.crm.coalition.members
    cafe = api.crm.signer("cafe").address
    url = f"/v1/members/{member.hex}/votes"

    first = api.client.post(url, headers=api.key("acme"), json={"kind": "move-home", "to": "cafe"})

    assert first.status_code == 200, first.text
    tally = first.json()
    assert (tally["kind"], tally["target"], tally["votes"], tally["done"]) == ("move-home", cafe, 1, False)
    assert tally["needed"] == tally["partners"] // 2 + 1 > 1 and tally["counts_until"] is not None
    again = api.client.post(url, headers=api.key("acme"), json={"kind": "move-home", "to": cafe})
    assert again.status_code == 422 and "already voted" in again.json()["detail"]
    assert members.member(member.member).home == api.crm.signer("acme").address
    # borealis does not hold her record, and votes all the same: that is what the votes are for
    second = api.client.post(url, headers=api.key("borealis"), json={"kind": "move-home", "to": "cafe"})
    assert second.status_code == 200, second.text
    assert (second.json()["votes"], second.json()["done"], second.json()["counts_until"]) == (2, True, None)
    assert members.member(member.member).home == cafe


def test_a_vote_to_erase_or_to_reset_a_lost_key_is_counted_on_chain(api: Api) -> None:
    member = api.customer("acme", name="Lena Keyed", keyed=True)
    members = api.crm.coalition.members
    url = f"/v1/members/{member.hex}/votes"
    new_key = Account.create().address

    erase = api.client.post(url, headers=api.key("borealis"), json={"kind": "erase"})
    reset = api.client.post(url, headers=api.key("cafe"), json={"kind": "reset-key", "signer": new_key})

    assert erase.status_code == 200 and reset.status_code == 200, (erase.text, reset.text)
    assert (erase.json()["kind"], erase.json()["target"], erase.json()["votes"]) == ("erase", None, 1)
    assert (reset.json()["target"], reset.json()["votes"], reset.json()["done"]) == (new_key, 1, False)
    assert members.votes_for(member.member, VoteKind.ERASE, None)[0] == 1  # counted on chain, not done
    assert members.reset_votes(member.member, new_key)[0] == 1
    info = members.member(member.member)
    assert member.key is not None and not info.erased and info.signer == member.key.address


def test_bad_votes_are_4xx_problems_that_change_nothing(api: Api) -> None:
    keyless = api.customer("acme", name="Mo Plain")
    acme = api.key("acme")
    url = f"/v1/members/{keyless.hex}/votes"
    for body in (
        {"kind": "move-home"},  # where to?
        {"kind": "erase", "to": "cafe"},  # an erasure goes nowhere
        {"kind": "reset-key", "signer": "0x1234"},
        {"kind": "crown"},
        {"kind": "erase", "why": "because"},
    ):
        answer = api.client.post(url, headers=acme, json=body)
        assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM, (body, answer.text)
    no_key = api.client.post(
        url, headers=acme, json={"kind": "reset-key", "signer": Account.create().address}
    )
    assert no_key.status_code == 422 and "no key of its own" in no_key.json()["detail"]
    unknown = api.client.post(f"/v1/members/0x{'ab' * 32}/votes", headers=acme, json={"kind": "erase"})
    assert unknown.status_code == 404 and unknown.headers["content-type"] == PROBLEM
    assert api.crm.coalition.members.member(keyless.member).home == api.crm.signer("acme").address
