"""Use cases: the only place where the ledger, the off-chain store and (later) the models meet."""
