"""The Python side of the chain: compiling, backends, deployments, Merkle trees, typed clients.

The names below are imported on first use (PEP 562), so that `ledger.merkle` or `ledger.errors` alone
does not import web3; and py_ecc's BLS curves wait until something uses them (`ledger.deferred`)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ledger.deferred import defer_aiohttp, defer_bls

defer_bls()
defer_aiohttp()

if TYPE_CHECKING:
    from ledger.backends import Backend as Backend
    from ledger.backends import EthTesterBackend as EthTesterBackend
    from ledger.backends import RpcBackend as RpcBackend
    from ledger.chain import Chain as Chain
    from ledger.chain import TxResult as TxResult
    from ledger.coalition import Coalition as Coalition
    from ledger.deployment import Deployment as Deployment
    from ledger.deployment import trusted_deployment as trusted_deployment
    from ledger.errors import ContractRevert as ContractRevert
    from ledger.errors import LedgerError as LedgerError

_EXPORTS = {
    "Backend": "ledger.backends",
    "Chain": "ledger.chain",
    "Coalition": "ledger.coalition",
    "ContractRevert": "ledger.errors",
    "Deployment": "ledger.deployment",
    "EthTesterBackend": "ledger.backends",
    "LedgerError": "ledger.errors",
    "RpcBackend": "ledger.backends",
    "TxResult": "ledger.chain",
    "trusted_deployment": "ledger.deployment",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ledger' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
