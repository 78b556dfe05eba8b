"""The outside of ledgercrm: the CLI (and later the HTTP API) and the use cases that compose the packages."""

from ledger.deferred import defer_bls

# before anything of api imports eth_account (which imports py_ecc's BLS curves): see ledger.deferred
defer_bls()
