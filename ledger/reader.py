"""Reading the chain over plain JSON-RPC, without web3: what `decision verify` asks of a node.

`decision verify` is one process per decision, and importing web3 and eth_account cost it about 0.8 of
its 2.3 CPU s (benchmarks/README.md, `startup.py`), for a handful of reads. This reader makes those
reads against any JSON-RPC node (anvil, Besu, Geth): `eth_call` of views whose answers are words or
arrays of words, `eth_getLogs` of events whose fields are words, one block header, the contracts' code;
it encodes and decodes the words by hand and sends the requests with urllib. Its answers are the web3
clients' answers, the same `ledger.records` values (tests/ledger/test_reader.py compares them on the
session chain), so the use cases take either.

It trusts a deployment only as `ledger.deployment.verify_deployment` does: the chain id, each
contract's code (its hash and this build's code, immutables aside), and the five addresses the
Consortium records (the trust anchor); anything else is `DeploymentMismatch`. A node that does not
answer is `BackendError`; a revert is the named `ContractRevert` of `ledger.errors`, decoded by
`ledger.reverts` (which imports eth_abi, on that path only).

Keccak comes from pysha3 (or pycryptodome), eth-hash's backends, without eth-hash's import."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

try:  # pysha3's C keccak imports in 3 ms, pycryptodome's (through cffi) in 45: eth-tester[py-evm] brings it
    from sha3 import keccak_256 as _keccak_256  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - where eth-hash's pysha3 extra is not installed
    from Crypto.Hash import keccak as _pycryptodome

    def _keccak_256(data: bytes) -> Any:
        return _pycryptodome.new(data=data, digest_bits=256)


from ledger.compiler import CONTRACT_NAMES
from ledger.errors import BackendError, ContractRevert, DeploymentMismatch
from ledger.logwindows import BlockWindows
from ledger.records import BatchInfo, Erasure, ModelInfo, RecordedDecision, recorded_decision

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress

    from ledger.compiler import Build
    from ledger.reverts import RevertDecoder

WORD = 32
GENESIS_TAG = b"ledgercrm-log-v1"  # ledger.clients.anchor.GENESIS_TAG (the contract's genesisLeaf tag)
HEADS_PAGE = 1000  # InteractionAnchor.headsOf's page (ledger.clients.anchor.HEADS_PAGE)
RECORDED_CONTRACTS = CONTRACT_NAMES[1:]  # in Consortium.coalitionContracts' order
BATCH_CALLS = 500  # eth_calls per JSON-RPC batch


def keccak(data: bytes) -> bytes:
    return bytes(_keccak_256(data).digest())


def checksum_address(value: str | bytes) -> ChecksumAddress:
    """EIP-55: the address with the case of its hex letters set by the keccak of its lower-case hex."""
    text = value[-20:].hex() if isinstance(value, bytes) else value.lower().removeprefix("0x")
    if len(text) != 40:
        raise ValueError(f"not an address: {value!r}")
    int(text, 16)  # ValueError if it is not hex
    digest = keccak(text.encode()).hex()
    cased = "".join(c.upper() if int(d, 16) >= 8 else c for c, d in zip(text, digest[:40], strict=True))
    return cast("ChecksumAddress", "0x" + cased)


def selector(signature: str) -> bytes:
    return keccak(signature.encode())[:4]


def topic(signature: str) -> str:
    return "0x" + keccak(signature.encode()).hex()


def word(value: int | bytes | str) -> bytes:
    """One ABI word: an unsigned integer, a bool, a bytes32, or an address (hex)."""
    if isinstance(value, bool | int):
        return int(value).to_bytes(WORD, "big")
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x")).rjust(WORD, b"\x00")
    if len(value) != WORD:
        raise ValueError(f"expected 32 bytes, got {len(value)}")
    return value


def words(data: bytes) -> list[bytes]:
    return [data[i : i + WORD] for i in range(0, len(data), WORD)]


def uint(data: bytes) -> int:
    return int.from_bytes(data, "big")


def dynamic_array(data: bytes, head: int) -> list[bytes]:
    """The words of the dynamic array whose offset is the `head`-th word of `data` (ABI encoding)."""
    start = uint(data[head * WORD : (head + 1) * WORD])
    count = uint(data[start : start + WORD])
    return words(data[start + WORD : start + WORD + count * WORD])


def purpose_id(name: str) -> bytes:
    """keccak256 of a purpose's name (ledger.clients.consent.purpose_id, without its vocabulary check)."""
    return keccak(name.encode())


