"""Where the project's files are: the checkout this package was imported from, overridable by env."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def contracts_dir() -> Path:
    return Path(os.environ.get("LEDGERCRM_CONTRACTS_DIR", PROJECT_ROOT / "contracts"))


def node_modules_dir() -> Path:
    return Path(os.environ.get("LEDGERCRM_NODE_MODULES", PROJECT_ROOT / "node_modules"))


def build_dir() -> Path:
    return Path(os.environ.get("LEDGERCRM_BUILD_DIR", PROJECT_ROOT / "build"))


def npm_binary(name: str) -> Path:
    """An executable shipped inside an npm package of ours, e.g. `anvil` or `cast`."""
    return node_modules_dir() / "@foundry-rs" / f"{name}-linux-amd64" / "bin" / name
