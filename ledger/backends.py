"""Where the chain runs: in this process (eth-tester on py-evm) or behind any JSON-RPC endpoint.

Both implementations give the same things to the rest of the ledger layer: a `Web3`, funded accounts
whose keys we hold (transactions are always signed locally and sent raw, so the code path is the same
on every chain), snapshots for tests, and a way to get the raw revert data out of a failed call.
"""

from __future__ import annotations

import ast
import re
import threading
from collections.abc import Mapping, Sequence
from functools import cache, cached_property
from typing import Any, NoReturn, Protocol, runtime_checkable

import requests
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3._utils.error_formatters_utils import raise_contract_logic_error_on_revert
from web3._utils.fee_utils import fee_history_priority_fee
from web3.exceptions import ContractLogicError
from web3.types import RPCEndpoint, RPCResponse

from ledger.errors import BackendError
from ledger.txs import CallRequest, TxContext, read_before_signing
from ledger.txs import Log as Log
from ledger.txs import Receipt as Receipt
from ledger.txs import receipt_of as _receipt

# anvil's (and Hardhat's) well-known development mnemonic: funded accounts on every fresh devnet.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
# How many of the development mnemonic's accounts (and of eth-tester's keys 1, 2, ...) count as public
# test keys: anvil and Hardhat fund the first 10 by default, 20 covers every tool's default and more.
PUBLIC_TEST_KEYS = 20
# Nodes that fund the development mnemonic: a local development chain, whose keys are public.
DEVELOPMENT_CLIENTS = ("anvil", "hardhat", "ganache", "ethereumtester")
# eth-tester renders revert data as a Python bytes literal; web3's provider prefixes "execution reverted: "
_TESTER_REVERT = re.compile(r"(?:execution reverted: )?(b(['\"]).*\2)\Z", re.DOTALL)
_ERROR_STRING = function_signature_to_4byte_selector("Error(string)")


@runtime_checkable
class Backend(Protocol):
    name: str
    w3: Web3
    # A fixed legacy gas price (e.g. 0 on a free-gas Besu network); None lets web3 price EIP-1559 fees.
    gas_price: int | None

    @property
    def accounts(self) -> Sequence[LocalAccount]: ...

    @property
    def rpc_url(self) -> str | None: ...

    def snapshot(self) -> str: ...

    def revert(self, snapshot_id: str) -> None: ...

    def time_travel(self, timestamp: int) -> None:
        """Mine a block at unix time `timestamp` (tests of expiry and history)."""
        ...

    def revert_data(self, exc: Exception) -> bytes | None:
        """The revert data carried by `exc`, or None when `exc` is not a revert."""
        ...

    def receipt(self, tx_hash: str) -> Receipt | None:
        """The receipt of a mined transaction; None while it is not mined (or unknown)."""
        ...

    def tx_context(self, sender: str, *, fees: bool, simulate: CallRequest | None = None) -> TxContext:
        """`sender`'s pending nonce and the latest block's gas limit and base fee, with the node's priority
        fee if `fees`. With `simulate`, that call runs too, on the pending state (after the sender's
        transactions sent and not yet mined), and a revert raises what `revert_data` reads. Everything
        a bounded `Chain.prepare` needs from the node, in one round trip where the node allows."""
        ...

    def close(self) -> None: ...


@cache
def public_test_addresses() -> frozenset[str]:
    """The addresses of the well-known test keys: the development mnemonic's first accounts (anvil's,
    Hardhat's) and eth-tester's keys 1, 2, ... Anyone holds their private keys: they must never sign
    anything on a chain that is not a throwaway development chain."""
    Account.enable_unaudited_hdwallet_features()
    mnemonic = [
        Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").address
        for i in range(PUBLIC_TEST_KEYS)
    ]
    tester = [Account.from_key(i.to_bytes(32, "big")).address for i in range(1, PUBLIC_TEST_KEYS + 1)]
    return frozenset(to_checksum_address(a) for a in mnemonic + tester)


def is_development_node(backend: Backend) -> bool:
    """Whether `backend` is a throwaway development chain (in process, or a node that says it is anvil,
    Hardhat or Ganache), where the public test keys are funded and fine to use."""
    if backend.rpc_url is None:
        return True
    try:
        version = str(backend.w3.client_version).lower()
    except Exception as exc:  # a node that does not answer web3_clientVersion is no known dev node
        if isinstance(exc, requests.RequestException):
            reason = unreachable(exc) or exc
            raise BackendError(f"no EVM node answers at {backend.rpc_url}: {reason}") from exc
        return False
    return version.startswith(DEVELOPMENT_CLIENTS)


