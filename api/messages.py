"""What the command line (and, next, the HTTP API) says when something is refused: one line, in words.

A revert arrives as a named exception with the custom error's arguments (ledger/errors.py); its
message is the error as Solidity spells it (`LoyaltyInsufficientBalance(member=0x…, balance=100,
needed=101)`), which is right for a log and wrong for a person. `describe` turns each into a sentence:
times as UTC dates, bytes as 0x-hex, amounts as numbers. An error without a sentence of its own still
reads as words (its name split, its arguments listed), never as a Python repr.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ledger.errors import ContractPanic, ContractRevert, NonceTaken

Sentence = Callable[[dict[str, Any]], str]


def _date(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _when(seconds: int) -> str:
    """A time as a date, or, past any calendar (a deadline of 2**255), as the number it is."""
    try:
        return _date(seconds)
    except (OverflowError, OSError, ValueError):
        return f"{seconds:,} seconds after 1970"


def _hex(value: Any) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


SENTENCES: dict[str, Sentence] = {
    "LoyaltyInsufficientBalance": lambda f: (
        f"member {_hex(f['member'])} holds {f['balance']:,} points; {f['needed']:,} were asked for"
    ),
    "LoyaltyNotPartner": lambda f: f"{f['account']} is not a partner of the consortium",
    "LoyaltyZeroAmount": lambda f: "an amount of points must be at least 1",
    "ConsentExpiryInPast": lambda f: (
        f"the expiry {_date(f['expiresAt'])} is not in the future (the chain's time is {_date(f['now_'])})"
    ),
    "ConsentNotPartner": lambda f: f"{f['account']} is not a partner of the consortium",
    "AnchorNotPartner": lambda f: f"{f['account']} is not a partner of the consortium",
    "AnchorUnknownBatch": lambda f: f"the chain has no anchored batch {f['batchId']}",
    "ConsortiumNotPartner": lambda f: f"{f['account']} is not a partner of the consortium",
    "ConsortiumAlreadyMember": lambda f: f"{f['account']} is already a member of the consortium",
    "ConsortiumAlreadyVoted": lambda f: f"{f['voter']} has already voted on proposal {f['proposalId']}",
    "ConsortiumQuorumNotReached": lambda f: (
        f"proposal {f['proposalId']} has {f['votes']} of the {f['needed']} votes it needs"
    ),
    "ConsortiumUnknownProposal": lambda f: f"there is no proposal {f['proposalId']}",
    "ConsortiumProposalClosed": lambda f: f"proposal {f['proposalId']} is closed",
    "ConsortiumLastPartner": lambda f: f"{f['account']} is the last partner and cannot be removed",
    "ConsortiumNotDeployer": lambda f: (
        f"{f['account']} did not deploy this Consortium: only its deployer records the coalition's contracts"
    ),
    "ConsortiumContractsAlreadyRecorded": lambda f: (
        "this Consortium already records the coalition's contracts: they are recorded once, at deployment"
    ),
    "ConsortiumForeignContract": lambda f: (
        f"{f['account']} is not a coalition contract wired to this Consortium"
    ),
    "DecisionUnknownModel": lambda f: f"there is no registered model {f['modelId']}",
    "DecisionNotRegistrant": lambda f: (
        f"only model {f['modelId']}'s registrant {f['registrant']} logs decisions against it,"
        f" not {f['account']}"
    ),
    "DecisionConsentRequired": lambda f: (
        f"member {_hex(f['member'])} has no valid profiling consent towards {f['partner']}"
    ),
    "MemberNotPartner": lambda f: f"{f['account']} is not a partner of the consortium",
    "MemberUnknown": lambda f: f"member {_hex(f['member'])} is not enrolled on chain",
    "MemberIsErased": lambda f: f"member {_hex(f['member'])} was erased",
    "MemberAlreadyErased": lambda f: f"member {_hex(f['member'])} is already erased",
    "MemberAlreadyEnrolled": lambda f: f"member {_hex(f['member'])} is already enrolled by {f['home']}",
    "MemberNotHomePartner": lambda f: (
        f"only member {_hex(f['member'])}'s home partner {f['home']} may do this, not {f['account']}"
    ),
    "MemberInvalidSignature": lambda f: (
        f"the signature is not member {_hex(f['member'])}'s (its key is {f['signer']}),"
        " or it was used already"
    ),
    "MemberSignatureExpired": lambda f: (
        f"the member's signature expired at {_date(f['deadline'])} (the chain's time is {_date(f['now_'])})"
    ),
    "MemberNoSigner": lambda f: f"member {_hex(f['member'])} has no key of its own to sign with",
    "MemberSignerAlreadyBound": lambda f: f"member {_hex(f['member'])} already has a key ({f['signer']})",
    "MemberSameSigner": lambda f: f"{f['signer']} is member {_hex(f['member'])}'s key already",
    "MemberAlreadyVoted": lambda f: (
        f"{f['voter']} has already voted to give member {_hex(f['member'])} the key {f['newSigner']}"
    ),
    "MemberResetQuorumNotReached": lambda f: (
        f"the vote on member {_hex(f['member'])}"
        + (" (to erase it)" if int(f["newSigner"], 16) == 0 else f" (for {f['newSigner']})")
        + f" has {f['votes']} of the {f['needed']} votes it needs"
    ),
    "LoyaltyConsentRequired": lambda f: (
        f"member {_hex(f['member'])} has no valid loyalty consent towards {f['partner']}"
    ),
    "LoyaltyAmountAboveCap": lambda f: f"{f['amount']:,} points is above the cap of {f['cap']:,} per earn",
    "LoyaltySupplyCapExceeded": lambda f: (
        f"{f['amount']:,} more points would take the supply of {f['totalSupply']:,}"
        f" above its cap of {f['cap']:,}"
    ),
    "LoyaltySignatureRequired": lambda f: (
        f"member {_hex(f['member'])} holds its own key: a redemption must be signed with it"
    ),
    "LoyaltyNotHomePartner": lambda f: (
        f"only member {_hex(f['member'])}'s home partner {f['home']} may redeem for it, not {f['account']}"
    ),
    "ConsentNotGiven": lambda f: (
        f"member {_hex(f['member'])} has no given consent towards {f['controller']}"
        " for this purpose to withdraw"
    ),
    "ConsentUnknownPurpose": lambda f: f"{_hex(f['purpose'])} is not one of the declared purposes",
    "ConsentSignatureRequired": lambda f: (
        f"member {_hex(f['member'])} holds its own key: its consent must be signed with it"
    ),
    "ConsentNotHomePartner": lambda f: (
        f"only member {_hex(f['member'])}'s home partner {f['home']} may attest its consent,"
        f" not {f['account']}"
    ),
    "ConsentEmptyReceipt": lambda f: "a given consent needs the hash of its receipt",
    "ConsortiumProposalExpired": lambda f: f"proposal {f['proposalId']} expired at {_date(f['expiresAt'])}",
    "DecisionScoreOutOfRange": lambda f: f"a score of {f['scoreBps']} basis points is outside 0-10000",
    "AnchorNotOwnLog": lambda f: (
        f"the root {_hex(f['root'])} at {f['size']:,} leaves is not of {f['partner']}'s own log (it does not"
        " start with that partner's genesis leaf)"
    ),
    "AnchorHeadsMalformed": lambda f: (
        f"heads to anchor together come as 1 to 32 roots, each with its size and consistency proof; got"
        f" {f['roots']} roots, {f['sizes']} sizes and {f['proofs']} proofs"
    ),
    "AnchorGrowthAboveCap": lambda f: (
        f"a head may add at most {f['cap']:,} leaves; this one goes from {f['headSize']:,} to {f['size']:,}"
    ),
    "MemberSignerIsContract": lambda f: (
        f"{f['signer']} is a contract: a member's key must be a key she holds"
    ),
    "MemberDeadlineTooFar": lambda f: (
        f"the signature's deadline {_when(f['deadline'])} is too far ahead: the latest accepted now is"
        f" {_date(f['latest'])}"
    ),
    "MemberSignatureRequired": lambda f: (
        f"member {_hex(f['member'])} holds its own key: it is erased only by its signature or by a vote of"
        " the partners"
    ),
    "MemberSameHome": lambda f: f"{f['home']} is member {_hex(f['member'])}'s home partner already",
    "MemberHomeNotPartner": lambda f: f"{f['home']} is not a partner of the consortium, so not a home",
    "MemberInvalidVote": lambda f: "that vote is not one the partners can carry out",
    "LoyaltyPeriodCapExceeded": lambda f: (
        f"{f['partner']} has issued {f['issued']:,} points today; {f['amount']:,} more would pass its daily"
        f" cap of {f['cap']:,}"
    ),
}


def _words(name: str) -> str:
    """`LoyaltyInsufficientBalance` -> `loyalty insufficient balance`."""
    return " ".join(part.lower() for part in re.findall(r"[A-Z][a-z0-9]*|[a-z0-9]+", name))


def describe(exc: BaseException) -> str:
    """One line for a person."""
    if isinstance(exc, NonceTaken):
        account = f" {exc.sender}" if exc.sender else ""
        return (
            f"another sender used the partner's account{account} at the same moment (its next transaction"
            " number was taken): this transaction was not sent; run the command again"
        )
    if isinstance(exc, ContractPanic):
        return (
            f"a contract failed an internal check (panic code {getattr(exc, 'code', '?')}); nothing changed"
        )
    if isinstance(exc, ContractRevert) and exc.error_name:
        sentence = SENTENCES.get(exc.error_name)
        if sentence is not None:
            try:
                return f"refused by the chain: {sentence(exc.fields)}"
            except (KeyError, TypeError, ValueError, OverflowError):
                pass  # an argument missing or odd: the general form below still says it all
        detail = ", ".join(f"{key.rstrip('_')} {_hex(value)}" for key, value in exc.fields.items())
        return f"refused by the chain: {_words(exc.error_name)}" + (f" ({detail})" if detail else "")
    return str(exc) or type(exc).__name__
