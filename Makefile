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

test: lint
	.venv/bin/pytest -n 2

bench: setup
	.venv/bin/python benchmarks/ledger_gas.py
