"""Shared fixtures: one deployment per backend per test session, and a snapshot around every test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from ledger.anvil import free_port, start_anvil
from ledger.backends import Backend, EthTesterBackend, RpcBackend
from ledger.coalition import Coalition
from ledger.errors import BackendError
from tests.fixtures.trained import TRAINED

# Property tests check what is computed, not how fast: on a shared 2-core machine at load 13 a draw of a
# few hundred words took long enough for hypothesis's too_slow health check and its deadline to fail a
# run whose every example passed.
settings.register_profile("ledgercrm", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ledgercrm")

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


# The work units that took longest in a full run with --durations (2026-12-06), longest first: the
# demo, the trained home's modules, the ML training end to end, schemathesis, the CLI's key changes.
LONGEST = (
    TRAINED,
    "tests/api/test_cli.py",
    "tests/ml/test_training.py",
    "tests/http/test_schemathesis.py",
    "tests/api/test_cli_customer_keys.py",
    "tests/http/test_decisions_and_models.py",
    "tests/api/test_cli_decisions.py",
)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup` as `make test` runs it: every test with the rest of its file on one worker, and
    the files that fork the trained home (their source names `trained_home`) together on one worker,
    which trains it once. pytest-xdist's own loadgroup does neither here: it spreads a module's tests
    over both workers (each then builds that module's fixtures: a synthetic import, a CLI home, an API),
    and it groups by a suffix it writes into each test's node id, which pytest 9 no longer lets it
    write. Work units go out largest first (loadscope's order), and each worker takes the next as it
    finishes, so the two end together."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from functools import cache

    from xdist.scheduler import LoadScopeScheduling

    root = config.rootpath

    @cache
    def forks_the_trained_home(module: str) -> bool:
        try:
            return "trained_home" in (root / module).read_text()
        except (OSError, UnicodeDecodeError):
            return False

    class FileOrGroup(LoadScopeScheduling):  # type: ignore[misc]  # xdist ships no types
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return TRAINED if forks_the_trained_home(module) else module

        def _assign_work_unit(self, node: Any) -> None:
            # the longest units first (loadscope would send them last: it orders by number of tests,
            # and the demo's file holds 3), so that none of them starts when the other worker is done
            if not getattr(self, "_longest_first", False):
                self._longest_first = True
                first = [scope for scope in LONGEST if scope in self.workqueue]
                for scope in reversed(first):
                    self.workqueue.move_to_end(scope, last=False)
            super()._assign_work_unit(node)

    return FileOrGroup(config, log)


def _anvil() -> Iterator[str]:
    """A fresh anvil for the session, its URL; stopped at the end (skipped where there is no anvil)."""
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


@pytest.fixture(scope="session")
def anvil_url() -> Iterator[str]:
    yield from _anvil()


@pytest.fixture(scope="session")
def second_anvil_url() -> Iterator[str]:
    """Another chain of the same kind (chain id 31337, the same development accounts), for a twin of a
    deployment (tests/fixtures/twins.py); started only in a session that asks for it."""
    yield from _anvil()


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