class EthTesterBackend:
    """An in-process chain (eth-tester, py-evm) that lives as long as this object."""

    name = "eth-tester"
    gas_price: int | None = None

    def __init__(self, accounts: int = 10, *, gas_limit: int | None = None) -> None:
        """`gas_limit`: the chain's block gas limit; py-evm's (30,029,122, mainnet's at London) unless
        given. Batches follow it (`Chain.batch_gas_budget`); the in-process chain is for tests, whose
        batches are small, and py-evm runs a full batch for seconds."""
        from eth_tester import EthereumTester, PyEVMBackend
        from eth_tester.backends.pyevm.main import get_default_account_keys

        genesis = (
            None if gas_limit is None else PyEVMBackend.generate_genesis_params({"gas_limit": gas_limit})
        )
        self._tester = EthereumTester(PyEVMBackend(genesis))
        # py-evm is not thread-safe, and a server reads beside its one writer (each request on a thread of
        # its own): every call into the chain, through web3 or directly, takes this lock, as a node's own
        # RPC loop would serialise them (unlocked, a read during a write met "dictionary changed size").
        self._lock = threading.RLock()
        self.w3 = Web3(_LockedTesterProvider(self._tester, self._lock))
        keys = get_default_account_keys(quantity=accounts)
        self.accounts: Sequence[LocalAccount] = [Account.from_key(k.to_bytes()) for k in keys]

    @property
    def rpc_url(self) -> str | None:
        return None

    def snapshot(self) -> str:
        with self._lock:
            return str(self._tester.take_snapshot())

    def revert(self, snapshot_id: str) -> None:
        with self._lock:
            self._tester.revert_to_snapshot(int(snapshot_id))

    def time_travel(self, timestamp: int) -> None:
        with self._lock:
            self._tester.time_travel(timestamp)

    def revert_data(self, exc: Exception) -> bytes | None:
        from eth_tester.exceptions import TransactionFailed

        if not isinstance(exc, TransactionFailed) or not exc.args:
            return None
        message = exc.args[0]
        if isinstance(message, bytes):
            return message
        # web3's eth-tester provider re-raises reverts with the data rendered into the message as a
        # Python bytes literal; `literal_eval` reads back exactly those bytes and nothing else.
        match = _TESTER_REVERT.match(str(message))
        if match:
            data = ast.literal_eval(match.group(1))
            return data if isinstance(data, bytes) else None
        reason = str(message).removeprefix("execution reverted: ").removeprefix("execution reverted")
        return _ERROR_STRING + abi_encode(["string"], [reason]) if reason else b""

    def receipt(self, tx_hash: str) -> Receipt | None:
        from eth_tester.exceptions import TransactionNotFound

        try:
            with self._lock:
                raw = self._tester.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None
        # eth-tester answers in its own dialect: snake_case keys, ints as ints, bytes as 0x-hex
        return _receipt(raw, "transaction_hash", "block_number", "gas_used", "log_index", "transaction_index")

    def tx_context(self, sender: str, *, fees: bool, simulate: CallRequest | None = None) -> TxContext:
        with self._lock:
            if simulate is not None:
                # eth-tester itself: web3's provider and formatters around it cost a few ms for a batch's
                # calldata. Its TransactionFailed carries the revert data as `revert_data` expects.
                self._tester.call(
                    {
                        "from": simulate.sender,
                        "to": simulate.to,
                        "data": "0x" + simulate.data.hex(),
                        "gas": simulate.gas,
                    },
                    "latest",
                )
            block = self._tester.get_block_by_number("latest")
            base_fee = block.get("base_fee_per_gas")
            return TxContext(
                nonce=self._tester.get_nonce(sender, "pending"),
                gas_limit=int(block["gas_limit"]),
                base_fee=None if base_fee is None else int(base_fee),
                # web3's provider answers this itself (a constant), not eth-tester: ask it
                priority_fee=int(self.w3.eth.max_priority_fee) if fees else None,
            )

    def close(self) -> None:
        pass


class _LockedTesterProvider(EthereumTesterProvider):
    """web3's eth-tester provider, each request under the backend's lock (see EthTesterBackend)."""

    def __init__(self, tester: Any, lock: threading.RLock) -> None:
        super().__init__(tester)
        self._lock = lock

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._lock:
            return super().make_request(method, params)


