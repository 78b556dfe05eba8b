"""The outside of ledgercrm: the CLI (and later the HTTP API) and the use cases that compose the packages."""

from ledger.deferred import defer_aiohttp, defer_bls

# before anything of api imports eth_account (which imports py_ecc's BLS curves) or web3 (which imports
# aiohttp): see ledger.deferred
defer_bls()
defer_aiohttp()
