"""Off-chain: the encrypted store, the vault and the key store."""