class RpcBackend:
    """Any EVM JSON-RPC node: anvil, Besu, Geth. `keys` sign transactions; by default the
    development mnemonic's accounts, which anvil funds."""

    name = "rpc"

    def __init__(
        self,
        url: str,
        keys: Sequence[str] | None = None,
        *,
        accounts: int = 10,
        timeout: float = 30.0,
        gas_price: int | None = None,
    ) -> None:
        self._url = url
        self._timeout = timeout
        self.gas_price = gas_price
        self._provider = self._new_provider()
        self.w3 = Web3(self._provider)
        self._keys = None if keys is None else list(keys)
        self._count = accounts
        try:
            self.chain_id = self.w3.eth.chain_id
        except Exception as exc:  # requests' connection errors and friends: all mean "no node there"
            raise BackendError(f"no EVM node answers at {url}: {unreachable(exc) or exc}") from exc

    def _new_provider(self) -> HTTPProvider:
        # a node's chain id never changes: cached, web3's validation asks for it before every call
        return HTTPProvider(
            self._url,
            request_kwargs={"timeout": self._timeout},
            cache_allowed_requests=True,
            cacheable_requests={RPCEndpoint("eth_chainId")},
        )

    def forked(self) -> None:
        """In a process forked from this one: HTTP connections of its own to the node from now on (the
        pooled ones, copies of the parent's sockets, are left to the parent)."""
        self._provider = self._new_provider()
        self.w3.provider = self._provider

    @cached_property
    def accounts(self) -> Sequence[LocalAccount]:
        """The signing accounts, derived on first use: deriving the mnemonic's ten costs ~0.03 CPU s (PBKDF2
        and BIP-32), which a command that only reads the chain (every home is opened this way) never
        needs."""
        if self._keys is not None:
            return [Account.from_key(k) for k in self._keys]
        Account.enable_unaudited_hdwallet_features()
        return [
            Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
            for i in range(self._count)
        ]

    @property
    def rpc_url(self) -> str | None:
        return self._url

    def snapshot(self) -> str:
        return str(self._rpc("evm_snapshot", []))

    def revert(self, snapshot_id: str) -> None:
        if not self._rpc("evm_revert", [snapshot_id]):
            raise BackendError(f"the node refused to revert to snapshot {snapshot_id}")

    def time_travel(self, timestamp: int) -> None:
        self._rpc("evm_mine", [timestamp])

    def revert_data(self, exc: Exception) -> bytes | None:
        if not isinstance(exc, ContractLogicError):
            return None
        data = exc.data
        if isinstance(data, str) and data.startswith("0x"):
            return bytes.fromhex(data[2:])
        return b""

    def receipt(self, tx_hash: str) -> Receipt | None:
        raw = self._rpc("eth_getTransactionReceipt", [tx_hash])
        if raw is None:
            return None
        assert isinstance(raw, Mapping)
        return _receipt(raw, "transactionHash", "blockNumber", "gasUsed", "logIndex", "transactionIndex")

    def blocks(self, first: int, count: int) -> list[Mapping[str, Any] | None]:
        """The headers of blocks `first`, `first + 1`, ... (`count` of them, their transactions as
        hashes) in one round trip, as the node's JSON; None for a block not mined yet."""
        numbers = range(first, first + count)
        answers = self._batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        return [self._result("eth_getBlockByNumber", answer) for answer in answers]

    def tx_context(self, sender: str, *, fees: bool, simulate: CallRequest | None = None) -> TxContext:
        def reverted(answer: Any) -> NoReturn:
            raise_contract_logic_error_on_revert(answer)  # a revert: web3's ContractLogicError
            raise BackendError(f"eth_call failed: {answer['error']}")

        return read_before_signing(
            self._batch,
            self._result,
            sender,
            fees=(lambda: fee_history_priority_fee(self.w3.eth)) if fees else None,
            call=simulate,
            reverted=reverted,
        )

    def _batch(self, requests: list[tuple[str, list[object]]]) -> list[RPCResponse]:
        calls = [(RPCEndpoint(method), params) for method, params in requests]
        answer = self._provider.make_batch_request(calls)
        if isinstance(answer, list) and len(answer) == len(calls):
            return answer
        # a node that refuses batches answers with a single error: ask one at a time
        return [self._provider.make_request(method, params) for method, params in calls]

    def eth_call_many(self, to: str, datas: Sequence[str], chunk: int = 1000) -> list[bytes]:
        """`eth_call` of each calldata against `to` at the latest block, in JSON-RPC batches."""
        found: list[bytes] = []
        for start in range(0, len(datas), chunk):
            requests = [
                (RPCEndpoint("eth_call"), [{"to": to, "data": data}, "latest"])
                for data in datas[start : start + chunk]
            ]
            responses = self._provider.make_batch_request(requests)
            if isinstance(responses, dict):  # the node refused the whole batch
                raise BackendError(f"eth_call batch failed: {responses.get('error')}")
            for response in sorted(responses, key=lambda r: int(str(r["id"]))):
                found.append(bytes.fromhex(str(self._result("eth_call", response)).removeprefix("0x")))
        return found

    def get_logs_json(self, filters: dict[str, Any]) -> object:
        """`eth_getLogs` as the node's JSON (hex strings), through no formatter."""
        params = {k: hex(v) if isinstance(v, int) else v for k, v in filters.items()}  # quantities are hex
        return self._rpc("eth_getLogs", [params])

    def _rpc(self, method: str, params: list[object]) -> object:
        return self._result(method, self._provider.make_request(RPCEndpoint(method), params))

    @staticmethod
    def _result(method: str, response: RPCResponse) -> Any:
        if "error" in response:
            raise BackendError(f"{method} failed: {response['error']}")
        return response["result"]

    def close(self) -> None:
        pass


def unreachable(exc: BaseException) -> str | None:
    """Why a node did not answer, in a few words, when `exc` is requests' word that it did not (a
    connection that failed, an answer that did not come in time); None for any other failure. Its own
    message nests urllib3's reprs ("HTTPConnectionPool(host=...): Max retries exceeded with url: /
    (Caused by NewConnectionError(...))"); the operating system's reason, at the end of the chain of
    causes, is what a person reads."""
    if isinstance(exc, requests.exceptions.Timeout):  # first: ConnectTimeout is a ConnectionError too
        return "no answer in time"
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return None
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()  # "connection refused", "name or service not known"
        cause = cause.__cause__ or cause.__context__
    return "the connection failed"
