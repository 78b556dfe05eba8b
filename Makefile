# The two README commands: `make demo` and `make test`. Each installs what it needs first.
.PHONY: setup demo test lint bench

setup:
	./scripts/setup.sh

demo: setup
	.venv/bin/ledgercrm demo

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

# The browser tests run in a pytest process of their own, after the rest: Playwright's sync API leaves
# an event loop behind that breaks pytest-asyncio tests run later in the same process.
# `pytest -n 2 --dist loadgroup` (the scheduler of tests/conftest.py: each file on one worker, the trained
# home's modules together, longest first) ran the suite in 451 s, but the new order showed 8 failures in
# tests/offchain/test_store.py and tests/http (a closed captured stream, 500s of jobs) still to be found,
# so `make test` keeps pytest-xdist's default distribution until they are.
test: lint
	.venv/bin/pytest -n 2
	.venv/bin/pytest tests/browser

bench: setup
	.venv/bin/python benchmarks/ledger_gas.py
