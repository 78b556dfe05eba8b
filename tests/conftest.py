"""Shared fixtures: one deployment per backend per test session, and a snapshot around every test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.anvil import free_port, start_anvil
from ledger.backends import Backend, EthTesterBackend, RpcBackend
from ledger.coalition import Coalition
from ledger.errors import BackendError

# the SQLite/PostgreSQL fixtures (db_url, engine, postgres_server, ...) and the trained home (trained_home,
# forked) serve every test folder
pytest_plugins = ["tests.fixtures.databases", "tests.fixtures.trained"]

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


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup` as `make test` runs it: the tests of an `xdist_group` on one worker, and every
    other test with the rest of its file. pytest-xdist's own loadgroup spreads an ungrouped module's tests
    over both workers, and each then builds that module's fixtures (a synthetic import, a CLI home, an
    API) a second time; its loadfile cannot group modules that share a session fixture (the trained
    home). Work units go out largest first (loadscope's order), so the two workers finish together."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileOrGroup(LoadScopeScheduling):  # type: ignore[misc]  # xdist ships no types
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.rfind("@") > nodeid.rfind("]"):  # loadgroup's marking: "<test id>@<group>"
                return nodeid.rsplit("@", 1)[-1]
            return nodeid.split("::", 1)[0]

    return FileOrGroup(config, log)


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
