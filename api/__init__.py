"""The outside of ledgercrm: the CLI (and later the HTTP API) and the use cases that compose the packages."""
