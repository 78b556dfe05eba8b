"""The Python side of the chain: compiling, backends, deployments, Merkle trees, typed clients."""

from ledger.backends import Backend, EthTesterBackend, RpcBackend
from ledger.chain import Chain, TxResult
from ledger.coalition import Coalition
from ledger.deployment import Deployment, trusted_deployment
from ledger.errors import ContractRevert, LedgerError

__all__ = [
    "Backend",
    "Chain",
    "Coalition",
    "ContractRevert",
    "Deployment",
    "EthTesterBackend",
    "LedgerError",
    "RpcBackend",
    "TxResult",
    "trusted_deployment",
]
