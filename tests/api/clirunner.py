"""Driving the `ledgercrm` CLI in tests, one invocation per command, as a user would."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from api.cli import app

runner = CliRunner()


def run(home: Path, *args: str, code: int = 0, stdin: str | None = None) -> str:
    """`ledgercrm --home HOME ARGS...`; its output, after asserting its exit code."""
    result = runner.invoke(app, ["--home", str(home), *args], input=stdin)
    assert result.exit_code == code, result.output
    return result.output


def new_home(path: Path, rpc_url: str) -> Path:
    """A home initialised on the node at `rpc_url`."""
    run(path, "init", "--chain", rpc_url)
    return path
