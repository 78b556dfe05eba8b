"""Every failure of the ledger layer: one root (`LedgerError`), and one class per Solidity custom error.

A revert reaches Python as the class named after the custom error, decoded from its 4-byte selector,
carrying the error's arguments as attributes (`exc.balance`, `exc.needed`, ...). Addresses arrive
checksummed, bytes32 values as `bytes`. `tests/ledger/test_errors.py` checks that every error in the
compiled ABIs has its class here, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any, ClassVar


class LedgerError(Exception):
    """Root of every error raised by the `ledger` package."""


class CompilationError(LedgerError):
    """The Solidity sources could not be compiled (the compiler's message is included)."""


class BackendError(LedgerError):
    """The chain could not be reached or answered something unexpected."""


class NonceTaken(BackendError):
    """The node refused a transaction because another one from the same account took its nonce first
    (another process, or a sender of this one, sent from the account between this one's signing and
    sending): it was not sent. `sender` is the account, when known."""

    def __init__(self, detail: str, sender: str | None = None) -> None:
        self.sender = sender
        super().__init__(detail)


# What nodes answer when a transaction's nonce was taken: anvil and geth ("nonce too low", a pooled one
# with the same nonce "replacement transaction underpriced"), Besu ("NONCE_TOO_LOW"), eth-tester
# ("Invalid transaction nonce: Expected 13, but got 12"). Lower case: matched against the lowered text.
NONCE_TAKEN_MARKS = (
    "nonce too low",
    "nonce_too_low",
    "invalid transaction nonce",
    "replacement transaction underpriced",
)


class DeploymentMismatch(LedgerError):
    """The code at a manifest's addresses is not the code the manifest (or this build) describes."""


class TransactionFailed(LedgerError):
    """A transaction was mined but failed without revert data (e.g. out of gas)."""


class ContractRevert(LedgerError):
    """A contract call reverted. Subclasses are the named custom errors; this class itself is used
    only for reverts with no custom error (a bare `revert()`, `Error(string)`, or an unknown selector)."""

    error_name: ClassVar[str] = ""

    def __init__(self, message: str | None = None, /, **fields: Any) -> None:
        self.fields = fields
        for key, value in fields.items():
            setattr(self, key, value)
        name = self.error_name or "revert"
        detail = ", ".join(f"{k}={_show(v)}" for k, v in fields.items())
        super().__init__(message or f"{name}({detail})")


class ContractPanic(ContractRevert):
    """A Solidity `Panic(uint256)`: an assertion, overflow or division by zero inside a contract."""

    error_name = "Panic"
    code: int


def _show(value: Any) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


class ConsortiumError(ContractRevert):
    pass


class ConsortiumNoFounders(ConsortiumError):
    pass


class ConsortiumZeroAddress(ConsortiumError):
    pass


class ConsortiumDuplicateFounder(ConsortiumError):
    account: str


class ConsortiumNotPartner(ConsortiumError):
    account: str


class ConsortiumInvalidAction(ConsortiumError):
    action: int


class ConsortiumAlreadyMember(ConsortiumError):
    account: str
    role: int


class ConsortiumNotMember(ConsortiumError):
    account: str


class ConsortiumLastPartner(ConsortiumError):
    account: str


class ConsortiumUnknownProposal(ConsortiumError):
    proposalId: int  # noqa: N815 - the Solidity argument's name


class ConsortiumProposalClosed(ConsortiumError):
    proposalId: int  # noqa: N815


class ConsortiumAlreadyVoted(ConsortiumError):
    proposalId: int  # noqa: N815
    voter: str


class ConsortiumQuorumNotReached(ConsortiumError):
    proposalId: int  # noqa: N815
    votes: int
    needed: int


class ConsortiumProposalExpired(ConsortiumError):
    proposalId: int  # noqa: N815
    expiresAt: int  # noqa: N815


class ConsortiumNotDeployer(ConsortiumError):
    account: str


class ConsortiumContractsAlreadyRecorded(ConsortiumError):
    pass


class ConsortiumForeignContract(ConsortiumError):
    account: str


class MemberError(ContractRevert):
    pass


class MemberNotPartner(MemberError):
    account: str


class MemberNotDeployer(MemberError):
    account: str


class MemberAlreadyLinked(MemberError):
    pass


class MemberNotLinked(MemberError):
    account: str


class MemberInvalidMember(MemberError):
    pass


class MemberEmptyBatch(MemberError):
    pass


class MemberLengthMismatch(MemberError):
    pass


class MemberAlreadyEnrolled(MemberError):
    member: bytes
    home: str


class MemberUnknown(MemberError):
    member: bytes


class MemberIsErased(MemberError):
    member: bytes


class MemberAlreadyErased(MemberError):
    member: bytes


class MemberNotHomePartner(MemberError):
    member: bytes
    home: str
    account: str


class MemberZeroSigner(MemberError):
    pass


class MemberZeroAddress(MemberError):
    pass


class MemberSignerAlreadyBound(MemberError):
    member: bytes
    signer: str


class MemberNoSigner(MemberError):
    member: bytes


class MemberSignatureExpired(MemberError):
    member: bytes
    deadline: int
    now_: int


class MemberInvalidSignature(MemberError):
    member: bytes
    recovered: str
    signer: str


class MemberAlreadyVoted(MemberError):
    member: bytes
    newSigner: str  # noqa: N815
    voter: str


class MemberSameSigner(MemberError):
    member: bytes
    signer: str


class MemberResetQuorumNotReached(MemberError):
    member: bytes
    newSigner: str  # noqa: N815
    votes: int
    needed: int


class MemberSignerIsContract(MemberError):
    signer: str


class MemberDeadlineTooFar(MemberError):
    member: bytes
    deadline: int
    latest: int


class MemberSignatureRequired(MemberError):
    member: bytes


class MemberSameHome(MemberError):
    member: bytes
    home: str


class MemberHomeNotPartner(MemberError):
    member: bytes
    home: str


class MemberInvalidVote(MemberError):
    kind: int
    target: str


class LoyaltyError(ContractRevert):
    pass


class LoyaltyNotPartner(LoyaltyError):
    account: str


class LoyaltyInvalidMember(LoyaltyError):
    pass


class LoyaltyZeroAmount(LoyaltyError):
    pass


class LoyaltyLengthMismatch(LoyaltyError):
    pass


class LoyaltyEmptyBatch(LoyaltyError):
    pass


class LoyaltyInsufficientBalance(LoyaltyError):
    member: bytes
    balance: int
    needed: int


class SafeCastOverflowedUintToInt(LoyaltyError):
    value: int


class LoyaltyAmountAboveCap(LoyaltyError):
    amount: int
    cap: int


class LoyaltySupplyCapExceeded(LoyaltyError):
    totalSupply: int  # noqa: N815
    amount: int
    cap: int


class LoyaltyConsentRequired(LoyaltyError):
    member: bytes
    partner: str


class LoyaltySignatureRequired(LoyaltyError):
    member: bytes


class LoyaltyNotHomePartner(LoyaltyError):
    member: bytes
    home: str
    account: str


class LoyaltyNotRegistry(LoyaltyError):
    account: str


class LoyaltyPeriodCapExceeded(LoyaltyError):
    partner: str
    issued: int
    amount: int
    cap: int


class EIP712NameError(ContractRevert):
    """OpenZeppelin's ShortStrings errors, reachable only from EIP712's constructor (a domain name or
    version too long), so never from a deployed contract: listed so that every ABI error has a class."""


class InvalidShortString(EIP712NameError):
    pass


class StringTooLong(EIP712NameError):
    str: str


class ConsentError(ContractRevert):
    pass


class ConsentNotPartner(ConsentError):
    account: str


class ConsentInvalidMember(ConsentError):
    pass


class ConsentInvalidStatus(ConsentError):
    status: int


class ConsentExpiryInPast(ConsentError):
    expiresAt: int  # noqa: N815
    now_: int


class ConsentLengthMismatch(ConsentError):
    pass


class ConsentEmptyBatch(ConsentError):
    pass


class ConsentUnknownRecord(ConsentError):
    member: bytes
    controller: str
    purpose: bytes
    index: int


class ConsentUnknownPurpose(ConsentError):
    purpose: bytes


class ConsentEmptyReceipt(ConsentError):
    pass


class ConsentSignatureRequired(ConsentError):
    member: bytes


class ConsentNotHomePartner(ConsentError):
    member: bytes
    home: str
    account: str


class ConsentNotGiven(ConsentError):
    member: bytes
    controller: str
    purpose: bytes


class ConsentNotRegistry(ConsentError):
    account: str


class AnchorError(ContractRevert):
    pass


class AnchorNotPartner(AnchorError):
    account: str


class AnchorZeroRoot(AnchorError):
    pass


class AnchorNotGrowing(AnchorError):
    headSize: int  # noqa: N815
    size: int


class AnchorInconsistent(AnchorError):
    headSize: int  # noqa: N815
    size: int


class AnchorRootAlreadyAnchored(AnchorError):
    root: bytes
    batchId: int  # noqa: N815


class AnchorUnknownBatch(AnchorError):
    batchId: int  # noqa: N815


class AnchorGrowthAboveCap(AnchorError):
    headSize: int  # noqa: N815
    size: int
    cap: int


class AnchorNotOwnLog(AnchorError):
    partner: str
    root: bytes
    size: int


class AnchorHeadsMalformed(AnchorError):
    roots: int
    sizes: int
    proofs: int


class DecisionError(ContractRevert):
    pass


class DecisionNotPartner(DecisionError):
    account: str


class DecisionUnknownModel(DecisionError):
    modelId: int  # noqa: N815


class DecisionZeroModelHash(DecisionError):
    pass


class DecisionEmptyBatch(DecisionError):
    pass


class DecisionInvalidMember(DecisionError):
    pass


class DecisionScoreOutOfRange(DecisionError):
    scoreBps: int  # noqa: N815


class DecisionNotRegistrant(DecisionError):
    modelId: int  # noqa: N815
    registrant: str
    account: str


class DecisionConsentRequired(DecisionError):
    member: bytes
    partner: str


def _named_errors() -> dict[str, type[ContractRevert]]:
    found: dict[str, type[ContractRevert]] = {}
    stack: list[type[ContractRevert]] = [ContractRevert]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            stack.append(sub)
            if not sub.__name__.endswith("Error"):
                found[sub.__name__] = sub
    return found


NAMED_ERRORS: dict[str, type[ContractRevert]] = _named_errors()
for _name, _cls in NAMED_ERRORS.items():
    if "error_name" not in _cls.__dict__:
        _cls.error_name = _name
