"""Gas per ledger operation and transaction throughput, on eth-tester (in process) and anvil.

Run from the project root:

    .venv/bin/python benchmarks/ledger_gas.py [--anchors N] [--skip-anvil] [--seed S]

Gas figures are the `gasUsed` of real transaction receipts (through the typed clients' TxResult).
`verifyInclusion`, a view, is priced with `eth_estimateGas` and also sent as a transaction. Every
input is drawn from one seeded RNG and the same sequence of transactions runs on both chains, so the
receipt figures must agree: the EVM is the same, only the node around it differs. (Estimates need
not: each node has its own estimator.)
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

if importlib.util.find_spec("ledger") is None:  # a bare checkout, without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from web3.types import RPCEndpoint

from benchmarks.machine import machine_table
from ledger import Coalition, EthTesterBackend, RpcBackend
from ledger.anvil import anvil_binary, running_anvil
from ledger.backends import Backend
from ledger.clients import Action, ConsentStatus, Decision, purpose_id
from ledger.compiler import EVM_VERSION, OPTIMIZER_RUNS, SOLC_VERSION, Build, compile_contracts
from ledger.merkle import Frontier, LogAppend, leaf_hash

BATCH = 100  # items per batch transaction (earnBatch, recordBatch, recordDecisions)
RUN = 4  # items per member in the earnBatch of repeat customers (an import's invoices, grouped by member)
TREE_LOG2 = 20  # the Merkle tree whose proof verifyInclusion checks has 2**20 leaves
ANCHOR_SIZE = 1000  # the batch size claimed by the throughput run's anchors
HEADS = (4, 8)  # heads per anchorMany priced (an import sends 8 chunks' heads a transaction)
DEFAULT_ANCHORS = {"eth-tester": 50, "anvil": 200}
SLOW_MS = 100  # a transaction this slow on localhost waited on something other than the EVM

console = Console()


# --------------------------------------------------------------------------------------------------
# What is measured, and how the gas table shows it


@dataclass(frozen=True)
class Row:
    label: str
    key: str  # the measurement (total gas of one transaction) this row shows
    per: int = 1  # shown divided by this many items


ROWS: tuple[Row, ...] = (
    Row(f"enrolBatch x{BATCH}, per member", "enrol_batch", BATCH),
    Row(f"enrolBatch x{BATCH}, total", "enrol_batch"),
    Row("earn, fresh member", "earn_fresh"),
    Row("earn, existing member", "earn_repeat"),
    Row(f"earnBatch x{BATCH}, per item", "earn_batch", BATCH),
    Row(f"earnBatch x{BATCH}, total", "earn_batch"),
    Row(f"earnBatch x{BATCH}, {RUN} items per member in a row, per item", "earn_runs", BATCH),
    Row("redeem (home partner)", "redeem"),
    Row("redeemSigned (customer's EIP-712 signature)", "redeem_signed"),
    Row("consent record", "consent_record"),
    Row("consent recordSigned (customer's signature)", "consent_signed"),
    Row(f"consent recordBatch x{BATCH}, per item", "consent_batch", BATCH),
    Row(f"consent recordBatch x{BATCH}, total", "consent_batch"),
    Row("anchor", "anchor"),
    Row(f"anchorMany x{HEADS[0]} heads, per head", f"anchor_many_{HEADS[0]}", HEADS[0]),
    Row(f"anchorMany x{HEADS[1]} heads, per head", f"anchor_many_{HEADS[1]}", HEADS[1]),
    Row(f"anchorMany x{HEADS[1]} heads, total", f"anchor_many_{HEADS[1]}"),
    Row(f"verifyInclusion 2^{TREE_LOG2}, estimate_gas", "verify_estimate"),
    Row(f"verifyInclusion 2^{TREE_LOG2}, sent as a tx", "verify_tx"),
    Row(f"recordDecisions x{BATCH}, per decision", "decisions", BATCH),
    Row(f"recordDecisions x{BATCH}, total", "decisions"),
    Row("registerModel", "register_model"),
    Row("erase (2 consents withdrawn, balance forfeited)", "erase"),
    Row("enrolBatch x1 with a key (its binding signature)", "enrol_keyed"),
    Row("bindSigner (the key's own signature)", "bind_signer"),
    Row("changeSigner (the old key's EIP-712 signature)", "change_signer"),
    Row("voteSignerReset (1st of 3 partners)", "reset_vote"),
    Row("voteSignerReset (2nd of 3: resets)", "reset_vote_deciding"),
    Row("moveHomeSigned (customer's signature)", "move_home_signed"),
    Row("voteHomeMove (1st of 3 partners)", "move_vote"),
    Row("voteHomeMove (2nd of 3: moves)", "move_vote_deciding"),
    Row("eraseSigned (customer's signature; 1 consent, balance)", "erase_signed"),
    Row("voteErasure (2nd of 3: erases; 1 consent, balance)", "erase_vote_deciding"),
    Row("propose (admit partner)", "propose"),
    Row("vote (majority: admits)", "vote"),
    Row("propose + vote, total", "propose_vote"),
)

# Differences between the two chains that are expected, and why.
_SIGNED = (
    "the EIP-712 domain holds the chain id, which differs between the two chains, so the signature "
    "differs, and with it the calldata's count of zero bytes (4 gas each, 16 otherwise)."
)
_GENESIS = (
    "a log's roots and consistency proofs hash its genesis leaf, which holds the chain id and the "
    "contract's and the partner's addresses (other accounts on each chain), so the heads' calldata has "
    "other zero bytes (4 gas each, 16 otherwise); the contract's work is the same."
)
KNOWN_DIFFERENCES = {
    "anchor": _GENESIS,
    **{f"anchor_many_{count}": _GENESIS for count in HEADS},
    "redeem_signed": _SIGNED,
    "consent_signed": _SIGNED,
    "change_signer": _SIGNED,  # signed by the customer's old key, over the same kind of domain
    "enrol_keyed": _SIGNED,  # signed by the key being bound
    "bind_signer": _SIGNED,
    "move_home_signed": _SIGNED,
    "erase_signed": _SIGNED,
    "verify_estimate": (
        "py-evm's default gas estimator (eth.estimators.gas.binary_gas_search_intrinsic_tolerance) stops "
        "its binary search once the range is under 21,000 gas and returns the top of it, so eth-tester "
        "over-estimates; anvil searches down to the exact minimum. The gas actually used is the "
        "'sent as a tx' row, where the chains agree."
    ),
}


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: float
    latencies_ms: tuple[float, ...]  # each call's own time, in call order

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    @property
    def ms_each(self) -> float:
        return 1000 * self.seconds / self.count

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def slow(self) -> int:
        """Calls that took at least SLOW_MS."""
        return sum(ms >= SLOW_MS for ms in self.latencies_ms)


@dataclass(frozen=True)
class BackendRun:
    name: str
    chain_info: str
    gas: dict[str, int]
    anchors: Rate
    earns: Rate


@dataclass(frozen=True)
class ProofFixture:
    """The leaves 1.. of a real 2**TREE_LOG2-leaf log (leaf 0 is the anchoring partner's genesis leaf,
    known once deployed), and one randomly chosen leaf's index."""

    leaves: list[bytes]
    index: int

    @property
    def size(self) -> int:
        return len(self.leaves) + 1


