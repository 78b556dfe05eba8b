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
# `--dist loadgroup` is the scheduler of tests/conftest.py: each file on one worker, the trained home's modules
# together, longest first (503 s against 740 s for pytest-xdist's default distribution on one machine).
test: lint
	.venv/bin/pytest -n 2 --dist loadgroup
	.venv/bin/pytest tests/browser

bench: setup
	.venv/bin/python benchmarks/ledger_gas.py
