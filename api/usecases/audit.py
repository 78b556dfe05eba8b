"""The auditor's own evidence: a partner's evidence bundle, made in its home, and its verification
against the chain alone, on a machine with no home, no store and no key.

A bundle (`docs/evidence-bundle.md` states the format) holds hashes, proofs and receipts only: each
leaf's hash and its RFC 9162 inclusion proof to a head anchored on chain (the head as a C2SP
tlog-checkpoint text, with its block and transaction), the consistency proofs between successive heads,
consent and erasure receipts, point events, decision records with the model's bytes and card, the
disclosures the partner chose to hand over, and the deployment it was made on. No name, e-mail, phone,
payload or key of a customer.

Verification takes the contracts from what the auditor holds (a `Coalition` attached from its own
deployment manifest), never from the bundle, which only states what it claims to be; every claim is
checked against the chain's storage and events, and every disagreement is a finding naming its record.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_utils import is_address, to_checksum_address

from api.context import Crm
from api.errors import InvalidInput, MalformedInput, NotFound
from api.evidence.anchoring import GENESIS_SIZE
from api.principal import Principal
from api.usecases.decisions import PROFILING, DecisionVerification, check_disclosure
from ledger.clients import ConsentStatus as ChainConsentStatus
from ledger.clients import purpose_id
from ledger.clients.anchor import AnchorEvent
from ledger.clients.consent import consent_events
from ledger.clients.decisions import RecordedDecision
from ledger.clients.loyalty import points_events
from ledger.coalition import Coalition
from ledger.merkle import (
    InclusionResult,
    inclusion_ranges,
    leaf_hash,
    subtree_hashes,
    verify_consistency,
    verify_inclusion,
)
from ml import decision as deciding
from ml.glassbox import GlassBox
from offchain.models import AnchorStatus
from offchain.repositories import batches as batch_rows
from offchain.repositories import consents, decisions, erasures, interactions, models, points

FORMAT = "ledgercrm/evidence-bundle/v2"
FORMAT_FAMILY = "ledgercrm/evidence-bundle/"
GZIP_MAGIC = b"\x1f\x8b"


# --- the format's small pieces ----------------------------------------------------------------------------


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def unb64(value: Any, what: str) -> bytes:
    """A 32-byte hash from base64; ValueError naming `what` for anything else."""
    try:
        raw = base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not base64") from None
    if len(raw) != 32:
        raise ValueError(f"{what} is not a 32-byte hash")
    return raw


def hex32(value: Any, what: str) -> bytes:
    try:
        raw = bytes.fromhex(str(value).removeprefix("0x"))
    except ValueError:
        raise ValueError(f"{what} is not hex") from None
    if len(raw) != 32:
        raise ValueError(f"{what} is not 32 bytes")
    return raw


def log_origin(chain_id: int, anchor: str, partner: str) -> str:
    """The checkpoint origin of a partner's log: which chain, which InteractionAnchor, whose log. A head
    copied from another deployment or chain carries another origin."""
    return f"ledgercrm/{chain_id}/{to_checksum_address(anchor)}/{to_checksum_address(partner)}"


def checkpoint(origin: str, size: int, root: bytes) -> str:
    """A C2SP tlog-checkpoint body: origin, tree size in decimal, base64 root hash, one a line. The head's
    anchoring transaction stands where a note's signature would: the chain is what vouches for it."""
    return f"{origin}\n{size}\n{b64(root)}\n"


def parse_checkpoint(text: Any) -> tuple[str, int, bytes]:
    lines = str(text).split("\n")
    if len(lines) < 4 or lines[-1] != "" or not lines[0]:
        raise ValueError("a checkpoint is three lines (origin, size, root), each ending in a newline")
    origin, size, root = lines[0], lines[1], lines[2]
    if not size.isdigit() or (size != "0" and size.startswith("0")):
        raise ValueError(f"the checkpoint's size {size!r} is not a decimal number")
    return origin, int(size), unb64(root, "the checkpoint's root")


def dumps(bundle: Mapping[str, Any]) -> bytes:
    return json.dumps(bundle, separators=(",", ":"), sort_keys=False).encode()


def write_bundle(bundle: Mapping[str, Any], out: Path) -> int:
    """Write the bundle to a new file (gzip-compressed if its name ends in .gz); its size in bytes."""
    raw = dumps(bundle)
    if out.name.endswith(".gz"):
        raw = gzip.compress(raw, compresslevel=6, mtime=0)
    try:
        with open(out, "xb") as handle:
            handle.write(raw)
    except FileExistsError:
        raise MalformedInput(f"--out: {out} exists; name a new file") from None
    except OSError as exc:
        raise MalformedInput(f"--out: cannot write {out}: {exc.strerror}") from None
    return len(raw)


def read_bundle(path: Path) -> dict[str, Any]:
    """A bundle file (plain or gzip JSON); InvalidInput in one line for anything else."""
    try:
        raw = path.read_bytes()
        if raw[:2] == GZIP_MAGIC:
            raw = gzip.decompress(raw)
        found = json.loads(raw)
    except OSError as exc:
        raise MalformedInput(f"cannot read {path}: {exc.strerror}") from None
    except (EOFError, gzip.BadGzipFile, UnicodeDecodeError, ValueError) as exc:
        raise MalformedInput(f"{path} is not an evidence bundle ({type(exc).__name__})") from None
    if not isinstance(found, dict):
        raise MalformedInput(f"{path} is not an evidence bundle (format {FORMAT})")
    stated = found.get("format")
    if not isinstance(stated, str) or not stated.startswith(FORMAT_FAMILY):
        raise MalformedInput(f"{path} is not an evidence bundle (format {FORMAT})")
    if stated != FORMAT:
        raise MalformedInput(_other_format(str(path), stated))
    bundle: dict[str, Any] = found
    return bundle