def genesis(coalition: Coalition, partner: str) -> Frontier:
    """The partner's log before its first head: its genesis leaf alone."""
    return Frontier(1, (coalition.anchor.genesis_leaf(partner),))


def log_heads(
    count: int, per_head: int, rng: random.Random, start: Frontier
) -> list[tuple[LogAppend, list[bytes]]]:
    """`count` consecutive heads of one log from `start` (its genesis leaf), `per_head` random leaves
    each: each append and the consistency proof from the head before it."""
    frontier, heads = start, []
    for _ in range(count):
        step = LogAppend(frontier, [rng.randbytes(32) for _ in range(per_head)])
        heads.append((step, step.consistency_proof()))
        frontier = step.frontier
    return heads


# --------------------------------------------------------------------------------------------------
# Measuring


def progress_bar() -> Progress:
    """A transient progress bar, shown only on a terminal (captured output gets just the tables)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def status(message: str) -> AbstractContextManager[object]:
    return console.status(message) if console.is_terminal else nullcontext()


def fixed_address(label: str) -> str:
    """An address that is the same on every chain (accounts' addresses differ between eth-tester and
    anvil, and an address's zero bytes change its calldata cost, hence the gas)."""
    return to_checksum_address(keccak(text=f"ledgercrm benchmark {label}")[-20:])


def build_proof_fixture(rng: random.Random) -> ProofFixture:
    size = 2**TREE_LOG2
    leaves: list[bytes] = []
    chunk = 2**14
    started = time.perf_counter()
    with progress_bar() as progress:
        task = progress.add_task(f"Hashing 2^{TREE_LOG2} leaves (SHA-256)", total=size)
        for start in range(0, size, chunk):
            leaves.extend(
                leaf_hash(b"interaction:" + i.to_bytes(8, "big")) for i in range(start, start + chunk)
            )
            progress.update(task, advance=chunk)
    index = 1 + rng.randrange(size - 1)
    console.print(
        f"Log of {size:,} leaves: hashed in {time.perf_counter() - started:.1f}s; proving leaf {index:,}"
    )
    return ProofFixture(leaves[1:], index)


def measure_gas(coalition: Coalition, fixture: ProofFixture, rng: random.Random) -> dict[str, int]:
    """One transaction (or one estimate) per measurement; the sequence is the same on every chain.

    Where a contract keeps a counter shared by all calls (totalSupply, a partner's issued/redeemed
    total, an array's length) one warm-up call goes first, so the measured call is the steady state
    and not the deployment's very first write to that slot."""
    p0, p1 = coalition.chain.backend.accounts[:2]
    gas: dict[str, int] = {}

    def b32() -> bytes:
        return rng.randbytes(32)

    loyalty, consent, members_ = coalition.loyalty, coalition.consent, coalition.members
    purpose = purpose_id("loyalty")
    # the same on every chain (so are the signatures and their calldata) when both runs fall on one UTC
    # day: the start of the day after tomorrow, within MemberRegistry's 30 days
    today = int(coalition.chain.w3.eth.get_block("latest")["timestamp"]) // 86_400
    deadline = (today + 2) * 86_400

    def ready(count: int, purposes: Sequence[str] = ("loyalty",)) -> list[bytes]:
        """Members enrolled by p0 with its attested consent: what earning (deciding) needs, not measured."""
        fresh = [b32() for _ in range(count)]
        members_.enrol(p0, fresh, [None] * count)
        for name in purposes:
            consent.record_batch(p0, fresh, purpose_id(name), ConsentStatus.GIVEN, [b32() for _ in fresh])
        return fresh

    members_.enrol(p0, [b32()], [None])  # warm-up
    gas["enrol_batch"] = members_.enrol(p0, [b32() for _ in range(BATCH)], [None] * BATCH).gas_used

    loyalty.earn(p0, ready(1)[0], 100, b32())  # warm-up: issuedBy(p0) and totalSupply become non-zero
    (member,) = ready(1)
    gas["earn_fresh"] = loyalty.earn(p0, member, 100, b32()).gas_used
    gas["earn_repeat"] = loyalty.earn(p0, member, 100, b32()).gas_used
    members = ready(BATCH)
    gas["earn_batch"] = loyalty.earn_batch(p0, members, [100] * BATCH, [b32() for _ in range(BATCH)]).gas_used
    loyalty.redeem(p0, member, 10, b32())  # warm-up: redeemedAt(p0) becomes non-zero
    gas["redeem"] = loyalty.redeem(p0, member, 10, b32()).gas_used

    gas["consent_record"] = consent.record(p0, ready(1, ())[0], purpose, ConsentStatus.GIVEN, b32()).gas_used
    gas["consent_batch"] = consent.record_batch(
        p0, ready(BATCH, ()), purpose, ConsentStatus.GIVEN, [b32() for _ in range(BATCH)]
    ).gas_used

    # a customer with a key of its own: it signs, partner p1 relays
    key = Account.from_key(rng.randbytes(32))
    keyed = b32()
    members_.enrol(
        p0, [keyed], [key.address], [members_.authorize_binding(key, keyed, nonce=0, deadline=deadline)]
    )
    receipt = b32()
    auth = members_.authorize_consent(
        key, keyed, p1.address, purpose, ConsentStatus.GIVEN, receipt, 0, deadline=deadline
    )
    gas["consent_signed"] = consent.record_signed(
        p1, keyed, p1.address, purpose, ConsentStatus.GIVEN, receipt, 0, auth
    ).gas_used
    loyalty.earn(p1, keyed, 100, b32())
    for _ in range(2):  # the first is the warm-up: redeemedAt(p1) becomes non-zero
        ref = b32()
        redeem_auth = members_.authorize_redeem(key, keyed, p1.address, 10, ref, deadline=deadline)
        signed_redeem = loyalty.redeem_signed(p1, keyed, 10, ref, redeem_auth)
    gas["redeem_signed"] = signed_redeem.gas_used

    (erased,) = ready(1, ("loyalty", "profiling"))
    loyalty.earn(p0, erased, 50, b32())
    gas["erase"] = members_.erase(p0, erased).gas_used

    anchor = coalition.anchor
    with status(f"Building the log of 2^{TREE_LOG2} leaves from p0's genesis leaf"):
        tree = LogAppend(genesis(coalition, p0.address), fixture.leaves)
    proof = tree.proof(fixture.index)
    leaf = fixture.leaves[fixture.index - 1]
    # also the warm-up of the batch array
    tree_batch = anchor.anchor(p0, tree.root, fixture.size, tree.consistency_proof())
    # the next head: ANCHOR_SIZE more leaves of p1's log, with the consistency proof from its first
    p1_start = genesis(coalition, p1.address)
    (first, first_proof), (second, next_proof) = log_heads(2, ANCHOR_SIZE, random.Random(7), p1_start)
    anchor.anchor(p1, first.root, first.size, first_proof)
    gas["anchor"] = anchor.anchor(p1, second.root, second.size, next_proof).tx.gas_used
    # several heads of p1's log in one transaction, each with its consistency proof from the one before
    frontier = second.frontier
    for count in HEADS:
        heads = log_heads(count, ANCHOR_SIZE, random.Random(count), frontier)
        frontier = heads[-1][0].frontier
        signed = anchor.prepare_anchor_many(p1, [(step.root, step.size, proof) for step, proof in heads])
        gas[f"anchor_many_{count}"] = anchor.send_anchor(signed).tx.gas_used
    verify = anchor.contract.functions.verifyInclusion(tree_batch.batch_id, fixture.index, leaf, proof)
    if not anchor.verify_inclusion(tree_batch.batch_id, fixture.index, leaf, proof):
        raise RuntimeError("the contract rejected a valid inclusion proof")
    gas["verify_estimate"] = verify.estimate_gas({"from": p0.address})
    gas["verify_tx"] = coalition.chain.transact(anchor.contract, verify, p0).gas_used

    decisions = coalition.decisions
    decisions.register_model(p0, b32(), b32(), b32())  # warm-up: the model array
    register = decisions.contract.functions.registerModel(b32(), b32(), b32())
    registered = coalition.chain.transact(decisions.contract, register, p0)
    gas["register_model"] = registered.gas_used
    model_id = int(registered.event("ModelRegistered")["args"]["modelId"])

    def decision(member: bytes) -> Decision:
        return Decision(member, b32(), rng.randrange(10_001), keccak(text="offer:upgrade"), b32(), b32())

    scored = ready(BATCH + 1, ("profiling",))
    decisions.record_decisions(p0, model_id, [decision(scored[0])])  # warm-up: decisionCount
    gas["decisions"] = decisions.record_decisions(p0, model_id, [decision(m) for m in scored[1:]]).gas_used

    # a customer's key: changed by its own signature (p1 relays), or, lost, reset by a majority vote of
    # the three founders (the second vote decides; each vote counts the partners and their tenures)
    old_key, new_key = Account.from_key(rng.randbytes(32)), Account.from_key(rng.randbytes(32))
    changing, lost = b32(), b32()
    members_.enrol(
        p0,
        [changing, lost],
        [old_key.address, old_key.address],
        [members_.authorize_binding(old_key, m, nonce=0, deadline=deadline) for m in (changing, lost)],
    )
    change_auth = members_.authorize_signer_change(old_key, changing, new_key.address, deadline=deadline)
    gas["change_signer"] = members_.change_signer(p1, changing, new_key.address, change_auth).gas_used
    first_vote = members_.vote_signer_reset(p0, lost, new_key.address)
    deciding_vote = members_.vote_signer_reset(p1, lost, new_key.address)
    if first_vote.reset or not deciding_vote.reset or first_vote.tx is None or deciding_vote.tx is None:
        raise RuntimeError("expected the reset to take effect on the second of three votes")
    gas["reset_vote"] = first_vote.tx.gas_used
    gas["reset_vote_deciding"] = deciding_vote.tx.gas_used

    # binding a key: at enrolment, and later by the home partner, each with the key's own signature
    bound_key = Account.from_key(rng.randbytes(32))
    fresh = b32()
    binding = members_.authorize_binding(bound_key, fresh, nonce=0, deadline=deadline)
    gas["enrol_keyed"] = members_.enrol(p0, [fresh], [bound_key.address], [binding]).gas_used
    (keyless,) = ready(1)
    loyalty.earn(p0, keyless, 50, b32())  # a balance, forfeited by its erasure below
    binding = members_.authorize_binding(bound_key, keyless, deadline=deadline)
    gas["bind_signer"] = members_.bind_signer(p0, keyless, bound_key.address, binding).gas_used
    # a home moves by the member's signature (p1 relays), or by a majority of the partners
    move_auth = members_.authorize_home_move(bound_key, keyless, p1.address, deadline=deadline)
    gas["move_home_signed"] = members_.move_home_signed(p1, keyless, p1.address, move_auth).gas_used
    (moving,) = ready(1)
    gas["move_vote"] = members_.vote_home_move(p0, moving, p1.address).tx.gas_used
    moved = members_.vote_home_move(p1, moving, p1.address)
    if not moved.done:
        raise RuntimeError("expected the move on the second of three votes")
    gas["move_vote_deciding"] = moved.tx.gas_used
    # a member with a key is erased by its signature, or by a majority (its consent and balance go)
    erase_auth = members_.authorize_erasure(bound_key, keyless, deadline=deadline)
    (erasing,) = ready(1)
    loyalty.earn(p0, erasing, 50, b32())
    members_.vote_erasure(p1, erasing)
    voted_out = members_.vote_erasure(p0, erasing)
    if not voted_out.done:
        raise RuntimeError("expected the erasure on the second of three votes")
    gas["erase_vote_deciding"] = voted_out.tx.gas_used
    gas["erase_signed"] = members_.erase_signed(p1, keyless, erase_auth).gas_used

    consortium = coalition.consortium
    consortium.decide([p0, p1], Action.ADMIT_AUDITOR, fixed_address("auditor"))  # warm-up: proposals
    proposed = consortium.propose(p0, Action.ADMIT_PARTNER, fixed_address("partner"))
    voted = consortium.vote(p1, proposed.proposal_id)
    if proposed.executed or not voted.executed:
        raise RuntimeError("expected the admission to execute on the second of three votes")
    gas["propose"] = proposed.tx.gas_used
    gas["vote"] = voted.tx.gas_used
    gas["propose_vote"] = gas["propose"] + gas["vote"]

    # last, so that every row above keeps its inputs: repeat customers, as an import's batch holds them
    runs = [m for m in ready(BATCH // RUN) for _ in range(RUN)]
    gas["earn_runs"] = loyalty.earn_batch(p0, runs, [100] * BATCH, [b32() for _ in range(BATCH)]).gas_used
    return gas


def timed(label: str, count: int, step: Callable[[int], object]) -> Rate:
    """Run `step(i)` for i in range(count), one after another, and time the whole run."""
    latencies: list[float] = []
    with progress_bar() as progress:
        task = progress.add_task(label, total=count)
        started = time.perf_counter()
        for i in range(count):
            before = time.perf_counter()
            step(i)
            latencies.append(1000 * (time.perf_counter() - before))
            progress.advance(task)
        elapsed = time.perf_counter() - started
    return Rate(count, elapsed, tuple(latencies))


def measure_rates(coalition: Coalition, count: int, rng: random.Random, name: str) -> tuple[Rate, Rate]:
    p0, p2 = coalition.chain.backend.accounts[0], coalition.chain.backend.accounts[2]
    heads = log_heads(count, ANCHOR_SIZE, rng, genesis(coalition, p2.address))  # p2's log
    members = [rng.randbytes(32) for _ in range(16)]
    coalition.members.enrol(p0, members, [None] * len(members))
    coalition.consent.record_batch(
        p0, members, purpose_id("loyalty"), ConsentStatus.GIVEN, [rng.randbytes(32) for _ in members]
    )
    coalition.loyalty.earn_batch(p0, members, [1] * len(members), [rng.randbytes(32) for _ in members])
    anchors = timed(
        f"{name}: {count} anchors",
        count,
        lambda i: coalition.anchor.anchor(p2, heads[i][0].root, heads[i][0].size, heads[i][1]),
    )
    earns = timed(
        f"{name}: {count} earns", count, lambda i: coalition.loyalty.earn(p0, members[i % len(members)], 5)
    )
    return anchors, earns


def run_backend(
    name: str, backend: Backend, chain_info: str, build: Build, fixture: ProofFixture, anchors: int, seed: int
) -> BackendRun:
    with status(f"{name}: deploying and measuring gas"):
        accounts: Sequence[LocalAccount] = backend.accounts
        coalition = Coalition.deploy(backend, founders=accounts[:3], deployer=accounts[0], build=build)
        gas = measure_gas(coalition, fixture, random.Random(seed))
    anchor_rate, earn_rate = measure_rates(coalition, anchors, random.Random(seed + 1), name)
    return BackendRun(name, chain_info, gas, anchor_rate, earn_rate)


# --------------------------------------------------------------------------------------------------
# Chains


def tester_info(backend: EthTesterBackend) -> str:
    tester = getattr(backend.w3.provider, "ethereum_tester", None)
    try:
        vm = tester.backend.chain.get_vm()  # type: ignore[union-attr]
        fork = str(vm.fork)
    except AttributeError:
        fork = "unknown fork"
    return f"eth-tester {version('eth-tester')}, py-evm {version('py-evm')}, fork {fork}"


def anvil_info(backend: RpcBackend) -> str:
    try:
        line = subprocess.run(
            [str(anvil_binary()), "--version"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        line = "anvil (version unknown)"
    response = backend.w3.provider.make_request(RPCEndpoint("anvil_nodeInfo"), [])
    result: Any = response.get("result") or {}
    fork = str(result.get("hardFork", "unknown")).lower()
    return f"{line.removeprefix('anvil Version: ')}, hardfork {fork}, automine"


@contextmanager
def anvil_node() -> Iterator[RpcBackend]:
    with running_anvil() as (url, _):
        yield RpcBackend(url)


# --------------------------------------------------------------------------------------------------
# Printing


def print_header(build: Build, runs: Sequence[BackendRun], seed: int) -> None:
    rows = [
        ("solc", f"{SOLC_VERSION} (build: {build.compiler}), optimizer on, runs={OPTIMIZER_RUNS}"),
        ("EVM target", EVM_VERSION),
        ("web3.py", version("web3")),
        *((run.name, run.chain_info) for run in runs),
        ("Seed", str(seed)),
    ]
    console.print(machine_table("Machine, compiler and chains", rows))


def gas_cell(total: int, per: int) -> str:
    return f"{total:,}" if per == 1 else f"{total / per:,.1f}"


def print_gas(runs: Sequence[BackendRun]) -> None:
    table = Table(title="Gas per operation", title_justify="left")
    table.add_column("Operation")
    for run in runs:
        table.add_column(run.name, justify="right")
    if len(runs) == 2:
        table.add_column("same?", justify="center")
    differing: list[Row] = []
    for row in ROWS:
        values = [run.gas[row.key] for run in runs]
        cells = [gas_cell(v, row.per) for v in values]
        if len(runs) == 2:
            if values[0] == values[1]:
                cells.append("[green]yes[/]")
            else:
                cells.append(f"[red]no (Δ {values[1] - values[0]:+,})[/]")
                differing.append(row)
        table.add_row(row.label, *cells)
    console.print(table)
    notes = [
        "Gas is the receipt's gasUsed: the whole transaction, including the 21,000 base cost and calldata.",
        "Fresh deployment, 3 founding partners. Where a contract keeps a counter shared by all calls "
        "(totalSupply, a partner's issued/redeemed total, an array length), one warm-up call of the same "
        "kind ran first: the figures are steady-state costs, not a deployment's very first write.",
        f"Batches of {BATCH} go to {BATCH} fresh members; the redeem is a partial one "
        "(the balance stays non-zero).",
        "verifyInclusion is a view (free through eth_call). The estimate_gas row is eth_estimateGas of a "
        "transaction calling it, nothing subtracted: the gas an on-chain caller would pay to run it as a "
        f"transaction of its own, including the 21,000 base cost and the calldata of the {TREE_LOG2}-hash "
        "proof. The 'sent as a tx' row sends exactly that transaction and shows its receipt's gasUsed. "
        "A contract calling verifyInclusion internally pays neither the base cost nor that calldata.",
    ]
    if len(runs) == 2:
        if differing:
            notes.append(
                f"[red]{len(differing)} of {len(ROWS)} rows differ between the chains[/]: "
                + "; ".join(row.label for row in differing)
            )
            for row in differing:
                why = KNOWN_DIFFERENCES.get(row.key, "[red]unexpected: the EVM should agree.[/]")
                notes.append(f"{row.label}: {why}")
            if all(row.key in KNOWN_DIFFERENCES for row in differing):
                notes.append("Every receipt-based row is identical on eth-tester and anvil.")
        else:
            notes.append(
                f"All {len(ROWS)} rows are identical on eth-tester and anvil, as the same EVM gives."
            )
    for i, note in enumerate(notes, 1):
        console.print(f"[dim]{i}.[/] {note}")


def print_rates(runs: Sequence[BackendRun]) -> None:
    table = Table(
        title="Sequential throughput (one transaction at a time, each waited for)", title_justify="left"
    )
    table.add_column("Metric")
    for run in runs:
        table.add_column(f"{run.name} (N={run.anchors.count})", justify="right")
    for what in ("anchor", "earn"):
        rates = [run.anchors if what == "anchor" else run.earns for run in runs]
        table.add_row(
            f"{what}s/s" if what == "anchor" else "earn tx/s", *[f"{r.per_second:,.1f}" for r in rates]
        )
        table.add_row(f"ms per {what}, mean", *[f"{r.ms_each:,.2f}" for r in rates])
        table.add_row(f"ms per {what}, median", *[f"{r.median_ms:,.2f}" for r in rates])
        table.add_row(
            f"{what}s taking >= {SLOW_MS} ms",
            *[f"{r.slow} of {r.count}" for r in rates],
            end_section=what == "anchor",
        )
    console.print(table)
    notes = [
        "Each call goes through the ledger layer end to end: estimate gas, fetch the nonce, sign locally, "
        f"send raw, wait for the receipt, decode events. Anchors claim batches of {ANCHOR_SIZE:,}; earns go "
        "to members that already hold points.",
        "eth-tester runs py-evm inside this Python process and mines inside the send call.",
    ]
    if any(run.name == "anvil" for run in runs):
        notes.append(
            "anvil is reached over HTTP on localhost, with several JSON-RPC round trips per transaction "
            "(estimate, nonce, fees, send, receipt), and mines asynchronously; ledger.chain polls for the "
            "receipt every 5 ms. Transactions taking >= 100 ms point at the machine, not the node."
        )
    notes.append("Timings depend on machine load; compare within one run.")
    for i, note in enumerate(notes, 1):
        console.print(f"[dim]{i}.[/] {note}")


# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--anchors",
        type=int,
        metavar="N",
        help="sequential anchors (and earns) to time on each chain (default: 50 on eth-tester, 200 on anvil)",
    )
    parser.add_argument("--skip-anvil", action="store_true", help="measure eth-tester only")
    parser.add_argument("--seed", type=int, default=2024, help="seed of every random input (default: 2024)")
    args = parser.parse_args(argv)
    if args.anchors is not None and args.anchors < 1:
        parser.error("--anchors must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    def count(name: str) -> int:
        return int(args.anchors) if args.anchors is not None else DEFAULT_ANCHORS[name]

    with status("Compiling the contracts (cached after the first run)"):
        build = compile_contracts()
    fixture = build_proof_fixture(random.Random(args.seed))
    runs: list[BackendRun] = []

    tester = EthTesterBackend()
    runs.append(
        run_backend("eth-tester", tester, tester_info(tester), build, fixture, count("eth-tester"), args.seed)
    )
    if not args.skip_anvil:
        with anvil_node() as anvil:  # its own anvil on a free port, terminated on the way out
            runs.append(
                run_backend("anvil", anvil, anvil_info(anvil), build, fixture, count("anvil"), args.seed)
            )
    console.print()
    print_header(build, runs, args.seed)
    console.print()
    print_gas(runs)
    console.print()
    print_rates(runs)
    console.print(f"\n[dim]Total run time {time.perf_counter() - started:.1f}s[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
