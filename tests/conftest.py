"""Shared fixtures: one deployment per backend per test session, and a snapshot around every test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.anvil import free_port, start_anvil
from ledger.backends import Backend, EthTesterBackend, RpcBackend
from ledger.coalition import Coalition
from ledger.errors import BackendError

# the SQLite/PostgreSQL fixtures (db_url, engine, postgres_server, ...) serve every test folder
pytest_plugins = ["tests.fixtures.databases"]

BACKENDS = ["eth-tester", "anvil"]
BROWSER_TESTS = Path(__file__).parent / "browser"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """tests/browser runs only when named (`pytest tests/browser`, as `make test` does in a process of
    its own): Playwright's sync API and pytest-asyncio clash in one process."""
    if collection_path != BROWSER_TESTS:
        return None
    here = config.invocation_params.dir
    named = (Path(here, arg.split("::")[0]).resolve() for arg in config.args)
    return not any(path == BROWSER_TESTS or BROWSER_TESTS in path.parents for path in named)


@pytest.fixture(scope="session")
def anvil_url() -> Iterator[str]:
    try:
        port = free_port()
        process = start_anvil(port)
    except BackendError as exc:
        pytest.skip(f"anvil is not available: {exc}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture(scope="session", params=BACKENDS)
def session_coalition(request: pytest.FixtureRequest) -> Coalition:
    backend: Backend
    if request.param == "anvil":
        backend = RpcBackend(request.getfixturevalue("anvil_url"))
    else:
        backend = EthTesterBackend()
    accounts = backend.accounts
    return Coalition.deploy(backend, founders=accounts[:3], deployer=accounts[0])


@pytest.fixture
def coalition(session_coalition: Coalition) -> Iterator[Coalition]:
    """The session's deployment (three founding partners: accounts 0, 1, 2), rolled back after the test."""
    backend = session_coalition.chain.backend
    snapshot = backend.snapshot()
    try:
        yield session_coalition
    finally:
        backend.revert(snapshot)


@pytest.fixture
def tester_coalition() -> Coalition:
    """A fresh in-process deployment, for tests that need only one backend."""
    backend = EthTesterBackend()
    return Coalition.deploy(backend, founders=backend.accounts[:3])
