"""A CLI home folder: which chain and deployment, which database, and the partners' keys.

    <home>/config.json      chain URL, deployment manifest, database URL, next development account,
                            each partner's KEK file
    <home>/keys/<name>.key  each partner's signing key (hex, mode 0600)
    <home>/keys/<name>.kek  each partner's key-encryption key (32 random bytes, mode 0600), unless
                            `partner add --kek-file` named another file
    <home>/data.sqlite      the store (default; any SQLAlchemy URL with --db)
    <home>/keys.sqlite      the key store of wrapped data keys, apart from the data

A home may hold several partners (each with its own files), but nothing signs with a partner's key
unless a command names that partner: joining or leaving the consortium takes votes that each partner
casts itself (`governance`). No key file is ever overwritten. The built-in development KEK is refused
in a home: it serves the demo and the tests only.

The in-process chain dies with its process, so a home always points at a chain that outlives commands:
the devnet or any JSON-RPC URL.

The home trusts one address: the Consortium's (printed by `init`; `init --consortium ADDRESS` pins the
one given out of band). Every other contract's address is read from that Consortium on chain, and a
config that disagrees with it is refused. Which chain: the manifest keeps the hash of the block the
deployment was mined in, and a node whose block of that number has another hash is refused (a home made
before it kept one writes it at its next opening: trust on first use).

Outside a development chain (the devnet, or any node that says it is anvil, Hardhat or Ganache), the
public test keys (the development mnemonic's accounts) are refused: deploying takes the operator's own
funded key (`--key-file`), and a partner without `--key-file` gets a freshly generated key.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import is_address

from api.context import Crm, private_folder
from api.errors import InvalidInput, MalformedInput
from api.usecases.home_open import CONFIG as CONFIG
from api.usecases.home_open import HomeConfig as HomeConfig
from api.usecases.home_open import HomeError as HomeError
from api.usecases.home_open import home_keks, pin_chain, reshred_erased, signing_keys
from api.usecases.home_open import settings_for as settings_for
from ledger.backends import DEV_MNEMONIC, RpcBackend, is_development_node, public_test_addresses
from ledger.coalition import Coalition
from ledger.deployment import Deployment
from ledger.paths import PROJECT_ROOT
from offchain.errors import KekError
from offchain.repositories import partners
from offchain.vault import KekRing, check_partner

DEVNET_SCRIPT = PROJECT_ROOT / "hardhat-free-devnet" / "devnet"
DEVNET_STATE = PROJECT_ROOT / "hardhat-free-devnet" / ".state"
FOUNDERS = 3  # development deployments: mnemonic accounts 0, 1, 2 found the coalition


def init_home(
    home: Path,
    chain: str,
    db_url: str | None = None,
    deployment_file: Path | None = None,
    *,
    consortium: str | None = None,
    key_file: Path | None = None,
) -> tuple[HomeConfig, str]:
    """Point `home` at a chain and a database: the config, and how the contracts were found (the
    devnet's or a given manifest's, attached to; those the Consortium at `consortium` records; else
    deployed anew). With `consortium`, every deployment but that Consortium's is refused. On a chain
    that is not a development chain, deploying takes `key_file` (the deployer and founding partner),
    and the public test keys are refused."""
    if (home / CONFIG).exists():
        raise HomeError(f"{home} is already initialised ({home / CONFIG})")
    if consortium is not None and not is_address(consortium):
        raise MalformedInput(
            f"--consortium takes a contract address (0x + 40 hex digits), not {consortium!r}"
        )
    deployer = _read_key(key_file) if key_file is not None else None
    if deployer is not None and (deployment_file is not None or consortium is not None or chain == "devnet"):
        raise InvalidInput(
            "--key-file deploys new contracts: it does not go with --deployment, --consortium or the devnet"
        )
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
        coalition = Coalition.attach(RpcBackend(rpc_url), deployment, consortium=consortium)
        how = "attached to the devnet's contracts"
        development = True
    elif chain.startswith(("http://", "https://")):
        rpc_url = chain
        backend = RpcBackend(rpc_url)
        development = is_development_node(backend)
        devnet = _devnet_deployment()
        if deployment_file is not None:
            coalition = Coalition.attach(backend, Deployment.load(deployment_file), consortium=consortium)
            how = f"attached to the contracts of {deployment_file}"
        elif devnet is not None and devnet.rpc_url == rpc_url.rstrip("/") and deployer is None:
            coalition = Coalition.attach(backend, devnet, consortium=consortium)
            how = "attached to the devnet's contracts (the URL is the devnet's)"
        elif consortium is not None:
            coalition = Coalition.trusted(backend, consortium)
            how = "attached to the contracts this Consortium records on chain"
        elif deployer is not None:
            if not development:
                _refuse_public_key(deployer, "--key-file")
            coalition = Coalition.deploy(backend, founders=[deployer], deployer=deployer)
            how = (
                f"deployed new contracts there with {deployer.address}, the founding partner (give it to a"
                f" partner with `ledgercrm partner add NAME --key-file {key_file}`)"
            )
        elif development:
            founders = dev_accounts(FOUNDERS)
            coalition = Coalition.deploy(backend, founders=founders, deployer=founders[0])
            how = "deployed new contracts there (pass --deployment FILE to attach to existing ones)"
        else:
            raise InvalidInput(
                f"{rpc_url} is not a development chain, so the public test keys do not deploy there: pass"
                " --key-file FILE (your own funded key, hex: it deploys and founds the coalition), or attach"
                " to a coalition with --consortium ADDRESS or --deployment FILE"
            )
    else:
        raise MalformedInput(f"--chain takes devnet or an http(s) JSON-RPC URL, not {chain!r}")
    private_folder(home)
    config = HomeConfig(
        rpc_url=rpc_url,
        deployment=coalition.deployment.to_json(),
        database_url=db_url,  # None: the store in the home, wherever the home is moved
        consortium=coalition.consortium_address,
        development=development,
    )
    config.save(home)
    open_crm(home).close()  # creates and migrates both stores now, so errors show at init
    return config, how


def _refuse_public_key(account: LocalAccount, option: str) -> None:
    """Refuse a well-known test key outside a development chain: anyone can sign with it."""
    if account.address in public_test_addresses():
        raise InvalidInput(
            f"{option}: {account.address} is a public test key (the development mnemonic's or eth-tester's):"
            " anyone holds it, so it never signs on a chain that is not a development chain"
        )


def _devnet_deployment() -> Deployment | None:
    """The devnet's manifest, if it has been started here (tests and parallel checkouts use their own
    state folder, DEVNET_STATE_DIR)."""
    path = Path(os.environ.get("DEVNET_STATE_DIR") or DEVNET_STATE) / "deployment.json"
    return Deployment.load(path) if path.is_file() else None


def open_crm(home: Path) -> Crm:
    config = HomeConfig.load(home)
    coalition = Coalition.attach(
        RpcBackend(config.rpc_url), Deployment.from_json(config.deployment), consortium=config.consortium
    )
    pin_chain(home, config, coalition.deployment.block_hash)
    crm = Crm.open(settings_for(home, config), coalition, keks=home_keks(home, config))
    try:
        crm.signers.update(signing_keys(home, Account.from_key))
        reshred_erased(crm)  # the chain is the shred list: a restored key store is caught here
    except BaseException:
        crm.close()
        raise
    return crm


@dataclass(frozen=True)
class AddedPartner:
    name: str
    address: str
    registered: bool  # False: its key is not (yet) a consortium partner, so the partners must vote
    key_file: Path
    kek_file: Path
    new_files: tuple[Path, ...]  # what this call created
    generated: bool = False  # a fresh key was generated (not a development chain): fund it


def add_partner(
    home: Path, name: str, key_file: Path | None = None, kek_file: Path | None = None
) -> AddedPartner:
    """Give partner `name` its keys in this home and register it, if its signing key is a consortium
    partner; otherwise leave it for the partners to vote in (`governance propose`), after which the same
    command registers it. Votes nobody's key.

    The signing key is `key_file`, else the one this home already keeps for `name`, else the next
    development account on a development chain, or a freshly generated key on any other (the public
    test keys are refused there, given or kept). The KEK is
    `kek_file`, else the one this home keeps, else 32 new random bytes. Everything is validated before
    anything is written; no key file is ever overwritten."""
    try:
        check_partner(name)
    except ValueError as exc:
        raise MalformedInput(str(exc)) from None
    keys = home / "keys"
    own_key, own_kek = keys / f"{name}.key", keys / f"{name}.kek"
    crm = open_crm(home)
    try:
        config = HomeConfig.load(home)  # after the opening, which may write it (`pin_chain`)
        with crm.unit_of_work() as db:
            if partners.by_name(db, name) is not None:
                raise InvalidInput(f"a partner called {name!r} is already registered in this home")
        existing = _read_key(own_key) if own_key.exists() else None
        given = _read_key(key_file) if key_file is not None else None
        if given is not None and existing is not None and given.address != existing.address:
            raise InvalidInput(f"{own_key} holds another key for {name}: a key file is never overwritten")
        kek_path = (
            Path(kek_file)
            if kek_file is not None
            else (home / config.keks[name] if name in config.keks else own_kek)
        )
        if kek_file is not None:
            _check_kek(kek_path, name)
            if name in config.keks and home / config.keks[name] != kek_path:
                raise InvalidInput(f"{name} already has a KEK ({config.keks[name]}): it is never replaced")
        account = given or existing
        use_dev = account is None and config.development
        generated = account is None and not config.development
        if account is not None and not config.development:
            _refuse_public_key(account, "--key-file" if given is not None else str(own_key))
        if account is None:
            # a development chain's funded accounts (the public development mnemonic); on any other
            # chain a fresh key, which its owner funds
            account = Account.create() if generated else dev_accounts(config.next_dev_account + 1)[-1]
        with crm.unit_of_work() as db:
            if partners.by_address(db, account.address) is not None:
                raise InvalidInput(f"the key {account.address} belongs to another partner of this home")
        # validated: now write, new files only
        # imported here, not with the module: every command opens the home through it, and these bring
        # the customers' use cases and their EmailStr's email_validator (~0.03 CPU s of a `score`)
        from api.usecases.customer_keys import write_new_file
        from api.usecases.partners import register_partner

        created: list[Path] = []
        private_folder(keys)
        if existing is None:
            write_new_file(own_key, ("0x" + bytes(account.key).hex() + "\n").encode())
            created.append(own_key)
        if not kek_path.exists():
            write_new_file(kek_path, os.urandom(32))
            created.append(kek_path)
        # relative to the home where it lies inside it: a home stays movable
        config.keks[name] = (
            str(kek_path.relative_to(home)) if kek_path.is_relative_to(home) else str(kek_path)
        )
        if use_dev:
            config.next_dev_account += 1
        config.save(home)
        registered = crm.coalition.consortium.is_partner(account.address)
        if registered:
            crm.close()
            crm = open_crm(home)  # with the new KEK file in its ring
            register_partner(crm, name, account)
    finally:
        crm.close()
    return AddedPartner(name, account.address, registered, own_key, kek_path, tuple(created), generated)


def _read_key(path: Path) -> LocalAccount:
    try:
        return Account.from_key(path.read_text().strip())  # type: ignore[no-any-return]
    except OSError as exc:
        raise MalformedInput(f"cannot read the key file {path}: {exc.strerror}") from None
    except ValueError:
        raise MalformedInput(f"{path} does not hold a private key (0x + 64 hex digits)") from None


def _check_kek(path: Path, name: str) -> None:
    """Refuse a KEK file that is not a usable key for `name` (the development KEK included)."""
    try:
        KekRing(development=False, key_files={name: path}).current(name)
    except KekError as exc:
        raise InvalidInput(str(exc)) from None


def dev_accounts(count: int) -> list[LocalAccount]:
    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(count)]


def _devnet_up() -> None:
    result = subprocess.run([str(DEVNET_SCRIPT), "up"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise HomeError(f"the devnet did not start: {(result.stderr or result.stdout).strip()}")
