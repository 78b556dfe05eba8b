"""MemberRegistry: members on chain (home partner, the customer's own key, erasure), and the EIP-712
authorizations a customer signs with that key for a partner to relay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils import event_abi_to_log_topic, to_checksum_address

from ledger.chain import SignedTx, TxResult
from ledger.clients.base import ContractClient, as_bytes32
from ledger.records import Erasure as Erasure

ZERO_ADDRESS = to_checksum_address("0x" + "00" * 20)

# enrolBatch gas per item, measured on anvil (tests/ledger/test_batch_gas.py): 25.2k for a member
# without a key (a new member slot and an event), 81.7k for one with a key (its second slot, the
# binding signature's check: EIP-712 hash, ecrecover, calldata). The bound counts 28k per member and 62k
# more per key (+10-11%), so a batch needs no gas estimate; `enrol_batch_max` keyless members stay under
# the node's budget (`enrol_batch_gas`; the outbox enrols members without a key). Fewer, fuller batches:
# every transaction is a block on anvil (see ledger/clients/loyalty.py). (32k and 20k per key, 800 a
# batch until 2026-12-07: a batch of three members with keys ran out of gas in its simulation.) The
# contract has no cap of its own on a batch's length: the block's gas is its only limit.
ENROL_BATCH_GAS_BASE = 100_000
ENROL_BATCH_GAS_PER_ITEM = 28_000
ENROL_BATCH_GAS_PER_KEY = 62_000


def enrol_batch_gas(members: int, keyed: int) -> int:
    """The gas bound of an enrolBatch of `members` members, `keyed` of them with a key of their own."""
    return ENROL_BATCH_GAS_BASE + ENROL_BATCH_GAS_PER_ITEM * members + ENROL_BATCH_GAS_PER_KEY * keyed


def enrol_batch_max(budget: int) -> int:
    """How many members without a key one enrolBatch takes within `budget` gas, in whole hundreds where
    it takes a hundred or more (1,000 under a 30M block, as before budgets followed the node; 2,100
    under 60M), and at least one."""
    fits = (budget - ENROL_BATCH_GAS_BASE) // ENROL_BATCH_GAS_PER_ITEM
    return max(fits // 100 * 100, min(fits, 100), 1)


# How long a customer's signature stays good by default: long enough to be relayed, short enough that
# a signature found later is useless.
DEFAULT_SIGNATURE_LIFETIME = 3600
# The furthest deadline a signature is prepared with: a signature is for an act now, not a standing order.
MAX_SIGNATURE_LIFETIME = 24 * 3600
# The furthest the contract accepts a deadline ahead of the chain's clock, whoever prepared it
# (MemberRegistry.MAX_SIGNATURE_LIFETIME).
MAX_DEADLINE_AHEAD = 30 * 24 * 3600

# The EIP-712 types the contracts check (MemberRegistry's domain). Field order is part of the type.
CONSENT_TYPE = [
    {"name": "member", "type": "bytes32"},
    {"name": "controller", "type": "address"},
    {"name": "purpose", "type": "bytes32"},
    {"name": "status", "type": "uint8"},
    {"name": "receiptHash", "type": "bytes32"},
    {"name": "expiresAt", "type": "uint64"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
REDEEM_TYPE = [
    {"name": "member", "type": "bytes32"},
    {"name": "partner", "type": "address"},
    {"name": "amount", "type": "uint256"},
    {"name": "ref", "type": "bytes32"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
SIGNER_CHANGE_TYPE = [
    {"name": "member", "type": "bytes32"},
    {"name": "newSigner", "type": "address"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
# signed by the key being bound (not by the member's current key): the customer proves she holds it
SIGNER_BINDING_TYPE = [
    {"name": "member", "type": "bytes32"},
    {"name": "signer", "type": "address"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
HOME_MOVE_TYPE = [
    {"name": "member", "type": "bytes32"},
    {"name": "newHome", "type": "address"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
ERASURE_TYPE = [
    {"name": "member", "type": "bytes32"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]

SIGNED_TYPES = {
    "Consent": CONSENT_TYPE,
    "Redeem": REDEEM_TYPE,
    "SignerChange": SIGNER_CHANGE_TYPE,
    "SignerBinding": SIGNER_BINDING_TYPE,
    "HomeMove": HOME_MOVE_TYPE,
    "Erasure": ERASURE_TYPE,
}
EIP712_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


class VoteKind(IntEnum):
    """What partners vote on about a member (IMemberRegistry.VoteKind)."""

    RESET_SIGNER = 0
    MOVE_HOME = 1
    ERASE = 2


@dataclass(frozen=True)
class MemberInfo:
    home: ChecksumAddress | None  # None: not enrolled
    signer: ChecksumAddress | None  # None: no key of its own
    erased: bool
    nonce: int

    @property
    def enrolled(self) -> bool:
        return self.home is not None


@dataclass(frozen=True)
class ResetVote:
    """One partner's vote, in the member's current round, to give it a new signer (its key was lost)."""

    new_signer: ChecksumAddress | None  # None: no vote in this round
    counts_until: int  # unix time; after it the vote no longer counts
    counts: bool  # the voter is a partner in the tenure it voted in, and the vote has not lapsed


@dataclass(frozen=True)
class ResetTally:
    """Where a lost-key reset stands after a vote (from the contract's own count)."""

    new_signer: ChecksumAddress
    votes: int  # votes for `new_signer` that count: current partners, this tenure, not lapsed
    partners: int  # current partners
    reset: bool  # the signer is now `new_signer`
    tx: TxResult | None = None

    @property
    def needed(self) -> int:
        """Votes a strict majority of the current partners takes."""
        return self.partners // 2 + 1


@dataclass(frozen=True)
class Authorization:
    """A customer's EIP-712 signature, and the deadline it was made for."""

    signature: bytes
    deadline: int


@dataclass(frozen=True)
class MemberVote:
    """One partner's vote of one kind on a member, in its current round."""

    voted: bool
    target: ChecksumAddress | None  # the new home (MOVE_HOME), the new signer (RESET_SIGNER); None: erase
    counts_until: int  # unix time
    counts: bool


@dataclass(frozen=True)
class VoteTally:
    """Where a vote on a member stands after one more (from the contract's own count)."""

    kind: VoteKind
    target: ChecksumAddress | None
    votes: int
    partners: int
    done: bool  # the majority was reached: the member moved, or was erased
    tx: TxResult

    @property
    def needed(self) -> int:
        return self.partners // 2 + 1


class MemberRegistryClient(ContractClient):
    receipt_logs = False  # its outbox confirms rows by status and block (ContractClient)

    # --- reads ---

    def member(self, member: bytes) -> MemberInfo:
        home, signer, erased, nonce = self._call(self.contract.functions.memberOf(as_bytes32(member)))
        return MemberInfo(
            home=None if home == ZERO_ADDRESS else to_checksum_address(home),
            signer=None if signer == ZERO_ADDRESS else to_checksum_address(signer),
            erased=bool(erased),
            nonce=int(nonce),
        )

    def reset_votes(self, member: bytes, new_signer: str) -> tuple[int, int]:
        """The votes that count now for giving `member` the signer `new_signer`, and the partners."""
        votes, partners = self._call(
            self.contract.functions.resetVotes(as_bytes32(member), to_checksum_address(new_signer))
        )
        return int(votes), int(partners)

    def reset_vote_of(self, member: bytes, voter: str) -> ResetVote:
        new_signer, until, counts = self._call(
            self.contract.functions.resetVoteOf(as_bytes32(member), to_checksum_address(voter))
        )
        return ResetVote(
            None if new_signer == ZERO_ADDRESS else to_checksum_address(new_signer), int(until), bool(counts)
        )

    def reset_vote_lifetime(self) -> int:
        """How long (seconds) a reset vote counts after it was cast."""
        return int(self._call(self.contract.functions.RESET_VOTE_LIFETIME()))

    def are_erased(self, members: Sequence[bytes]) -> list[bool]:
        """The erased flag of each member (batched against a remote node)."""
        found = self.chain.call_many(self.contract, "memberOf", [(as_bytes32(m),) for m in members])
        return [bool(erased) for _home, _signer, erased, _nonce in found]

    def erasures(self, home: str | None = None) -> list[Erasure]:
        """Every member the registry erased (of one home partner, or of all), oldest first, from the
        `MemberErased` events: the chain's shred list (one eth_getLogs, decoded here)."""
        topic = "0x" + bytes(event_abi_to_log_topic(self.contract.events.MemberErased().abi)).hex()
        by_home = None if home is None else "0x" + bytes(12).hex() + to_checksum_address(home)[2:].lower()
        logs = self.chain.raw_logs(
            {
                "address": self.contract.address,
                "fromBlock": 0,
                "toBlock": "latest",
                "topics": [topic, None, by_home],
            }
        )
        return [
            Erasure(log.topics[1], to_checksum_address(log.topics[2][12:]), log.block_number) for log in logs
        ]

    def enrolled_by(self, home: str) -> dict[bytes, int]:
        """Every member enrolled with `home` as its home partner -> the block it was enrolled in, from
        the `MemberEnrolled` events (one eth_getLogs)."""
        topic = "0x" + bytes(event_abi_to_log_topic(self.contract.events.MemberEnrolled().abi)).hex()
        logs = self.chain.raw_logs(
            {
                "address": self.contract.address,
                "fromBlock": 0,
                "toBlock": "latest",
                "topics": [topic, None, "0x" + bytes(12).hex() + to_checksum_address(home)[2:].lower()],
            }
        )
        return {log.topics[1]: log.block_number for log in logs}

    def nonce_of(self, member: bytes) -> int:
        return int(self._call(self.contract.functions.nonceOf(as_bytes32(member))))

    def domain(self) -> dict[str, Any]:
        """The EIP-712 domain every customer authorization is signed in."""
        return {
            "name": "ledgercrm",
            "version": "1",
            "chainId": self.chain.chain_id,
            "verifyingContract": self.address,
        }

    def typed_data(self, primary: str, message: dict[str, Any]) -> dict[str, Any]:
        """The EIP-712 typed data of `message` (JSON values: bytes32 as 0x-hex) in this registry's domain,
        as `{domain, types, primaryType, message}`: the form eth-account's
        `sign_typed_data(full_message=...)` and ethers' `signTypedData` take."""
        return {
            "domain": self.domain(),
            "types": {"EIP712Domain": EIP712_DOMAIN_TYPE, primary: SIGNED_TYPES[primary]},
            "primaryType": primary,
            "message": message,
        }

    def signature_lifetime_end(self) -> int:
        """The deadline a signature made now gets by default: the chain's clock plus the lifetime."""
        return self._deadline(None)

    def chain_time(self) -> int:
        """The latest block's timestamp (what the contract compares deadlines with)."""
        return int(self.chain.w3.eth.get_block("latest")["timestamp"])

    # --- partner transactions ---

    def enrol(
        self,
        sender: LocalAccount,
        members: Sequence[bytes],
        signers: Sequence[str | None],
        bindings: Sequence[Authorization | None] | None = None,
    ) -> TxResult:
        return self.chain.send(self.contract, self.prepare_enrol(sender, members, signers, bindings))

    def prepare_enrol(
        self,
        sender: LocalAccount,
        members: Sequence[bytes],
        signers: Sequence[str | None],
        bindings: Sequence[Authorization | None] | None = None,
    ) -> SignedTx:
        """`enrolBatch`, signed and not sent (for the outbox): `sender` becomes the members' home
        partner; `signers[i]` is member i's own key's address, or None, and `bindings[i]` that key's
        signature of its binding (`authorize_binding`, nonce 0), for every member with a key."""
        keyed = [i for i, s in enumerate(signers) if s is not None]
        proofs = [None if bindings is None or i >= len(bindings) else bindings[i] for i in keyed]
        if any(p is None for p in proofs):
            raise ValueError("a member's key is bound only with that key's signature of the binding")
        arguments = (
            [as_bytes32(m) for m in members],
            [ZERO_ADDRESS if s is None else to_checksum_address(s) for s in signers],
            [p.deadline for p in proofs if p is not None],
            [p.signature for p in proofs if p is not None],
        )
        gas = enrol_batch_gas(len(members), len(keyed))
        budget = self.batch_gas_budget()
        if gas > budget and len(members) > 1:
            # refused before signing: with a bound above the block's limit the simulation would run out
            # of gas, an error that names nothing
            raise ValueError(
                f"{len(members)} members, {len(keyed)} with a key, pass one enrolBatch's gas budget"
                f" ({gas:,} > {budget:,}): send them in smaller batches"
            )
        return self.chain.prepare_function(self.contract, "enrolBatch", arguments, sender, gas=gas)

    def bind_signer(
        self, sender: LocalAccount, member: bytes, signer: str, binding: Authorization
    ) -> TxResult:
        """Bind `signer` to a member without a key (home partner only), with the key's own signature of
        the binding (`authorize_binding`)."""
        fn = self.contract.functions.bindSigner(
            as_bytes32(member), to_checksum_address(signer), binding.deadline, binding.signature
        )
        return self._send(sender, fn)

    def change_signer(
        self, sender: LocalAccount, member: bytes, new_signer: str, authorization: Authorization
    ) -> TxResult:
        fn = self.contract.functions.changeSigner(
            as_bytes32(member),
            to_checksum_address(new_signer),
            authorization.deadline,
            authorization.signature,
        )
        return self._send(sender, fn)

    def vote_signer_reset(self, sender: LocalAccount, member: bytes, new_signer: str) -> ResetTally:
        """`sender`'s vote to give `member` the signer `new_signer`; the tally as the contract counted it."""
        fn = self.contract.functions.voteSignerReset(as_bytes32(member), to_checksum_address(new_signer))
        tx = self._send(sender, fn)
        voted = tx.event("SignerResetVoted")["args"]
        return ResetTally(
            to_checksum_address(new_signer),
            int(voted["votes"]),
            int(voted["partners"]),
            bool(tx.events_named("SignerChanged")),
            tx,
        )

    def apply_signer_reset(self, sender: LocalAccount, member: bytes, new_signer: str) -> TxResult:
        """Apply a reset whose votes became a majority because partners left since they voted."""
        fn = self.contract.functions.applySignerReset(as_bytes32(member), to_checksum_address(new_signer))
        return self._send(sender, fn)

    def erase(self, sender: LocalAccount, member: bytes) -> TxResult:
        """Erase on chain: consents withdrawn, balance forfeited, member frozen (home partner only, and
        only a member without a key: one with a key signs its erasure, or the partners vote)."""
        return self._send(sender, self.contract.functions.erase(as_bytes32(member)))

    def erase_signed(self, relayer: LocalAccount, member: bytes, authorization: Authorization) -> TxResult:
        """Erase the member as it signed (`authorize_erasure`); any partner relays."""
        return self.chain.send(self.contract, self.prepare_erase_signed(relayer, member, authorization))

    def prepare_erase_signed(
        self, relayer: LocalAccount, member: bytes, authorization: Authorization
    ) -> SignedTx:
        """`erase_signed`, simulated and signed, not sent: a caller that has its own records to change
        first learns now whether the chain will take it (`send_erase` sends it later)."""
        fn = self.contract.functions.eraseSigned(
            as_bytes32(member), authorization.deadline, authorization.signature
        )
        return self.chain.prepare(fn, relayer)

    def send_erase(self, signed: SignedTx) -> TxResult:
        """Send an erasure prepared by `prepare_erase_signed` and wait for it."""
        return self.chain.send(self.contract, signed)

    def move_home_signed(
        self, relayer: LocalAccount, member: bytes, new_home: str, authorization: Authorization
    ) -> TxResult:
        """Move the member's home to `new_home` as it signed (`authorize_home_move`); any partner relays."""
        fn = self.contract.functions.moveHomeSigned(
            as_bytes32(member), to_checksum_address(new_home), authorization.deadline, authorization.signature
        )
        return self._send(relayer, fn)

    def vote_home_move(self, sender: LocalAccount, member: bytes, new_home: str) -> VoteTally:
        """`sender`'s vote to move the member's home to `new_home`; the tally as the contract counted it."""
        fn = self.contract.functions.voteHomeMove(as_bytes32(member), to_checksum_address(new_home))
        return self._tally(self._send(sender, fn), VoteKind.MOVE_HOME, "HomeMoved")

    def vote_erasure(self, sender: LocalAccount, member: bytes) -> VoteTally:
        """`sender`'s vote to erase the member; the tally as the contract counted it."""
        fn = self.contract.functions.voteErasure(as_bytes32(member))
        return self._tally(self._send(sender, fn), VoteKind.ERASE, "MemberErased")

    def apply_vote(self, sender: LocalAccount, member: bytes, kind: VoteKind, target: str | None) -> TxResult:
        """Carry out a move or erasure whose votes became a majority because partners left since."""
        fn = self.contract.functions.applyVote(
            as_bytes32(member), int(kind), ZERO_ADDRESS if target is None else to_checksum_address(target)
        )
        return self._send(sender, fn)

    def votes_for(self, member: bytes, kind: VoteKind, target: str | None) -> tuple[int, int]:
        """The votes of `kind` for `target` (None: an erasure) that count now, and the partners."""
        votes, partners = self._call(
            self.contract.functions.votesFor(
                as_bytes32(member), int(kind), ZERO_ADDRESS if target is None else to_checksum_address(target)
            )
        )
        return int(votes), int(partners)

    def vote_of(self, member: bytes, kind: VoteKind, voter: str) -> MemberVote:
        voted, target, until, counts = self._call(
            self.contract.functions.voteOf(as_bytes32(member), int(kind), to_checksum_address(voter))
        )
        return MemberVote(
            bool(voted),
            None if target == ZERO_ADDRESS else to_checksum_address(target),
            int(until),
            bool(counts),
        )

    def _tally(self, tx: TxResult, kind: VoteKind, done_event: str) -> VoteTally:
        voted = tx.event("MemberVoted")["args"]
        target = None if voted["target"] == ZERO_ADDRESS else to_checksum_address(voted["target"])
        return VoteTally(
            kind, target, int(voted["votes"]), int(voted["partners"]), bool(tx.events_named(done_event)), tx
        )

    # --- what a customer signs ---

    def authorize_consent(
        self,
        customer: LocalAccount,
        member: bytes,
        controller: str,
        purpose: bytes,
        status: int,
        receipt_hash: bytes,
        expires_at: int,
        *,
        deadline: int | None = None,
        nonce: int | None = None,
    ) -> Authorization:
        """The customer's signature of a consent event (for `ConsentClient.record_signed`)."""
        fields = {
            "controller": to_checksum_address(controller),
            "purpose": as_bytes32(purpose),
            "status": int(status),
            "receiptHash": as_bytes32(receipt_hash),
            "expiresAt": expires_at,
        }
        return self.authorize(customer, "Consent", member, fields, deadline=deadline, nonce=nonce)

    def authorize_redeem(
        self,
        customer: LocalAccount,
        member: bytes,
        partner: str,
        amount: int,
        ref: bytes,
        *,
        deadline: int | None = None,
        nonce: int | None = None,
    ) -> Authorization:
        """The customer's signature of a redemption at `partner` (for `LoyaltyClient.redeem_signed`)."""
        fields = {"partner": to_checksum_address(partner), "amount": amount, "ref": as_bytes32(ref)}
        return self.authorize(customer, "Redeem", member, fields, deadline=deadline, nonce=nonce)

    def authorize_signer_change(
        self,
        customer: LocalAccount,
        member: bytes,
        new_signer: str,
        *,
        deadline: int | None = None,
        nonce: int | None = None,
    ) -> Authorization:
        """The customer's signature, with its current key, of the change to `new_signer`."""
        fields = {"newSigner": to_checksum_address(new_signer)}
        return self.authorize(customer, "SignerChange", member, fields, deadline=deadline, nonce=nonce)

    def authorize_binding(
        self,
        key: LocalAccount,
        member: bytes,
        *,
        deadline: int | None = None,
        nonce: int | None = None,
    ) -> Authorization:
        """The signature, by the key to be bound itself, of its binding to `member` (at enrolment, nonce
        0: the member is new; later, for `bind_signer`, the member's current nonce)."""
        fields = {"signer": to_checksum_address(key.address)}
        return self.authorize(key, "SignerBinding", member, fields, deadline=deadline, nonce=nonce)

    def authorize_home_move(
        self,
        customer: LocalAccount,
        member: bytes,
        new_home: str,
        *,
        deadline: int | None = None,
        nonce: int | None = None,
    ) -> Authorization:
        """The customer's signature of its move to the home partner `new_home`."""
        fields = {"newHome": to_checksum_address(new_home)}
        return self.authorize(customer, "HomeMove", member, fields, deadline=deadline, nonce=nonce)

    def authorize_erasure(
        self,
        customer: LocalAccount,
        member: bytes,
        *,
        deadline: int | None = None,
        nonce: int | None = None,
    ) -> Authorization:
        """The customer's signature asking for its own erasure."""
        return self.authorize(customer, "Erasure", member, {}, deadline=deadline, nonce=nonce)

    def authorize(
        self,
        key: LocalAccount,
        primary: str,
        member: bytes,
        fields: dict[str, Any],
        *,
        deadline: int | None = None,
        nonce: int | None = None,
    ) -> Authorization:
        """`key`'s EIP-712 signature of the `primary` message (one of `SIGNED_TYPES`) about `member`: its
        own `fields` with the member, its nonce (the member's current one, or `nonce`) and a deadline
        (the chain's clock plus the default lifetime, or `deadline`). Every `authorize_*` is this, with
        the fields of its type."""
        deadline = self._deadline(deadline)
        message = {
            "member": as_bytes32(member),
            **fields,
            "nonce": self.nonce_of(member) if nonce is None else nonce,
            "deadline": deadline,
        }
        if set(message) != {field["name"] for field in SIGNED_TYPES[primary]}:
            raise ValueError(f"a {primary} message has the fields of its type, not {sorted(message)}")
        return self._sign(key, primary, SIGNED_TYPES[primary], message, deadline)

    def binds(self, member: bytes, signer: str, binding: Authorization, *, nonce: int | None = None) -> bool:
        """Whether `binding` is `signer`'s own signature of its binding to `member` (for the member's
        current nonce, or `nonce`), checked here as the contract will: a caller refuses a bad one before
        writing anything."""
        message = {
            "member": as_bytes32(member),
            "signer": to_checksum_address(signer),
            "nonce": self.nonce_of(member) if nonce is None else nonce,
            "deadline": binding.deadline,
        }
        typed = encode_typed_data(self.domain(), {"SignerBinding": SIGNER_BINDING_TYPE}, message)
        try:
            recovered = Account.recover_message(typed, signature=binding.signature)
        except (ValueError, TypeError):
            return False
        return bool(recovered == to_checksum_address(signer))

    def _deadline(self, deadline: int | None) -> int:
        """The given deadline, or the chain's clock plus the default lifetime (the chain's, not this
        machine's: the contract compares it with block.timestamp)."""
        if deadline is not None:
            return deadline
        return int(self.chain.w3.eth.get_block("latest")["timestamp"]) + DEFAULT_SIGNATURE_LIFETIME

    def _sign(
        self,
        customer: LocalAccount,
        primary: str,
        fields: list[dict[str, str]],
        message: dict[str, Any],
        deadline: int,
    ) -> Authorization:
        signed = Account.sign_typed_data(customer.key, self.domain(), {primary: fields}, message)
        return Authorization(bytes(signed.signature), deadline)
