"""Repositories: every query of the store, one module per noun. Each function takes the unit of work
(`Session`) it runs in; the caller decides where a transaction begins and ends."""
