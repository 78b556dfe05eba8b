"""Offline compilation of `contracts/` through py-solc-x, with a cached, content-addressed build.

There is no internet here, so `solcx.install_solc()` cannot fetch a compiler. The compiler is found
in this order: `$LEDGERCRM_SOLC`; a native `solc` of the pinned version on PATH or installed by solcx;
solc-js from the npm install, driven by `solcjs-driver.cjs` which speaks just enough of solc's command
line for py-solc-x. Imports are resolved here and inlined into the standard-JSON input, so every
compiler sees the same source units and needs no filesystem access.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.errors import CompilationError
from ledger.paths import build_dir, contracts_dir, node_modules_dir

SOLC_VERSION = "0.8.30"
# Cancun is the newest fork that both py-evm (eth-tester) and anvil run by default and Besu supports.
EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 200
# in deployment order: each one's constructor takes addresses of contracts before it
CONTRACT_NAMES = (
    "Consortium",
    "MemberRegistry",
    "ConsentRegistry",
    "LoyaltyPoints",
    "InteractionAnchor",
    "DecisionLog",
)

_IMPORT_RE = re.compile(r'^\s*import\s+(?:[^"\']*?\s+from\s+)?["\']([^"\']+)["\']\s*;', re.MULTILINE)
_DRIVER = Path(__file__).with_name("solcjs-driver.cjs")


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    # offset/length pairs of immutables in the runtime code, filled in at deployment time
    immutable_ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Build:
    compiler: str
    input_hash: str
    artifacts: dict[str, Artifact]

    def __getitem__(self, name: str) -> Artifact:
        return self.artifacts[name]

    def all_abis(self) -> list[list[dict[str, Any]]]:
        return [artifact.abi for artifact in self.artifacts.values()]


def find_solc() -> Path:
    """The compiler binary to use (see the module docstring for the order)."""
    explicit = os.environ.get("LEDGERCRM_SOLC")
    if explicit:
        path = Path(explicit)
        if not path.exists():
            raise CompilationError(f"LEDGERCRM_SOLC points to {path}, which does not exist")
        return path
    on_path = shutil.which("solc")
    if on_path and _version_of(Path(on_path)) == SOLC_VERSION:
        return Path(on_path)
    from solcx.install import get_executable

    try:
        return Path(get_executable(SOLC_VERSION))
    except Exception:  # solcx raises its own "not installed" error; any failure means "not here"
        pass
    if (node_modules_dir() / "solc").is_dir() and shutil.which("node"):
        return _DRIVER
    raise CompilationError(
        f"no Solidity compiler {SOLC_VERSION} found: set LEDGERCRM_SOLC, put solc on PATH, "
        "or run `npm ci` in the project root to install solc-js"
    )


def _version_of(binary: Path) -> str | None:
    import solcx
    from solcx.exceptions import SolcError

    try:
        return str(solcx.wrapper.get_solc_version(binary))
    except (OSError, SolcError, ValueError):
        return None


def collect_sources(root: Path | None = None) -> dict[str, str]:
    """Source unit name -> content for every contract under `root` and everything it imports."""
    root = root or contracts_dir()
    pending = [f"contracts/{p.relative_to(root).as_posix()}" for p in sorted(root.rglob("*.sol"))]
    sources: dict[str, str] = {}
    while pending:
        unit = pending.pop()
        if unit in sources:
            continue
        path = _locate(unit, root)
        if not path.is_file():
            raise CompilationError(f"cannot resolve Solidity import {unit!r} (looked at {path})")
        content = path.read_text(encoding="utf-8")
        sources[unit] = content
        for target in _IMPORT_RE.findall(content):
            if target.startswith("."):
                target = posixpath.normpath(posixpath.join(posixpath.dirname(unit), target))
            pending.append(target)
    return dict(sorted(sources.items()))


def _locate(unit: str, root: Path) -> Path:
    if unit.startswith("contracts/"):
        return root / unit.removeprefix("contracts/")
    return node_modules_dir() / unit


def standard_input(sources: dict[str, str]) -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {unit: {"content": content} for unit, content in sources.items()},
        "settings": {
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "evmVersion": EVM_VERSION,
            "outputSelection": {
                "*": {
                    "*": [
                        "abi",
                        "evm.bytecode.object",
                        "evm.deployedBytecode.object",
                        "evm.deployedBytecode.immutableReferences",
                    ]
                }
            },
        },
    }


def compile_contracts(*, force: bool = False, root: Path | None = None) -> Build:
    """Compile (or load from the cache) every contract; rebuilt whenever a source or setting changes."""
    sources = collect_sources(root)
    solc_input = standard_input(sources)
    input_hash = hashlib.sha256(json.dumps(solc_input, sort_keys=True).encode()).hexdigest()
    cache = build_dir() / "contracts.json"
    if not force and cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("input_hash") == input_hash:
            return _build_from_json(cached)
    import solcx  # here: a build read from the cache (every command's case) needs no compiler
    from solcx.exceptions import SolcError

    binary = find_solc()
    try:
        output = solcx.compile_standard(solc_input, solc_binary=binary)
    except SolcError as exc:
        raise CompilationError(f"Solidity compilation failed:\n{exc.message}") from exc
    version = _version_of(binary) or "unknown"
    artifacts: dict[str, Any] = {}
    for unit, contracts in output["contracts"].items():
        if not unit.startswith("contracts/") or unit.startswith("contracts/interfaces/"):
            continue
        for name, data in contracts.items():
            if not data["evm"]["bytecode"]["object"]:
                continue  # abstract contracts and libraries with nothing to deploy
            ranges = [
                (ref["start"], ref["length"])
                for refs in data["evm"]["deployedBytecode"].get("immutableReferences", {}).values()
                for ref in refs
            ]
            artifacts[name] = {
                "name": name,
                "abi": data["abi"],
                "bytecode": "0x" + data["evm"]["bytecode"]["object"],
                "deployed_bytecode": "0x" + data["evm"]["deployedBytecode"]["object"],
                "immutable_ranges": sorted(ranges),
            }
    payload = {"compiler": version, "input_hash": input_hash, "artifacts": artifacts}
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(cache)  # atomic, so parallel test workers never read half a file
    return _build_from_json(payload)


def _build_from_json(payload: dict[str, Any]) -> Build:
    return Build(
        compiler=payload["compiler"],
        input_hash=payload["input_hash"],
        artifacts={
            name: Artifact(
                name=a["name"],
                abi=a["abi"],
                bytecode=a["bytecode"],
                deployed_bytecode=a["deployed_bytecode"],
                immutable_ranges=tuple((int(s), int(n)) for s, n in a["immutable_ranges"]),
            )
            for name, a in payload["artifacts"].items()
        },
    )
