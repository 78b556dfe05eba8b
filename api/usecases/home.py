"""A CLI home folder: which chain and deployment, which database, and the partners' signing keys.

    <home>/config.json      chain URL, deployment manifest, database URL, next development account
    <home>/keys/<name>.key  each partner's signing key (hex, mode 0600)
    <home>/data.sqlite      the store (default; any SQLAlchemy URL with --db)
    <home>/keys.sqlite      the key store of wrapped data keys, apart from the data

The in-process chain dies with its process, so a home always points at a chain that outlives commands:
the devnet or any JSON-RPC URL.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from api.context import Crm
from api.errors import CrmError, InvalidInput
from api.settings import Settings
from api.usecases.partners import register_partner
from ledger.backends import DEV_MNEMONIC, RpcBackend
from ledger.clients import Action
from ledger.coalition import Coalition
from ledger.deployment import Deployment
from ledger.paths import PROJECT_ROOT

CONFIG = "config.json"
DEVNET_SCRIPT = PROJECT_ROOT / "hardhat-free-devnet" / "devnet"
DEVNET_STATE = PROJECT_ROOT / "hardhat-free-devnet" / ".state"
FOUNDERS = 3  # development deployments: mnemonic accounts 0, 1, 2 found the coalition


class HomeError(CrmError):
    pass


@dataclass
class HomeConfig:
    rpc_url: str
    deployment: dict[str, Any]
    database_url: str | None  # None: data.sqlite in the home
    next_dev_account: int = 0

    def save(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        path = home / CONFIG
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, home: Path) -> HomeConfig:
        path = home / CONFIG
        if not path.is_file():
            raise HomeError(f"{home} is not a ledgercrm home: run `ledgercrm init` first (or pass --home)")
        return cls(**json.loads(path.read_text()))


def init_home(
    home: Path, chain: str, db_url: str | None = None, deployment_file: Path | None = None
) -> tuple[HomeConfig, str]:
    """Point `home` at a chain and a database: the config, and how the contracts were found (the
    devnet's or a given manifest's, attached to; else deployed anew)."""
    if (home / CONFIG).exists():
        raise HomeError(f"{home} is already initialised ({home / CONFIG})")
    if chain == "memory":
        raise InvalidInput(
            "the in-process chain lives only as long as one process, and a home outlives commands: "
            "use --chain devnet or a JSON-RPC URL (`ledgercrm demo` runs on the in-process chain)"
        )
    if chain == "devnet":
        _devnet_up()
        deployment = _devnet_deployment()
        assert deployment is not None  # the devnet is up, so its manifest is there
        rpc_url = deployment.rpc_url or "http://127.0.0.1:8545"
        coalition = Coalition.attach(RpcBackend(rpc_url), deployment)
        how = "attached to the devnet's contracts"
    elif chain.startswith(("http://", "https://")):
        rpc_url = chain
        backend = RpcBackend(rpc_url)
        devnet = _devnet_deployment()
        if deployment_file is not None:
            coalition = Coalition.attach(backend, Deployment.load(deployment_file))
            how = f"attached to the contracts of {deployment_file}"
        elif devnet is not None and devnet.rpc_url == rpc_url.rstrip("/"):
            coalition = Coalition.attach(backend, devnet)
            how = "attached to the devnet's contracts (the URL is the devnet's)"
        else:
            founders = dev_accounts(FOUNDERS)
            coalition = Coalition.deploy(backend, founders=founders, deployer=founders[0])
            how = "deployed new contracts there (pass --deployment FILE to attach to existing ones)"
    else:
        raise InvalidInput(f"--chain takes devnet or an http(s) JSON-RPC URL, not {chain!r}")
    home.mkdir(parents=True, exist_ok=True)
    config = HomeConfig(
        rpc_url=rpc_url,
        deployment=coalition.deployment.to_json(),
        database_url=db_url,  # None: the store in the home, wherever the home is moved
    )
    config.save(home)
    open_crm(home).close()  # creates and migrates both stores now, so errors show at init
    return config, how


def _devnet_deployment() -> Deployment | None:
    """The devnet's manifest, if it has been started here (tests and parallel checkouts use their own
    state folder, DEVNET_STATE_DIR)."""
    path = Path(os.environ.get("DEVNET_STATE_DIR") or DEVNET_STATE) / "deployment.json"
    return Deployment.load(path) if path.is_file() else None


def settings_for(home: Path, config: HomeConfig) -> Settings:
    return Settings(home=home, database_url=config.database_url, keystore_url=str(home / "keys.sqlite"))


def open_crm(home: Path) -> Crm:
    config = HomeConfig.load(home)
    coalition = Coalition.attach(RpcBackend(config.rpc_url), Deployment.from_json(config.deployment))
    crm = Crm.open(settings_for(home, config), coalition)
    keys = home / "keys"
    if keys.is_dir():
        for key_file in sorted(keys.glob("*.key")):
            crm.signers[key_file.stem] = Account.from_key(key_file.read_text().strip())
    return crm


def add_partner(home: Path, name: str, key_file: Path | None = None) -> tuple[LocalAccount, bool]:
    """Register partner `name` with a signing key (the next development account, or `key_file`).

    If the key is not yet a consortium partner, the partners of this home propose and vote to admit it;
    returns the account and whether a vote was needed."""
    config = HomeConfig.load(home)
    if key_file is not None:
        account: LocalAccount = Account.from_key(key_file.read_text().strip())
    else:
        account = dev_accounts(config.next_dev_account + 1)[-1]
    crm = open_crm(home)
    try:
        voted = False
        if not crm.coalition.consortium.is_partner(account.address):
            voters = [s for s in crm.signers.values() if crm.coalition.consortium.is_partner(s.address)]
            if not voters:
                raise HomeError("no partner key in this home can propose the new partner")
            try:
                crm.coalition.consortium.decide(voters, Action.ADMIT_PARTNER, account.address)
            except ValueError as exc:
                raise HomeError(f"cannot admit {name}: {exc}; the other partners must vote") from exc
            voted = True
        register_partner(crm, name, account)
    finally:
        crm.close()
    keys = home / "keys"
    keys.mkdir(exist_ok=True)
    path = keys / f"{name}.key"
    path.write_text("0x" + bytes(account.key).hex() + "\n")
    os.chmod(path, 0o600)
    if key_file is None:
        config.next_dev_account += 1
        config.save(home)
    return account, voted


def dev_accounts(count: int) -> list[LocalAccount]:
    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(count)]


def _devnet_up() -> None:
    result = subprocess.run([str(DEVNET_SCRIPT), "up"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise HomeError(f"the devnet did not start: {(result.stderr or result.stdout).strip()}")
