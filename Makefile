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
# `--dist loadgroup` with the scheduler of tests/conftest.py: each file on one worker (its module fixtures
# built once, not on both), the modules that fork the trained home together (it is trained once).
test: lint
	.venv/bin/pytest -n 2 --dist loadgroup
	.venv/bin/pytest tests/browser

bench: setup
	.venv/bin/python benchmarks/ledger_gas.py