@dataclass(frozen=True)
class Log:
    topics: list[bytes]
    data: bytes
    block_number: int


class JsonRpc:
    """JSON-RPC over HTTP with urllib: one request or a batch, each answer checked."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url
        self.timeout = timeout
        self._ids = 0
        self.decoder: RevertNames | None = None  # set by ReadCoalition: its build's errors

    def request(self, method: str, params: Sequence[Any]) -> Any:
        return self._answer(self._post(self._message(method, params)))

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several requests in one round trip; the answers in the requests' order."""
        return [self._answer(answer) for answer in self.batch_answers(calls)]

    def batch_answers(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[dict[str, Any]]:
        """`batch`'s answers as the node gave them (an error among them not raised yet: `answer` each)."""
        if not calls:
            return []
        messages = [self._message(method, params) for method, params in calls]
        answers = self._post(messages)
        if not isinstance(answers, list):
            raise BackendError(f"the node at {self.url} answered a batch with {str(answers)[:200]}")
        by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
        try:
            return [by_id[m["id"]] for m in messages]
        except KeyError:
            raise BackendError(f"the node at {self.url} left requests of a batch unanswered") from None

    def answer(self, answer: Any) -> Any:
        """One answer's result; its error raised as `_answer` raises it (a named revert, or words)."""
        return self._answer(answer)

    def _message(self, method: str, params: Sequence[Any]) -> dict[str, Any]:
        self._ids += 1
        return {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": list(params)}

    def _post(self, body: Any) -> Any:
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise BackendError(f"the node at {self.url} answered HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            reason = exc.reason.strerror if isinstance(exc.reason, OSError) else None
            why = (reason or str(exc.reason)).lower()
            raise BackendError(f"the node at {self.url} stopped answering: {why}") from None
        except TimeoutError:
            raise BackendError(f"the node at {self.url} stopped answering: no answer in time") from None
        except (OSError, ValueError) as exc:
            raise BackendError(f"the node at {self.url} stopped answering: {type(exc).__name__}") from None

    def _answer(self, answer: Any) -> Any:
        if not isinstance(answer, dict):
            raise BackendError(f"the node at {self.url} answered {str(answer)[:200]}")
        error = answer.get("error")
        if error is None:
            return answer.get("result")
        data = error.get("data") if isinstance(error, dict) else None
        if isinstance(data, dict):  # some nodes nest it: {"data": {"data": "0x..."}}
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x"):
            raise self.revert(bytes.fromhex(data[2:]))
        message = error.get("message") if isinstance(error, dict) else error
        if isinstance(message, str) and "revert" in message.lower():
            raise ContractRevert(message)
        raise BackendError(f"the node at {self.url} refused a request: {message}")

    def revert(self, data: bytes) -> ContractRevert:
        if self.decoder is None:
            return ContractRevert(f"reverted with data 0x{data.hex()}" if data else "reverted")
        return self.decoder.decode(data)


class ChainReader:
    """The node's plain answers: chain id, code, calls and logs."""

    def __init__(self, rpc: JsonRpc) -> None:
        self.rpc = rpc

    def chain_id(self) -> int:
        return int(self.rpc.request("eth_chainId", []), 16)

    def block_number(self) -> int:
        return int(self.rpc.request("eth_blockNumber", []), 16)

    def block_timestamp(self, number: int) -> int:
        header = self.rpc.request("eth_getBlockByNumber", [hex(number), False])
        if header is None:
            raise BackendError(f"block {number}: the node has no such block")
        return int(header["timestamp"], 16)

    def call(self, to: str, data: bytes, block: int | str = "latest") -> bytes:
        at = hex(block) if isinstance(block, int) else block
        return _hex(self.rpc.request("eth_call", [{"to": to, "data": "0x" + data.hex()}, at]))

    def call_many(self, to: str, datas: Sequence[bytes]) -> list[bytes]:
        found: list[bytes] = []
        for start in range(0, len(datas), BATCH_CALLS):
            chunk = datas[start : start + BATCH_CALLS]
            calls = [("eth_call", [{"to": to, "data": "0x" + d.hex()}, "latest"]) for d in chunk]
            found += [_hex(answer) for answer in self.rpc.batch(calls)]
        return found

    def logs(self, address: str, topics: Sequence[str | None], from_block: int = 0) -> list[Log]:
        """The logs of `address` matching `topics` from block `from_block` to the latest, oldest first: a
        window of blocks at a time (`ledger.logwindows`), none wider than the node takes. The windows
        start as wide as it takes: these filters name an event, so their answers are small."""
        windows = BlockWindows(from_block, self.block_number(), wide=True)
        found: list[Log] = []
        for first, last in windows:
            entries = self.rpc.request(
                "eth_getLogs",
                [{"address": address, "fromBlock": hex(first), "toBlock": hex(last), "topics": list(topics)}],
            )
            entries = entries or []
            try:
                found += [
                    Log([_hex(t) for t in e["topics"]], _hex(e["data"]), int(e["blockNumber"], 16))
                    for e in entries
                    if not e.get("removed")
                ]
            except (KeyError, TypeError, ValueError, AttributeError):
                # a node that answers logs without their fields is a node this reader cannot trust
                answer = str(entries)[:100]
                raise BackendError(f"the node answered eth_getLogs with a malformed log: {answer}") from None
            windows.answered(len(entries))
        return found


def _hex(value: Any) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise BackendError(f"the node answered {str(value)[:100]!r} where hex was due")
    return bytes.fromhex(value[2:])


def _address_topic(address: str) -> str:
    return "0x" + bytes(12).hex() + checksum_address(address)[2:].lower()


class DecisionLogReader:
    """DecisionLog's reads (ledger.clients.decisions.DecisionLogClient's, same answers)."""

    def __init__(self, chain: ChainReader, address: str) -> None:
        self.chain, self.address = chain, address

    def model(self, model_id: int) -> ModelInfo:
        found = words(self.chain.call(self.address, selector("model(uint256)") + word(model_id)))
        if len(found) != 5:
            raise BackendError(f"DecisionLog.model answered {len(found)} words, not 5")
        model_hash, card_hash, training_root, registrant, block = found
        return ModelInfo(
            model_id, model_hash, card_hash, training_root, checksum_address(registrant), uint(block)
        )

    def decisions(
        self,
        member: bytes | None = None,
        partner: str | None = None,
        decision_id: int | None = None,
        from_block: int = 0,
    ) -> list[RecordedDecision]:
        topics = [
            topic("DecisionRecorded(uint256,bytes32,address,uint256,bytes32,uint32,bytes32,bytes32,bytes32)"),
            None if decision_id is None else "0x" + word(decision_id).hex(),
            None if member is None else "0x" + word(member).hex(),
            None if partner is None else _address_topic(partner),
        ]
        found = [
            recorded_decision(log.topics, log.data, log.block_number, checksum_address)
            for log in self.chain.logs(self.address, topics, from_block)
        ]
        return sorted(found, key=lambda d: d.decision_id)

    def decision(self, decision_id: int) -> RecordedDecision | None:
        found = self.decisions(decision_id=decision_id)
        return found[0] if found else None


class ConsentReader:
    """ConsentRegistry's reads (ledger.clients.consent.ConsentClient's)."""

    def __init__(self, chain: ChainReader, address: str) -> None:
        self.chain, self.address = chain, address

    def is_valid_at_block(self, member: bytes, controller: str, purpose: bytes, block: int) -> bool:
        """As ConsentClient.is_valid_at_block: at the end of block `block`, with its timestamp."""
        timestamp = self.chain.block_timestamp(block)
        data = selector("isValidAtBlock(bytes32,address,bytes32,uint64,uint64)") + b"".join(
            (word(member), word(checksum_address(controller)), word(purpose), word(block), word(timestamp))
        )
        return bool(uint(self.chain.call(self.address, data)))

    def are_valid(self, members: Sequence[bytes], controller: str, purpose: bytes) -> list[bool]:
        """As ConsentClient.are_valid: `isValid` of each member now, in JSON-RPC batches; an answer that is
        not one bool word (0 or 1, as eth_abi's strict decoder takes it) is the node's fault."""
        head = selector("isValid(bytes32,address,bytes32)")
        tail = word(checksum_address(controller)) + word(purpose)
        found: list[bool] = []
        for answer in self.chain.call_many(self.address, [head + word(m) + tail for m in members]):
            if len(answer) != WORD or answer[:31] != bytes(31) or answer[31] > 1:
                raise BackendError(f"ConsentRegistry.isValid answered 0x{answer.hex()[:80]}, not a bool")
            found.append(answer[31] == 1)
        return found


class AnchorReader:
    """InteractionAnchor's reads (ledger.clients.anchor.AnchorClient's)."""

    def __init__(self, chain: ChainReader, address: str, chain_id: int | None = None) -> None:
        self.chain, self.address = chain, address
        self._chain_id = chain_id  # the one the deployment was checked against, where known

    def genesis_leaf(self, partner: str) -> bytes:
        """Leaf 0 of `partner`'s log (ledger.clients.anchor.genesis_leaf: computed as the contract does)."""
        if self._chain_id is None:
            self._chain_id = self.chain.chain_id()
        data = (
            GENESIS_TAG
            + self._chain_id.to_bytes(32, "big")
            + bytes.fromhex(checksum_address(self.address)[2:])
            + bytes.fromhex(checksum_address(partner)[2:])
        )
        return hashlib.sha256(b"\x00" + data).digest()

    def heads(self, partner: str) -> list[BatchInfo]:
        address = checksum_address(partner)
        found: list[BatchInfo] = []
        while True:
            data = self.chain.call(
                self.address, selector("headsOf(address,uint256)") + word(address) + word(len(found))
            )
            ids, roots, sizes, blocks = (dynamic_array(data, i) for i in range(4))
            found += [
                BatchInfo(uint(i), r, uint(s), address, uint(b))
                for i, r, s, b in zip(ids, roots, sizes, blocks, strict=True)
            ]
            if len(ids) < HEADS_PAGE:
                return found

    def batch(self, batch_id: int) -> BatchInfo:
        root, size, partner, block = words(
            self.chain.call(self.address, selector("batch(uint256)") + word(batch_id))
        )
        return BatchInfo(batch_id, root, uint(size), checksum_address(partner), uint(block))


class MemberReader:
    """MemberRegistry's reads (ledger.clients.members.MemberRegistryClient's)."""

    def __init__(self, chain: ChainReader, address: str) -> None:
        self.chain, self.address = chain, address

    def are_erased(self, members: Sequence[bytes]) -> list[bool]:
        call = selector("memberOf(bytes32)")
        answers = self.chain.call_many(self.address, [call + word(m) for m in members])
        return [bool(uint(words(a)[2])) for a in answers]

    def erasures(self, home: str | None = None) -> list[Erasure]:
        topics = [
            topic("MemberErased(bytes32,address)"),
            None,
            None if home is None else _address_topic(home),
        ]
        return [
            Erasure(log.topics[1], checksum_address(log.topics[2]), log.block_number)
            for log in self.chain.logs(self.address, topics)
        ]

    def enrolled_by(self, home: str) -> dict[bytes, int]:
        """As MemberRegistryClient.enrolled_by: every member enrolled with `home` as its home -> the
        block of its enrolment, from the MemberEnrolled events."""
        topics = [topic("MemberEnrolled(bytes32,address,address)"), None, _address_topic(home)]
        return {log.topics[1]: log.block_number for log in self.chain.logs(self.address, topics)}


class ReadCoalition:
    """The reads of a coalition's six contracts, without web3, once the deployment is trusted: what a
    `Crm` opened for verifying holds in place of `ledger.coalition.Coalition` (which it answers like for
    these reads; it sends nothing)."""

    def __init__(self, rpc: JsonRpc, contracts: Mapping[str, str], chain_id: int | None = None) -> None:
        self.rpc = rpc
        self.chain = ChainReader(rpc)
        self.contracts = {name: checksum_address(address) for name, address in contracts.items()}
        self.decisions = DecisionLogReader(self.chain, self.contracts["DecisionLog"])
        self.consent = ConsentReader(self.chain, self.contracts["ConsentRegistry"])
        self.anchor = AnchorReader(self.chain, self.contracts["InteractionAnchor"], chain_id)
        self.members = MemberReader(self.chain, self.contracts["MemberRegistry"])

    @classmethod
    def attach(
        cls, url: str, manifest: Mapping[str, Any], build: Build, *, consortium: str | None = None
    ) -> ReadCoalition:
        """Attach to the deployment `manifest` (a home's config: `Deployment.to_json`) after the checks of
        `verify_deployment`, all in one JSON-RPC batch: the chain id, every contract's code, and the
        addresses the Consortium records."""
        rpc = JsonRpc(url)
        rpc.decoder = RevertNames(build)
        try:
            contracts = {name: checksum_address(a) for name, a in dict(manifest["contracts"]).items()}
            expected_chain = int(manifest["chainId"])
            code_hashes = dict(manifest.get("codeHashes") or {})
        except (KeyError, TypeError, ValueError) as exc:
            raise DeploymentMismatch(f"not a ledgercrm deployment manifest: {exc!r}") from None
        anchor = contracts.get("Consortium")
        if anchor is None:
            raise DeploymentMismatch("the manifest has no address for Consortium")
        try:
            pinned = None if consortium is None else checksum_address(consortium)
        except ValueError:
            raise DeploymentMismatch(f"the pinned Consortium {consortium!r} is not an address") from None
        if pinned is not None and pinned != anchor:
            raise DeploymentMismatch(
                f"the manifest's Consortium is {anchor}, not the pinned {pinned}:"
                " the Consortium is the trust anchor, so this is not the coalition you trust"
            )
        for name in CONTRACT_NAMES:
            if name not in contracts:
                raise DeploymentMismatch(f"the manifest has no address for {name}")
        calls: list[tuple[str, Sequence[Any]]] = [("eth_chainId", [])]
        calls += [("eth_getCode", [contracts[name], "latest"]) for name in CONTRACT_NAMES]
        calls.append(
            ("eth_call", [{"to": anchor, "data": "0x" + selector("coalitionContracts()").hex()}, "latest"])
        )
        try:
            chain_id, *codes, recorded_raw = rpc.batch(calls)
        except ContractRevert as exc:
            raise DeploymentMismatch(f"the Consortium at {anchor} does not answer: {exc}") from exc
        if int(chain_id, 16) != expected_chain:
            raise DeploymentMismatch(
                f"the manifest is for chain id {expected_chain}, the node is chain id {int(chain_id, 16)}"
            )
        code = dict(zip(CONTRACT_NAMES, (_hex(c) for c in codes), strict=True))
        _check_code(build, "Consortium", anchor, code["Consortium"], code_hashes.get("Consortium"))
        recorded = words(_hex(recorded_raw))
        if len(recorded) != len(RECORDED_CONTRACTS) or all(uint(a) == 0 for a in recorded):
            raise DeploymentMismatch(
                f"the Consortium at {anchor} records no coalition contracts (deployed before it was the"
                " trust anchor, or its deployment did not finish): redeploy"
            )
        for name, address in zip(RECORDED_CONTRACTS, recorded, strict=True):
            if contracts[name] != checksum_address(address):
                raise DeploymentMismatch(
                    f"{name}: the manifest says {contracts[name]}, but the Consortium at {anchor} (the trust"
                    f" anchor) records {checksum_address(address)}: {contracts[name]} is not this"
                    f" coalition's {name}"
                )
        for name in CONTRACT_NAMES:
            _check_code(build, name, contracts[name], code[name], code_hashes.get(name))
        return cls(rpc, contracts, expected_chain)

    @property
    def consortium_address(self) -> str:
        return self.contracts["Consortium"]

    @property
    def remote(self) -> bool:
        return True

    def block_number(self) -> int:
        return self.chain.block_number()


class RevertNames:
    """The build's revert decoder (ledger.reverts), made when a revert first needs it: it imports
    eth_abi (0.2 CPU s), which no read that succeeds needs."""

    def __init__(self, build: Build) -> None:
        self._build = build

    @cached_property
    def _decoder(self) -> RevertDecoder:
        from ledger.reverts import RevertDecoder

        return RevertDecoder(self._build.all_abis())

    def decode(self, data: bytes) -> ContractRevert:
        return self._decoder.decode(data)


def _check_code(build: Build, name: str, address: str, code: bytes, expected: str | None) -> None:
    """As ledger.deployment._check_code: `name`'s code from this build (immutables aside) at `address`,
    and exactly the code hash the manifest gives, where it gives one."""
    if not code:
        raise DeploymentMismatch(f"{name}: no contract at {address} (was the chain reset?)")
    found = "0x" + keccak(code).hex()
    if expected is not None and found != expected:
        raise DeploymentMismatch(f"{name} at {address}: code hash {found}, the manifest says {expected}")
    artifact = build[name]
    ours = bytes.fromhex(artifact.deployed_bytecode[2:])
    if _mask(code, artifact.immutable_ranges) != _mask(ours, artifact.immutable_ranges):
        raise DeploymentMismatch(
            f"{name} at {address} was built from other sources than contracts/ holds now: redeploy"
        )


def _mask(code: bytes, ranges: Sequence[tuple[int, int]]) -> bytes:
    masked = bytearray(code)
    for start, length in ranges:
        masked[start : start + length] = bytes(length)
    return bytes(masked)
