"""The layout's rules, checked on the source with `ast` so that they stay true:

- `ledger`, `offchain` and `ml` never import each other (nor `api`);
- no module outside `ledger/` touches a contract's functions, web3 or the backend;
- no module outside `offchain/` builds a SQLAlchemy/SQLModel query or touches a session's connection;
- one outbox: only `api/evidence/outbox.py` sends prepared transactions and settles them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("api", "offchain", "ledger", "ml", "audit", "hardhat-free-devnet")
QUERY_BUILDERS = {"select", "update", "insert", "delete", "text"}
OUTBOX = ROOT / "api" / "evidence" / "outbox.py"


def _modules(*folders: str) -> Iterator[tuple[Path, ast.Module]]:
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" in path.parts:  # Alembic's own scripts (offchain's, by nature)
                continue
            yield path, ast.parse(path.read_text(), filename=str(path))


def _imports(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _top(module: str) -> str:
    return module.split(".")[0]


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("ledger", {"offchain", "api", "ml", "audit"}),
        ("offchain", {"ledger", "api", "ml", "audit"}),
        ("ml", {"ledger", "offchain", "api", "audit"}),
    ],
)
def test_the_lower_layers_never_import_each_other(package: str, forbidden: set[str]):
    if not (ROOT / package).is_dir():
        pytest.skip(f"there is no {package}/ yet")
    wrong = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path, tree in _modules(package)
        for module in _imports(tree)
        if _top(module) in forbidden
    ]
    assert not wrong


def test_no_contract_function_web3_or_backend_outside_the_ledger():
    wrong: list[str] = []
    for path, tree in _modules(*(p for p in PRODUCT if p not in ("ledger", "hardhat-free-devnet"))):
        wrong += [
            f"{path.relative_to(ROOT)} imports {m}" for m in _imports(tree) if _top(m) in ("web3", "eth_abi")
        ]
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("functions", "w3", "backend", "contract"):
                wrong.append(f"{_where(path, node)} reads .{node.attr}")
    for path, tree in _modules("hardhat-free-devnet"):
        wrong += [
            f"{_where(path, node)} reads .functions"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "functions"
        ]
    assert not wrong


def _query_builders(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Names bound to SQLAlchemy/SQLModel query constructors, and aliases of those packages."""
    names: set[str] = set()
    packages: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and _top(node.module) in ("sqlalchemy", "sqlmodel")
        ):
            names.update(alias.asname or alias.name for alias in node.names if alias.name in QUERY_BUILDERS)
        elif isinstance(node, ast.Import):
            packages.update(
                alias.asname or alias.name
                for alias in node.names
                if _top(alias.name) in ("sqlalchemy", "sqlmodel")
            )
    return names, packages


def test_no_query_is_built_outside_the_store():
    wrong: list[str] = []
    for path, tree in _modules(*(p for p in PRODUCT if p != "offchain")):
        names, packages = _query_builders(tree)
        if names:
            wrong.append(f"{path.relative_to(ROOT)} imports the query builders {sorted(names)}")
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            receiver, name = node.func.value, node.func.attr
            if isinstance(receiver, ast.Name) and receiver.id in packages and name in QUERY_BUILDERS:
                wrong.append(f"{_where(path, node)} calls {receiver.id}.{name}(...)")
            # a session's own query methods: only repositories run queries
            if (
                isinstance(receiver, ast.Name)
                and receiver.id == "db"
                and name in ("exec", "connection", "get")
            ):
                wrong.append(f"{_where(path, node)} calls db.{name}(...)")
    assert not wrong


def test_one_outbox_sends_and_settles_prepared_transactions():
    """Outside the ledger, only the outbox broadcasts a prepared transaction or asks what became of one
    (`broadcast`, `lookup`, `wait`), and only it writes a transaction hash on staged rows (`claim`)."""
    wrong: list[str] = []
    for path, tree in _modules(*(p for p in PRODUCT if p not in ("ledger", "hardhat-free-devnet"))):
        if path == OUTBOX:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            receiver = ast.unparse(node.func.value)
            sends = node.func.attr in ("broadcast", "lookup", "wait") and (
                "coalition" in receiver or "client" in receiver
            )
            records = node.func.attr in ("claim", "release") and "OUTBOX" in receiver
            if sends or records:
                wrong.append(f"{_where(path, node)} calls {receiver}.{node.func.attr}(...)")
    assert not wrong
    outboxes = [
        f"{path.relative_to(ROOT)}: class {node.name}"
        for path, tree in _modules("api")
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and "outbox" in node.name.lower()
    ]
    assert outboxes == ["api/evidence/outbox.py: class Outbox"]