def _other_format(what: str, stated: str) -> str:
    # v1 held each leaf's whole path (44 MB for Online Retail II); v2 shares the nodes per head. No
    # release reads both: a v1 bundle is made again by the partner, in the format of today's release.
    return (
        f"{what} is an evidence bundle of format {stated!r}, which this release does not read (it reads"
        f" {FORMAT!r} only): ask the partner for one made with this release's `audit bundle`"
    )


# --- making a bundle (in the partner's home) ----------------------------------------------------------------


def make_bundle(
    crm: Crm,
    who: Principal,
    members: Sequence[bytes] | None = None,
    from_block: int = 0,
    disclosures: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The acting partner's evidence bundle: its whole log and records (or those of `members`), of the
    heads anchored from block `from_block` on. Reads the store and the chain; writes nothing."""
    partner = who.acting_partner()
    if from_block < 0:
        raise MalformedInput(f"--from-block: a block number is 0 or more, not {from_block}")
    coalition = crm.coalition
    members = None if members is None else list(dict.fromkeys(members))  # a member named twice is one
    wanted = None if members is None else set(members)
    with crm.unit_of_work() as db:
        record = crm.partner(db, partner)
        if wanted is not None:
            from offchain.repositories import customers

            owned = customers.statuses(db, list(wanted), record.id)
            unknown = next((m for m in members or () if m not in owned), None)
            if unknown is not None:
                raise NotFound(f"partner {partner!r} has no member 0x{unknown.hex()}")
        anchored = sorted(
            (
                b
                for b in batch_rows.of_partner(db, record.id).values()
                if b.status is AnchorStatus.ANCHORED and b.onchain_batch_id is not None
            ),
            key=lambda b: b.first_index + b.size,
        )
        chosen = [b for b in anchored if (b.block_number or 0) >= from_block]
        base = [b for b in anchored if (b.block_number or 0) < from_block][-1:]  # ties the scope to before
        start = chosen[0].first_index if chosen else 0
        stop = chosen[-1].first_index + chosen[-1].size if chosen else 0
        onchain_of = {b.id: b.onchain_batch_id for b in anchored}
        leaves: list[_LeafRow] = []
        for row in interactions.log_rows(db, record.id, start, stop):
            if wanted is not None and row.member_id not in wanted:
                continue
            leaves.append(
                (row.leaf_index, bytes(row.leaf_hash), row.proof, onchain_of.get(row.batch_id), "interaction")
            )
        erasure_entries = []
        for receipt in erasures.of_partner(db, record.id):
            if receipt.leaf_index is None or not start <= receipt.leaf_index < stop:
                continue
            if wanted is not None and receipt.member_id not in wanted:
                continue
            leaves.append(
                (
                    receipt.leaf_index,
                    leaf_hash(receipt.receipt_hash),
                    receipt.proof,
                    onchain_of.get(receipt.anchored_batch_id),
                    "erasure",
                )
            )
            erasure_entries.append({"receipt": receipt.receipt_json, "leaf_index": receipt.leaf_index})
        leaves.sort(key=lambda leaf: leaf[0])
        consent_entries = [
            {"receipt": r.receipt_json, "block": r.block_number, "transaction": r.tx_hash}
            for r in consents.of_partner(db, record.id)
            if r.block_number is not None
            and r.block_number >= from_block
            and (wanted is None or r.member_id in wanted)
        ]
        point_entries = [
            {
                "kind": str(p.kind.value if hasattr(p.kind, "value") else p.kind),
                "member": "0x" + bytes(p.member_id).hex(),
                "amount": int(p.amount),
                "ref": "0x" + bytes(p.ref).hex(),
                "block": p.block_number,
            }
            for p in points.of_partner(db, record.id)
            if p.block_number is not None
            and p.block_number >= from_block
            and (wanted is None or bytes(p.member_id) in wanted)
        ]
        decided = [
            d
            for d in decisions.of_partner(db, record.id)
            if d.decision_id is not None
            and (d.block_number or 0) >= from_block
            and (wanted is None or d.member_id in wanted)
        ]
        registered = [m for m in models.every(db) if m.partner_id == record.id]
    used = {d.model_id for d in decided}
    model_entries = [
        {"modelId": m.onchain_id, "model": m.model_json, "card": m.card_json}
        for m in registered
        if m.onchain_id in used or (wanted is None and m.block_number >= from_block)
    ]
    decision_entries = [
        {
            "decisionId": d.decision_id,
            "modelId": d.model_id,
            "member": "0x" + d.member_id.hex(),
            "inputRoot": "0x" + d.input_root.hex(),
            "scoreBps": d.score_bps,
            "action": d.action,
            "reasons": "0x" + bytes(d.reasons).hex(),
            "explanationHash": "0x" + d.explanation_hash.hex(),
            "block": d.block_number,
        }
        for d in decided
    ]
    for disclosure in disclosures:
        if disclosure.get("decisionId") not in {d.decision_id for d in decided}:
            raise InvalidInput(
                f"--disclosure: decision {disclosure.get('decisionId')!r} is not among the bundle's decisions"
            )
    deployment = coalition.deployment
    origin = log_origin(deployment.chain_id, coalition.anchor.address, record.address)
    events = {e.batch_id: e for e in coalition.anchor.anchored_events(record.address)}
    leaf_entries, nodes = _shared_paths(leaves)
    heads = []
    for batch in [*base, *chosen]:
        assert batch.onchain_batch_id is not None
        event = events.get(batch.onchain_batch_id)
        heads.append(
            {
                "batchId": batch.onchain_batch_id,
                "checkpoint": checkpoint(origin, batch.first_index + batch.size, bytes(batch.root)),
                "block": batch.block_number,
                "transaction": batch.tx_hash or (event.tx_hash if event is not None else None),
                "inScope": batch in chosen,
                "nodes": [b64(n) for n in nodes.get(batch.onchain_batch_id, {})],
            }
        )
    consistency = [
        {
            "tree_size_1": before.first_index + before.size,
            "tree_size_2": after.first_index + after.size,
            "consistency_path": [b64(p) for p in _split(bytes(after.consistency or b""))],
        }
        for before, after in itertools.pairwise([*base, *chosen])
    ]
    ordered = [*base, *chosen]
    if ordered and ordered[0].first_index == GENESIS_SIZE:
        # the log's first head, from its genesis leaf (leaf 0, which binds the log to this partner, this
        # contract and this chain): the proof the contract checked when it accepted the head; also when
        # that head is only the base of a scoped bundle (audit verify checks it whenever it is there)
        first = ordered[0]
        consistency.insert(
            0,
            {
                "tree_size_1": GENESIS_SIZE,
                "tree_size_2": first.first_index + first.size,
                "consistency_path": [b64(p) for p in _split(bytes(first.consistency or b""))],
            },
        )
    return {
        "format": FORMAT,
        "createdAt": datetime.now(UTC).isoformat(timespec="seconds"),
        "deployment": {
            "chainId": deployment.chain_id,
            "contracts": dict(deployment.contracts),
            # which chain: the block the deployment was mined in, as this home trusts it
            "deployedAtBlock": deployment.block_number,
            "deployedAtBlockHash": deployment.block_hash,
        },
        "partner": {"name": partner, "address": record.address},
        "scope": {
            "members": None if members is None else ["0x" + m.hex() for m in members],
            "fromBlock": from_block,
        },
        "log": {
            "origin": origin,
            "genesis": b64(coalition.anchor.genesis_leaf(record.address)),
            "heads": heads,
            "consistency": consistency,
            "leaves": leaf_entries,
        },
        "consentReceipts": consent_entries,
        "erasureReceipts": erasure_entries,
        "pointEvents": point_entries,
        "models": model_entries,
        "decisions": decision_entries,
        "disclosures": [dict(d) for d in disclosures],
    }


# a leaf of the log as the store has it: index, leaf hash, its audit path (hashes concatenated), the
# on-chain id of the head that anchored it, and what kind of record it is
_LeafRow = tuple[int, bytes, bytes | None, int | None, str]


def _shared_paths(rows: Sequence[_LeafRow]) -> tuple[list[dict[str, Any]], dict[int, dict[bytes, int]]]:
    """Each leaf as an RFC 9162 inclusion proof (leaf_index, inclusion_path; tree_size is its head's) with
    its hash and kind (nothing of its content), the path as positions in its head's `nodes`; and per head,
    those nodes: the distinct hashes of its leaves' paths, each once, in the order the leaves (by index)
    and their paths (leaf upwards) first use them.

    A leaf's path is ~15 hashes, but the leaves of one head share most of them (a batch of 1,000 leaves
    has ~2,000 distinct nodes, not 15,000): v1 wrote each path out whole, 44 MB for Online Retail II."""
    nodes: dict[int, dict[bytes, int]] = {}
    entries = []
    for index, leaf, proof, batch, kind in rows:
        path: list[int] = []
        hashes = _split(bytes(proof or b"")) if batch is not None else []  # no head: nothing to prove
        table = nodes.setdefault(batch, {}) if batch is not None else {}
        for node in hashes:
            position = table.get(node)
            if position is None:
                position = table[node] = len(table)
            path.append(position)
        entries.append(
            {
                "leaf_index": index,
                "leaf_hash": b64(leaf),
                "kind": kind,
                "batchId": batch,
                "inclusion_path": path,
            }
        )
    return entries, nodes


def _split(proof: bytes) -> list[bytes]:
    return [proof[i : i + 32] for i in range(0, len(proof), 32)]


# --- verifying a bundle against the chain (anywhere) --------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    record: str  # what it is about: "leaf 17 of acme", "consent receipt 3 (member 0x…, loyalty)", ...
    detail: str


@dataclass
class AuditReport:
    partner: str = ""
    chain_id: int = 0
    checked: list[str] = field(default_factory=list)  # what ran, with counts, one line each
    findings: list[Finding] = field(default_factory=list)
    # what the report's plots draw: plain records read from the bundle once they are checked
    heads: list[dict[str, Any]] = field(default_factory=list)
    consents: list[dict[str, Any]] = field(default_factory=list)
    point_events: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    erasures: list[dict[str, Any]] = field(default_factory=list)
    settlement: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    def find(self, record: str, detail: str) -> None:
        self.findings.append(Finding(record, detail))


def verify_bundle(coalition: Coalition, bundle: Mapping[str, Any]) -> AuditReport:
    """Check everything `bundle` claims against the chain of `coalition` (the auditor's own deployment):
    what ran goes to `checked`, every disagreement to `findings`. Never trusts the bundle's deployment."""
    report = AuditReport(chain_id=coalition.chain.chain_id)
    stated = bundle.get("format")
    if stated != FORMAT:
        known = isinstance(stated, str) and stated.startswith(FORMAT_FAMILY)
        report.find(
            "bundle",
            _other_format("it", str(stated)) if known else f"it is not an evidence bundle ({FORMAT})",
        )
        return report
    try:
        partner = dict(bundle["partner"])
        name = str(partner["name"])
        address = to_checksum_address(str(partner["address"]))
        scope = dict(bundle["scope"])
        members = scope.get("members")
        from_block = int(scope.get("fromBlock") or 0)
    except (KeyError, TypeError, ValueError) as exc:
        report.find("bundle", f"its partner or scope cannot be read ({type(exc).__name__}: {exc})")
        return report
    report.partner = name
    full = members is None
    if not _check_deployment(report, coalition, bundle.get("deployment")):
        return report  # made on another chain: nothing in it is about the chain you trust
    ctx = _Context(coalition, report, name, address, from_block, full)
    sections: list[tuple[str, Callable[[Any], None]]] = [
        ("log", ctx.log),
        ("erasureReceipts", ctx.erasures),
        ("consentReceipts", ctx.consents),
        ("pointEvents", ctx.points),
        ("models", ctx.models),
        ("decisions", ctx.decisions),
        ("disclosures", ctx.disclosures),
    ]
    for key, check in sections:
        try:
            check(bundle.get(key) if key != "log" else bundle.get("log") or {})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            report.find(f"{key} of {name}", f"cannot be read ({type(exc).__name__}: {exc})")
    report.settlement = {
        "issued": coalition.loyalty.issued_by(address),
        "redeemed": coalition.loyalty.redeemed_at(address),
        "position": coalition.loyalty.position_of(address),
    }
    return report


def _check_deployment(report: AuditReport, coalition: Coalition, stated: Any) -> bool:
    """The bundle's deployment against yours; False if it was made on another chain: your node's block
    at the number the bundle says its coalition was deployed in has another hash (every devnet, and
    every network deployed with one deployer key, has the same chain id and addresses, so only the
    history tells them apart). Another deployment on your chain is named contract by contract."""
    from ledger.reader import block_hash_text

    ours = coalition.deployment
    try:
        chain_id = int(stated["chainId"])
        contracts = {str(k): str(v) for k, v in dict(stated["contracts"]).items()}
        block_hash = stated.get("deployedAtBlockHash")
        block = None if block_hash is None else int(stated["deployedAtBlock"])
        if block_hash is not None and block_hash_text(block_hash) is None:
            raise ValueError("deployedAtBlockHash is not a block hash")
    except (KeyError, TypeError, ValueError) as exc:
        report.find("deployment", f"the bundle's deployment cannot be read ({type(exc).__name__})")
        return True
    if chain_id != coalition.chain.chain_id:
        report.find(
            "deployment",
            f"the bundle says chain id {chain_id};"
            f" the chain you trust is chain id {coalition.chain.chain_id}",
        )
    if block is not None:
        found = coalition.block_hash(block) if block >= 0 else None
        yours = "no such block" if found is None else "0x" + found.hex()
        if yours != block_hash_text(block_hash):
            report.find(
                "deployment",
                f"the bundle was made on another chain: its block {block} is {block_hash_text(block_hash)},"
                f" your node's block {block} is {yours}: nothing else in it was checked",
            )
            return False
    for contract, address in sorted(ours.contracts.items()):
        theirs = contracts.get(contract)
        if theirs is None or theirs.lower() != address.lower():
            report.find(
                "deployment",
                f"the bundle names {contract} at {theirs}; your deployment has it at {address}",
            )
    report.checked.append(
        f"deployment: chain id {coalition.chain.chain_id} and the six contracts are the ones you trust"
        " (taken from your deployment, not from the bundle)"
        + (
            f", on the chain whose block {block} is {block_hash_text(block_hash)}"
            if block is not None
            else "; the bundle does not say which chain it was made on (made before bundles did): every"
            " claim in it is checked against your node's"
        )
    )
    return True


@dataclass
class _Head:
    batch_id: int
    size: int
    root: bytes
    previous_size: int
    block: int
    in_scope: bool
    nodes: list[bytes | None] = field(default_factory=list)  # its leaves' path nodes; None: unreadable


class _Context:
    def __init__(
        self, coalition: Coalition, report: AuditReport, name: str, address: str, from_block: int, full: bool
    ) -> None:
        self.coalition, self.report, self.name, self.address = coalition, report, name, address
        self.from_block, self.full = from_block, full
        self.heads: dict[int, _Head] = {}
        self.leaves: dict[int, bytes] = {}  # leaf index -> hash, of the leaves proven on chain
        self.glassboxes: dict[int, GlassBox] = {}
        self.chain_decisions: dict[int, RecordedDecision] = {}

    def find(self, record: str, detail: str) -> None:
        self.report.find(record, detail)

    # --- the log: heads, consistency, leaves ---

    def log(self, log: Mapping[str, Any]) -> None:
        name = self.name
        expected = log_origin(self.coalition.chain.chain_id, self.coalition.anchor.address, self.address)
        if log.get("origin") != expected:
            self.find(
                f"log of {name}",
                f"its origin is {log.get('origin')!r}: not this deployment's log of {self.address}"
                f" ({expected})",
            )
        events: dict[int, AnchorEvent] = {
            e.batch_id: e for e in self.coalition.anchor.anchored_events(self.address)
        }
        order: list[_Head] = []
        for entry in log.get("heads") or []:
            batch_id = int(entry["batchId"])
            label = f"head {batch_id} of {name}"
            try:
                origin, size, root = parse_checkpoint(entry["checkpoint"])
            except ValueError as exc:
                self.find(label, f"its checkpoint cannot be read: {exc}")
                continue
            if origin != expected:
                self.find(
                    label,
                    f"its checkpoint is of log {origin!r}, not of this deployment's log of the partner"
                    f" ({expected}): a head from another deployment or chain",
                )
                continue
            event = events.get(batch_id)
            if event is None:
                self.find(label, "the chain has no such head of this partner")
                continue
            if (event.root, event.size) != (root, size):
                self.find(
                    label,
                    f"the bundle says {size:,} leaves, root {b64(root)}; the chain's head {batch_id} says"
                    f" {event.size:,} leaves, root {b64(event.root)}",
                )
                continue
            tx = str(entry.get("transaction") or "")
            if int(entry.get("block") or -1) != event.block_number or (
                event.tx_hash and tx.lower() != event.tx_hash.lower()
            ):
                self.find(
                    label,
                    f"anchored in block {event.block_number} by {event.tx_hash}; the bundle says block"
                    f" {entry.get('block')} by {tx or 'no transaction'}",
                )
                continue
            head = _Head(
                batch_id,
                size,
                root,
                event.previous_size,
                event.block_number,
                bool(entry.get("inScope", True)),
                self._nodes(label, entry.get("nodes")),
            )
            if order and head.size <= order[-1].size:
                self.find(
                    label, f"comes after a head of {order[-1].size:,} leaves: heads must grow, in order"
                )
                continue
            self.heads[batch_id] = head
            order.append(head)
            self.report.heads.append({"batchId": batch_id, "size": size, "block": event.block_number})
        in_scope = [e for e in events.values() if e.block_number >= self.from_block]
        for event in in_scope:
            if event.batch_id not in self.heads:
                self.find(
                    f"head {event.batch_id} of {name}",
                    f"the chain anchored it in block {event.block_number} ({event.size:,} leaves);"
                    " the bundle leaves it out",
                )
        proofs = {
            (int(c["tree_size_1"]), int(c["tree_size_2"])): [
                unb64(p, "a consistency hash") for p in c["consistency_path"]
            ]
            for c in log.get("consistency") or []
        }
        genesis = _Head(-1, GENESIS_SIZE, self.coalition.anchor.genesis_leaf(self.address), 0, 0, False)
        first = [genesis] if order and order[0].previous_size == GENESIS_SIZE else []
        for before, after in itertools.pairwise([*first, *order]):
            label = (
                f"heads {before.batch_id} -> {after.batch_id} of {name}"
                if before is not genesis
                else f"the genesis leaf -> head {after.batch_id} of {name}"
            )
            proof = proofs.get((before.size, after.size))
            if proof is None:
                self.find(label, "the bundle holds no consistency proof between them")
                continue
            result = verify_consistency(before.size, after.size, before.root, after.root, proof)
            if not result.ok:
                self.find(label, f"the consistency proof fails: {result}")
        self.report.checked.append(
            f"{len(order)} heads of {name} against the chain's BatchAnchored events (checkpoint origin,"
            f" size, root, block, transaction); {max(len(order) - 1 + len(first), 0)} RFC 9162 consistency"
            " proofs between successive heads" + (", the first from the log's genesis leaf" if first else "")
        )
        self._leaves(log.get("leaves") or [], order)

    def _nodes(self, label: str, entries: Any) -> list[bytes | None]:
        """A head's shared path nodes, decoded once for all of its leaves; an unreadable one is a finding
        here, and fails the proofs that use it."""
        if entries is None:
            return []
        if not isinstance(entries, list):
            self.find(label, "its nodes are not a list of base64 hashes")
            return []
        nodes: list[bytes | None] = []
        for position, entry in enumerate(entries):
            try:
                nodes.append(unb64(entry, f"node {position}"))
            except ValueError as exc:
                self.find(f"node {position} of {label}", str(exc))
                nodes.append(None)
        return nodes

    def _leaves(self, entries: Sequence[Mapping[str, Any]], order: Sequence[_Head]) -> None:
        name = self.name
        last = -1
        present: set[int] = set()
        proven = 0
        verified: list[tuple[int, bytes, _Head, list[bytes]]] = []
        failed: list[tuple[int, bytes, _Head, list[int], InclusionResult]] = []
        for position, entry in enumerate(entries):
            index = int(entry["leaf_index"])
            label = f"leaf {index} of {name}"
            if index <= last:
                self.find(
                    label,
                    f"out of order: entry {position} follows leaf {last} (a leaf moved or held twice)",
                )
            last = max(last, index)
            present.add(index)
            leaf = unb64(entry["leaf_hash"], f"leaf {index}'s hash")
            head = self.heads.get(int(entry["batchId"])) if entry.get("batchId") is not None else None
            if head is None:
                self.find(
                    label,
                    f"it proves against head {entry.get('batchId')}, which is not a head checked on chain",
                )
                continue
            if not head.previous_size <= index < head.size:
                self.find(
                    label,
                    f"head {head.batch_id} anchored leaves {head.previous_size:,}..{head.size - 1:,},"
                    " not this one",
                )
                continue
            positions = entry["inclusion_path"]
            path = _path(head, positions)
            if isinstance(path, str):
                self.find(label, f"its inclusion proof {path}")
                continue
            result = verify_inclusion(leaf, index, head.size, path, head.root)
            if not result.ok:
                failed.append((index, leaf, head, positions, result))
                continue
            verified.append((index, leaf, head, path))
            if index in self.leaves:
                continue
            self.leaves[index] = leaf
            proven += 1
        if failed:
            self._failed_proofs(failed, verified)
        scoped = [h for h in order if h.in_scope]
        if self.full and scoped:
            start, stop = scoped[0].previous_size, scoped[-1].size
            missing = [i for i in range(start, stop) if i not in present]
            for first, end in _runs(missing):
                record = f"leaf {first} of {name}" if first == end else f"leaves {first}..{end} of {name}"
                self.find(record, "the chain's heads hold it; the bundle leaves it out")
            self.report.checked.append(
                f"{proven:,} leaves of {name} proven by their RFC 9162 inclusion proofs against those heads;"
                f" every leaf {start:,}..{stop - 1:,} present, in order"
            )
        else:
            self.report.checked.append(
                f"{proven:,} leaves of {name} proven by their RFC 9162 inclusion proofs against those heads"
            )

    def _failed_proofs(
        self,
        failed: Sequence[tuple[int, bytes, _Head, list[int], InclusionResult]],
        verified: Sequence[tuple[int, bytes, _Head, list[bytes]]],
    ) -> None:
        """Name what broke each failing inclusion proof. Every hash a verified proof commits to (its
        leaf, its path, the nodes computed on the way up) is its tree's, whichever head it proves against:
        a subtree's hash is the same in every tree that holds it. A shared node that differs from such a
        hash is one finding, with the leaves whose proofs it broke; any other failing leaf is its own."""
        known: dict[tuple[int, int], bytes] = {}
        for index, leaf, head, path in verified:
            known.update(subtree_hashes(index, leaf, path, inclusion_ranges(index, head.size)))
        broken: dict[tuple[int, int], list[int]] = {}  # (head, node position) -> the leaves it fails
        ranges_of: dict[tuple[int, int], tuple[int, int]] = {}
        for index, leaf, head, positions, result in failed:
            ranges = inclusion_ranges(index, head.size)
            wrong = [
                (position, where)
                for position, where in zip(positions, ranges, strict=False)
                if where in known and head.nodes[position] != known[where]
            ]
            if wrong:  # with the true hashes in their place, does the proof hold?
                path = [known.get(r, head.nodes[p] or b"") for p, r in zip(positions, ranges, strict=False)]
                result = verify_inclusion(leaf, index, head.size, path, head.root)
            if not result.ok:
                self.find(
                    f"leaf {index} of {self.name}",
                    f"its inclusion proof against head {head.batch_id} fails: {result}",
                )
            for position, where in wrong:
                broken.setdefault((head.batch_id, position), []).append(index)
                ranges_of[(head.batch_id, position)] = where
        for (batch_id, position), indices in broken.items():
            start, end = ranges_of[(batch_id, position)]
            runs = ", ".join(f"{a}" if a == b else f"{a}..{b}" for a, b in _runs(indices)[:10])
            self.find(
                f"node {position} of head {batch_id} of {self.name}",
                f"it is not the hash of leaves {start:,}..{end - 1:,} that the other leaves' proofs prove;"
                f" the inclusion proofs of the {len(indices):,} leaves that use it fail (leaves {runs}"
                + (", …)" if len(_runs(indices)) > 10 else ")"),
            )

    # --- receipts and events ---

    def erasures(self, entries: Sequence[Mapping[str, Any]] | None) -> None:
        entries = entries or []
        parsed = []
        for entry in entries:
            raw = str(entry["receipt"]).encode()
            index = int(entry["leaf_index"])
            document = json.loads(raw)
            member = hex32(document.get("member"), "the receipt's member")
            parsed.append((entry, raw, index, document, member))
        erased = self.coalition.members.are_erased([p[4] for p in parsed]) if parsed else []
        for (_, raw, index, document, member), on_chain in zip(parsed, erased, strict=True):
            label = f"erasure receipt of member 0x{member.hex()} ({self.name})"
            problems = []
            if self.leaves.get(index) != leaf_hash(hashlib.sha256(raw).digest()):
                problems.append(f"its hash is not leaf {index} of the log proven on chain")
            if document.get("partner") != self.name:
                problems.append(f"it names partner {document.get('partner')!r}")
            if not on_chain:
                problems.append("the MemberRegistry does not record the member erased")
            if problems:
                self.find(label, "; ".join(problems))
            self.report.erasures.append({"member": "0x" + member.hex(), "at": document.get("erasedAt")})
        self.report.checked.append(
            f"{len(parsed)} erasure receipts re-hashed to their leaves, and against the MemberRegistry's"
            " erased flag"
        )

    def consents(self, entries: Sequence[Mapping[str, Any]] | None) -> None:
        entries = entries or []
        events: dict[bytes, list[Any]] = {}
        for event in consent_events(self.coalition.consent, self.address):
            events.setdefault(event.receipt_hash, []).append(event)
        for position, entry in enumerate(entries):
            raw = str(entry["receipt"]).encode()
            document = json.loads(raw)
            label = (
                f"consent receipt {position} of {self.name} (member {document.get('member')},"
                f" {document.get('purpose')}, {document.get('status')})"
            )
            found = events.get(hashlib.sha256(raw).digest())
            if not found:
                self.find(label, f"the chain recorded no consent for {self.name} with this receipt's hash")
                continue
            event = found.pop(0)
            expiry = document.get("expiresAt")
            expires = int(datetime.fromisoformat(expiry).timestamp()) if expiry else 0
            status = "given" if event.status is ChainConsentStatus.GIVEN else "withdrawn"
            problems = []
            if "0x" + event.member.hex() != document.get("member"):
                problems.append(f"the chain recorded it for member 0x{event.member.hex()}")
            if event.purpose != purpose_id(str(document.get("purpose"))):
                problems.append("the chain recorded it for another purpose")
            if status != document.get("status"):
                problems.append(f"the chain says {status}")
            if event.expires_at != expires:
                problems.append(f"the chain's expiry is {event.expires_at or 'none'}")
            if entry.get("block") is not None and int(entry["block"]) != event.block_number:
                problems.append(f"the chain recorded it in block {event.block_number}, not {entry['block']}")
            if problems:
                self.find(label, "; ".join(problems))
            self.report.consents.append(
                {"purpose": document.get("purpose"), "status": status, "block": event.block_number}
            )
        if self.full:
            for left in events.values():
                for event in left:
                    if event.block_number < self.from_block:
                        continue
                    if event.receipt_hash == bytes(32) and event.status is ChainConsentStatus.WITHDRAWN:
                        continue  # an erasure's withdrawal: no receipt (the erasure receipt stands for it)
                    self.find(
                        f"consent record 0x{event.receipt_hash.hex()} of {self.name}",
                        f"the chain records consent of member 0x{event.member.hex()} in block"
                        f" {event.block_number}; the bundle has no receipt for it",
                    )
        self.report.checked.append(
            f"{len(entries)} consent receipts re-hashed and found among the chain's ConsentRecorded events"
            " (member, purpose, status, expiry, block)"
        )

    def points(self, entries: Sequence[Mapping[str, Any]] | None) -> None:
        entries = entries or []
        chain = Counter(
            (e.kind, e.member, e.amount, e.ref, e.block_number)
            for e in points_events(self.coalition.loyalty, self.address)
        )
        for position, entry in enumerate(entries):
            key = (
                str(entry["kind"]),
                hex32(entry["member"], "a point event's member"),
                int(entry["amount"]),
                hex32(entry["ref"], "a point event's reference"),
                int(entry["block"]),
            )
            if chain[key] > 0:
                chain[key] -= 1
            else:
                self.find(
                    f"point event {position} of {self.name}",
                    f"{key[0]} of {key[2]:,} points for member 0x{key[1].hex()} in block {key[4]} matches no"
                    " event on chain",
                )
            self.report.point_events.append({"kind": key[0], "amount": key[2], "block": key[4]})
        if self.full:
            for (kind, member, amount, _, block), left in chain.items():
                if left and block >= self.from_block:
                    self.find(
                        f"points of member 0x{member.hex()} ({self.name})",
                        f"the chain has {left} {kind} of {amount:,} points in block {block} the bundle lacks",
                    )
        self.report.checked.append(
            f"{len(entries)} point events against the chain's PointsEarned and PointsRedeemed events"
        )

    def models(self, entries: Sequence[Mapping[str, Any]] | None) -> None:
        entries = entries or []
        for entry in entries:
            model_id = int(entry["modelId"])
            label = f"model {model_id}"
            info = self.coalition.decisions.model(model_id)
            raw, card = str(entry["model"]).encode(), str(entry["card"]).encode()
            problems = []
            if hashlib.sha256(raw).digest() != info.model_hash:
                problems.append(
                    f"its bytes hash to 0x{hashlib.sha256(raw).hexdigest()[:16]}…; the chain registered"
                    f" 0x{info.model_hash.hex()[:16]}…: another model file"
                )
            if hashlib.sha256(card).digest() != info.card_hash:
                problems.append("its card does not hash to the registered card hash")
            if info.registrant != self.address:
                problems.append(f"it was registered by {info.registrant}, not by {self.name}")
            if problems:
                self.find(label, "; ".join(problems))
                continue
            try:
                self.glassboxes[model_id] = GlassBox.from_bytes(raw)
            except ValueError as exc:
                self.find(label, f"its bytes are not a model: {exc}")
        self.report.checked.append(
            f"{len(entries)} models: bytes and card hashed to what DecisionLog registered"
        )

    def decisions(self, entries: Sequence[Mapping[str, Any]] | None) -> None:
        entries = entries or []
        self.chain_decisions = {
            d.decision_id: d
            for d in self.coalition.decisions.decisions(partner=self.address, from_block=self.from_block)
        }
        listed = set()
        unproven: dict[int, list[int]] = {}  # model id -> its decisions, when the model did not verify
        for entry in entries:
            decision_id = int(entry["decisionId"])
            listed.add(decision_id)
            label = f"decision {decision_id}"
            found = self.chain_decisions.get(decision_id)
            if found is None:
                self.find(label, f"the chain logged no such decision by {self.name}")
                continue
            stated = (
                int(entry["modelId"]),
                hex32(entry["member"], "the member"),
                hex32(entry["inputRoot"], "the input root"),
                int(entry["scoreBps"]),
                deciding.action_word(str(entry["action"])),
                hex32(entry["reasons"], "the reason codes"),
                hex32(entry["explanationHash"], "the explanation hash"),
                int(entry["block"]),
            )
            d = found.decision
            logged = (
                found.model_id,
                d.member,
                d.input_root,
                d.score_bps,
                d.action,
                d.reasons,
                d.explanation_hash,
                found.block_number,
            )
            if stated != logged:
                fields = (
                    "model",
                    "member",
                    "input root",
                    "score",
                    "action",
                    "reasons",
                    "explanation hash",
                    "block",
                )
                differ = [f for f, a, b in zip(fields, stated, logged, strict=True) if a != b]
                self.find(
                    label, "the bundle's record differs from the chain's event in: " + ", ".join(differ)
                )
                continue
            model = self.glassboxes.get(found.model_id)
            if model is None:
                unproven.setdefault(found.model_id, []).append(decision_id)
            else:
                try:
                    deciding.read_reason_codes(model, d.reasons)
                except ValueError as exc:
                    self.find(label, f"its reason codes: {exc}")
            if not self.coalition.consent.is_valid_at_block(
                d.member, self.address, PROFILING, found.block_number
            ):
                self.find(label, f"profiling consent was not valid at block {found.block_number}")
            self.report.decisions.append(
                {
                    "model": found.model_id,
                    "action": deciding.read_action_word(d.action),
                    "block": found.block_number,
                }
            )
        for model_id, ids in sorted(unproven.items()):  # one finding per model, not one per decision
            shown = ", ".join(str(i) for i in ids[:10]) + (", …" if len(ids) > 10 else "")
            self.find(
                f"decisions of model {model_id}",
                f"{len(ids)} decisions ({shown}) were made with model {model_id}, which the bundle does not"
                " hold verified: none of them can be reproduced",
            )
        if self.full:
            for decision_id in sorted(set(self.chain_decisions) - listed):
                self.find(
                    f"decision {decision_id}", f"the chain logged it ({self.name}); the bundle leaves it out"
                )
        self.report.checked.append(
            f"{len(entries)} decisions against DecisionLog's events, their models and profiling consent at"
            " their blocks"
        )

    def disclosures(self, entries: Sequence[Mapping[str, Any]] | None) -> None:
        entries = entries or []
        for position, entry in enumerate(entries):
            decision_id = entry.get("decisionId")
            label = f"disclosure {position} (decision {decision_id})"
            found = self.chain_decisions.get(decision_id) if isinstance(decision_id, int) else None
            if found is None:
                self.find(label, "it names no decision of the bundle logged on chain")
                continue
            model = self.glassboxes.get(found.model_id)
            if model is None:
                self.find(label, f"no verified model {found.model_id} to reproduce it with")
                continue
            result = DecisionVerification(found.decision_id)
            check_disclosure(result, model, found, dict(entry))
            for step in result.steps:
                if not step.ok:
                    self.find(label, f"{step.name}: {step.detail}")
        self.report.checked.append(
            f"{len(entries)} disclosures: the explanation is the one committed on chain, and the model"
            " reproduces it and the logged score bit for bit"
        )


def _path(head: _Head, positions: Any) -> list[bytes] | str:
    """A leaf's inclusion path from its positions in its head's nodes; what is wrong with it otherwise."""
    if not isinstance(positions, list):
        return f"is not a list of positions in the nodes of head {head.batch_id}"
    path = []
    for position in positions:
        if type(position) is not int or not 0 <= position < len(head.nodes):
            return f"names node {position!r} of head {head.batch_id}, which holds {len(head.nodes):,} nodes"
        node = head.nodes[position]
        if node is None:
            return f"uses node {position} of head {head.batch_id}, which is not a hash"
        path.append(node)
    return path


def _runs(indices: Iterable[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


# --- the auditor's side: a chain and a deployment, nothing else -------------------------------------------


def open_auditor_chain(
    rpc_url: str, deployment_file: Path | None, consortium: str | None = None
) -> Coalition:
    """The auditor's own view of the chain: the node at `rpc_url`, with the contracts the Consortium at
    `consortium` records (the trust anchor, given out of band), or those of the manifest
    `deployment_file` once the chain confirms them (its Consortium records every other address, the
    code is ours; with both, the manifest must be that Consortium's). Never the bundle's own word.

    Which chain: the manifest's block hash, or `consortium` given as ADDRESS@BLOCKHASH (the hash of the
    block the Consortium was deployed in, which `init` prints with the address); with the address
    alone, the auditor's node says which chain it is."""
    from dataclasses import replace

    from ledger.backends import RpcBackend
    from ledger.deployment import Deployment
    from ledger.errors import DeploymentMismatch
    from ledger.reader import block_hash_text

    address, _, stated = (consortium or "").partition("@")
    block_hash = block_hash_text(stated) if stated else None
    if consortium is not None and (not is_address(address) or ("@" in consortium and block_hash is None)):
        raise MalformedInput(
            "--consortium takes a contract address (0x + 40 hex digits), optionally followed by @ and"
            f" the hash of the block it was deployed in (0x + 64 hex digits), not {consortium!r}"
        )
    if deployment_file is None and consortium is None:
        raise MalformedInput(
            "give --consortium ADDRESS or --deployment FILE: the contracts come from what you hold,"
            " never from the bundle"
        )
    backend = RpcBackend(rpc_url, keys=[])  # no key: an auditor signs nothing
    if deployment_file is None:
        return Coalition.trusted(backend, address, block_hash=block_hash)
    deployment = Deployment.load(deployment_file)
    if block_hash is not None:
        if deployment.block_hash not in (None, block_hash):
            raise DeploymentMismatch(
                f"the manifest's coalition was deployed in the block {deployment.block_hash}, not the pinned"
                f" {block_hash}: a manifest of another chain"
            )
        deployment = replace(deployment, block_hash=block_hash)
    return Coalition.attach(backend, deployment, consortium=address if consortium is not None else None)


def audit_verify(coalition: Coalition, path: Path) -> AuditReport:
    return verify_bundle(coalition, read_bundle(path))
