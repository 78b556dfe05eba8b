"""A monitor between audits (`ledgercrm audit watch`): follows the heads the partners anchor, checks
each against the last one it saw of that partner, and keeps its own copy of what it saw, so that a later
history that differs from it (a rewound chain, a fork, a replaced deployment) is caught even if the
chain itself no longer shows the old one.

Its state is one JSON file in its own folder: the chain id, the InteractionAnchor's address, the last
block it read (number and hash), and per partner the last `KEPT_HEADS` heads it saw (about 150 bytes
each, so a few kilobytes a partner). It resumes from there after a restart.

Per poll: the chain and contract are the ones watched; the last block read is still the chain's block
of that number (same hash); every kept head is still the chain's head of that id (same size and root);
then each new `BatchAnchored` event, in order, must extend the last head seen of its partner (a
partner's first head: its log's genesis leaf, computed here): the consistency proof its transaction
submitted is re-checked here (RFC 9162) from that head to the new one; the other events of the range
are counted by name (consent, points, decisions, erasures, membership). Every failure is one finding
line, and ends the watch: the state stays what it was, the monitor's evidence of the history it saw,
and is never moved onto a history that differs from it.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api.errors import InvalidInput
from api.evidence.anchoring import GENESIS_SIZE
from ledger.clients.anchor import AnchorClient, AnchorEvent
from ledger.coalition import Coalition
from ledger.errors import LedgerError
from ledger.merkle import verify_consistency

STATE_FILE = "monitor.json"
STATE_FORMAT = "ledgercrm/monitor-state/v1"
KEPT_HEADS = 16  # per partner: each is re-checked on every poll against the chain


@dataclass
class SeenHead:
    batch_id: int
    size: int
    root: bytes
    block: int

    def to_json(self) -> dict[str, Any]:
        return {
            "batchId": self.batch_id,
            "size": self.size,
            "root": base64.b64encode(self.root).decode(),
            "block": self.block,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeenHead:
        return cls(
            int(data["batchId"]), int(data["size"]), base64.b64decode(data["root"]), int(data["block"])
        )


@dataclass
class MonitorState:
    chain_id: int
    anchor: str
    block: int = -1  # the last block read; -1: none yet
    block_hash: bytes = b""
    heads: dict[str, list[SeenHead]] = field(default_factory=dict)  # partner address -> oldest first

    def to_json(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "chainId": self.chain_id,
            "anchor": self.anchor,
            "block": self.block,
            "blockHash": "0x" + self.block_hash.hex(),
            "heads": {p: [h.to_json() for h in hs] for p, hs in self.heads.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MonitorState:
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"not a {STATE_FORMAT} file")
        return cls(
            chain_id=int(data["chainId"]),
            anchor=str(data["anchor"]),
            block=int(data["block"]),
            block_hash=bytes.fromhex(str(data["blockHash"]).removeprefix("0x")),
            heads={p: [SeenHead.from_json(h) for h in hs] for p, hs in dict(data["heads"]).items()},
        )


@dataclass(frozen=True)
class Line:
    finding: bool  # a finding, or a note of what was seen
    text: str


def load_state(folder: Path, coalition: Coalition) -> MonitorState:
    path = folder / STATE_FILE
    if not path.exists():
        return MonitorState(coalition.chain.chain_id, coalition.anchor.address)
    try:
        return MonitorState.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(
            f"--state: {path} is not a monitor's state ({type(exc).__name__}: {exc})"
        ) from None


def save_state(folder: Path, state: MonitorState) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / STATE_FILE
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=1) + "\n")
    tmp.replace(path)  # a crash leaves the old state or the new one, never half of one


def poll(coalition: Coalition, state: MonitorState, until_block: int | None = None) -> list[Line]:
    """One pass: check what was seen against the chain, then take in the new heads (up to `until_block`);
    `state` is updated in place. The lines say what was seen and found."""
    lines: list[Line] = []

    def finding(text: str) -> None:
        lines.append(Line(True, text))

    anchor = coalition.anchor
    if state.chain_id != coalition.chain.chain_id or state.anchor.lower() != anchor.address.lower():
        finding(
            f"this is chain id {coalition.chain.chain_id} with InteractionAnchor {anchor.address}; the"
            f" monitor watched chain id {state.chain_id} with InteractionAnchor {state.anchor}: another"
            " chain or deployment"
        )
        return lines
    latest = coalition.block_number()
    if state.block >= 0:
        now = coalition.block_hash(state.block)
        if now is None:
            finding(
                f"the chain is at block {latest}, behind block {state.block} the monitor already read:"
                " the chain was rewound"
            )
        elif now != state.block_hash:
            finding(
                f"block {state.block} is now 0x{now.hex()}, the monitor read 0x{state.block_hash.hex()}:"
                " the chain's history was rewritten"
            )
    for partner, kept in state.heads.items():
        for head in kept:
            try:
                info = anchor.batch(head.batch_id)
            except LedgerError:
                info = None
            if info is None or (info.partner.lower(), info.size, bytes(info.root)) != (
                partner.lower(),
                head.size,
                head.root,
            ):
                finding(
                    f"head {head.batch_id} of {partner} ({head.size:,} leaves, block {head.block}) is not on"
                    " the chain any more"
                    + ("" if info is None else f": the chain's head {head.batch_id} has {info.size:,} leaves")
                    + "; the log's history differs from what the monitor saw"
                )
    if any(line.finding for line in lines):
        return lines  # a history that differs: nothing new is taken in on top of it
    stop = latest if until_block is None else min(latest, until_block)
    if stop <= state.block:
        return lines
    for event in anchor.anchored_events(from_block=state.block + 1, to_block=stop):
        kept = state.heads.setdefault(event.partner, [])
        last = kept[-1] if kept else None
        label = (
            f"head {event.batch_id} of {event.partner} ({event.size:,} leaves, block {event.block_number})"
        )
        if last is None and event.previous_size == GENESIS_SIZE:
            # the partner's first head: it must extend the log's genesis leaf, which binds it to the
            # partner, the contract and the chain (computed here, not read)
            genesis = anchor.genesis_leaf(event.partner)
            result = _submitted_consistency(anchor, event, GENESIS_SIZE, genesis)
            if result is not None:
                finding(f"{label} does not extend the partner's genesis leaf: {result}")
            else:
                lines.append(
                    Line(False, f"{label}: the partner's first head, consistent with its genesis leaf")
                )
        elif last is None:
            lines.append(Line(False, f"{label}: the first head seen of this partner"))
        elif event.previous_size != last.size:
            finding(
                f"{label} extends a log of {event.previous_size:,} leaves;"
                f" the last head seen had {last.size:,}"
            )
        else:
            result = _submitted_consistency(anchor, event, last.size, last.root)
            if result is not None:
                finding(f"{label} is not consistent with head {last.batch_id} seen before: {result}")
            else:
                lines.append(Line(False, f"{label}: consistent with head {last.batch_id}"))
        kept.append(SeenHead(event.batch_id, event.size, event.root, event.block_number))
        del kept[:-KEPT_HEADS]
    seen = coalition.event_counts(state.block + 1, stop)
    seen.pop("BatchAnchored", None)  # each head has its own line above
    if seen:
        lines.append(
            Line(
                False,
                f"blocks {state.block + 1}..{stop}: "
                + ", ".join(f"{count:,} {name}" for name, count in sorted(seen.items())),
            )
        )
    state.block = stop
    state.block_hash = coalition.block_hash(stop) or b""
    return lines


def _submitted_consistency(anchor: AnchorClient, event: AnchorEvent, size: int, root: bytes) -> str | None:
    """Why the consistency proof the event's transaction submitted for its head (`anchor` or one head of
    an `anchorMany`) does not take the log from (`size`, `root`) to the event's head; None if it does."""
    submitted = anchor.anchored_call(event.tx_hash, event.root)
    if submitted is None or submitted[1] != event.size:
        return "its transaction submitted no such head"
    result = verify_consistency(size, event.size, root, event.root, submitted[2])
    return None if result.ok else str(result)


def watch(
    coalition: Coalition,
    folder: Path,
    on_line: Callable[[Line], None],
    *,
    once: bool = False,
    until_block: int | None = None,
    interval: float = 2.0,
) -> int:
    """Poll until stopped (`once`: one poll; `until_block`: until the state reaches that block), saving
    the state after each poll; the number of findings."""
    state = load_state(folder, coalition)
    findings = 0
    while True:
        lines = poll(coalition, state, until_block)
        for line in lines:
            on_line(line)
        found = sum(line.finding for line in lines)
        findings += found
        if found:
            return findings  # the state is never moved onto a history that differs from it
        save_state(folder, state)
        if once or (until_block is not None and state.block >= until_block):
            return findings
        time.sleep(interval)
