"""A home's config, and opening a home to read and verify without web3.

`api.usecases.home` opens a home for everything (`open_crm`): the coalition through web3, whose clients
sign and send, and every partner's signing key. A command that only reads the chain and verifies
(`decision verify`) opens it with `open_crm_to_verify` instead: the same trust checks of the deployment
(`ledger.reader.ReadCoalition.attach`: chain id, the deployment's block, code, the Consortium's
records), the same stores and keys of the data, the same re-shredding of keys the chain erased, and a
coalition that reads over plain JSON-RPC and sends nothing; no signing key is loaded. It costs a
fraction of the start-up (web3 and eth_account are not imported: benchmarks/README.md,
`decision_verify.py`).

Nothing here imports web3 or eth_account at module level (tests/api/test_cli_decisions.py:
`test_decision_verify_imports_neither_web3_nor_eth_account`)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from api.context import Crm, private_folder
from api.errors import CrmError
from api.settings import Settings
from offchain.repositories import partners
from offchain.vault import KekRing

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from ledger.coalition import Coalition
    from ledger.reader import ReadCoalition

CONFIG = "config.json"
K = TypeVar("K")


class HomeError(CrmError):
    pass


@dataclass
class HomeConfig:
    rpc_url: str
    deployment: dict[str, Any]
    database_url: str | None  # None: data.sqlite in the home
    next_dev_account: int = 0
    keks: dict[str, str] = field(default_factory=dict)  # partner -> its KEK file
    consortium: str | None = None  # the trust anchor this home was pinned to (None: homes made before)
    development: bool = True  # a development chain: the public test keys may sign (homes made before: yes)

    def save(self, home: Path) -> None:
        private_folder(home)
        path = home / CONFIG
        tmp = path.with_suffix(".tmp")
        with os.fdopen(os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600), "w") as handle:
            handle.write(json.dumps(self.__dict__, indent=2) + "\n")
        tmp.chmod(0o600)  # a leftover .tmp of another mode keeps its mode through os.open
        tmp.replace(path)

    @classmethod
    def load(cls, home: Path) -> HomeConfig:
        path = home / CONFIG
        if not path.is_file():
            raise HomeError(f"{home} is not a ledgercrm home: run `ledgercrm init` first (or pass --home)")
        return cls(**json.loads(path.read_text()))


def pin_chain(home: Path, config: HomeConfig, block_hash: str | None) -> None:
    """Trust on first use, for a home made before its manifest kept which chain it is on: write the hash
    of the deployment's block, as the node answered it at an opening whose trust checks all passed,
    into the home's manifest, so that from then on every opening checks it (`ledger.reader.same_chain`).
    A home made since has it from `init`. The config is read again just before it is written: another
    command may have written it since this one read it (a KEK added), and that is kept."""
    if block_hash is None or config.deployment.get("deployedAtBlockHash") is not None:
        return
    latest = HomeConfig.load(home)
    stated = latest.deployment
    if stated.get("deployedAtBlockHash") is not None or stated.get("contracts") != config.deployment.get(
        "contracts"
    ):
        return  # pinned meanwhile, or another deployment: nothing of this opening's to write
    pinned: dict[str, Any] = {}
    for key, value in stated.items():
        pinned[key] = value
        if key == "deployedAtBlock":
            pinned["deployedAtBlockHash"] = block_hash
    latest.deployment = pinned
    latest.save(home)
    config.deployment = pinned


def settings_for(home: Path, config: HomeConfig) -> Settings:
    # production: a home's data is real, so the public development KEK is refused in it
    return Settings(
        environment="production",
        home=home,
        database_url=config.database_url,
        keystore_url=str(home / "keys.sqlite"),
    )


def home_keks(home: Path, config: HomeConfig) -> KekRing:
    files = {name: str(home / path) for name, path in config.keks.items()}
    return KekRing(development=False, key_files=files)


def open_crm_to_verify(home: Path) -> Crm:
    """`home` opened to read the chain and verify: its coalition is a `ReadCoalition` (reads over
    JSON-RPC, after the deployment's trust checks; it has no method that sends), and no signing key is
    loaded. Keys of members the chain erased are shredded again, as every opening does."""
    config, reader = _attached_reader(home)
    return _opened_on(home, config, reader)


def open_crm_to_decide(home: Path) -> Crm:
    """`home` opened for `score`: the reads of `open_crm_to_verify` (the same trust checks of the
    deployment, over plain JSON-RPC), a DecisionLog client that also signs and sends recordDecisions
    through the outbox (`ledger.sender.DecisionLogSender`: the same simulation, nonces, fees and named
    errors as the web3 chain client's), and every partner's signing key of the home. web3 and eth_account
    are not imported: ~0.5 of a ~4.3 CPU s `score --all` (benchmarks/README.md)."""
    from ledger.sender import DecisionLogSender, LocalKey, RawSender

    config, reader = _attached_reader(home)
    sender = RawSender(reader.rpc, int(config.deployment["chainId"]))
    reader.decisions = DecisionLogSender(reader.chain, reader.contracts["DecisionLog"], sender)
    return _opened_on(home, config, reader, key=LocalKey.from_text)


def _attached_reader(home: Path) -> tuple[HomeConfig, ReadCoalition]:
    """The home's config and its chain read over JSON-RPC, after the deployment's trust checks (the
    chain pinned on first use, see `pin_chain`)."""
    from ledger.compiler import compile_contracts
    from ledger.reader import ReadCoalition

    config = HomeConfig.load(home)
    reader = ReadCoalition.attach(
        config.rpc_url, config.deployment, compile_contracts(), consortium=config.consortium
    )
    pin_chain(home, config, reader.block_hash)
    return config, reader


def _opened_on(
    home: Path, config: HomeConfig, reader: ReadCoalition, *, key: Callable[[str], Any] | None = None
) -> Crm:
    """The home opened on `reader`, with its partners' signing keys parsed by `key` if given; the erased
    members' keys shredded again. Closed again if any of it fails."""
    # the use cases are typed against Coalition; a ReadCoalition answers the reads they make when
    # verifying and scoring (the same `ledger.records` values: tests/ledger/test_reader.py)
    crm = Crm.open(settings_for(home, config), cast("Coalition", reader), keks=home_keks(home, config))
    try:
        if key is not None:
            crm.signers.update(cast("dict[str, LocalAccount]", signing_keys(home, key)))
        reshred_erased(crm)
    except BaseException:
        crm.close()
        raise
    return crm


def signing_keys(home: Path, parse: Callable[[str], K]) -> dict[str, K]:
    """Every partner's signing key in `home` (keys/<partner>.key), each file's text parsed by `parse`:
    `eth_account.Account.from_key` where the home is opened with web3, `ledger.sender.LocalKey.from_text`
    for `score` (which take and refuse the same forms: tests/ledger/test_sender.py). One rule for both:
    a file that cannot be read or holds no key is refused in words that name the file and never hold
    its text (the parsers' errors are dropped: a traceback would print the key file's line)."""
    found: dict[str, K] = {}
    keys = home / "keys"
    if not keys.is_dir():
        return found
    for key_file in sorted(keys.glob("*.key")):
        try:
            text = key_file.read_text()
        except OSError as exc:
            raise HomeError(
                f"cannot read the key file {key_file}: {exc.strerror or type(exc).__name__}"
            ) from None
        except ValueError:  # not UTF-8
            text = ""
        try:
            found[key_file.stem] = parse(text.strip())
        except ValueError:  # eth_account's, binascii's and coincurve's refusals are all ValueErrors
            raise HomeError(f"{key_file} does not hold a private key (0x + 64 hex digits)") from None
    return found


def reshred_erased(crm: Crm) -> list[tuple[str, bytes, int]]:
    """The chain is the shred list: shred again every data key the key store holds of a member the
    MemberRegistry erased (a key store restored from a backup taken before the erasure would otherwise
    bring the member's keys back, and with them whatever ciphertext a backup of the data kept). Each
    one is (partner, member, block of the erasure), also kept in `crm.reshredded` for `verify`, which
    fails on it. One event query and one key-store query per partner: cheap enough for every opening
    of a home."""
    with crm.unit_of_work() as db:
        known = [(p.name, p.address) for p in partners.every(db)]
    if not known:
        return []
    # every erasure, whatever its home then: a member may have moved to another home (its signature or
    # the partners' vote) after the partner whose store holds its data enrolled it
    erased = {erasure.member: erasure.block_number for erasure in crm.coalition.members.erasures()}
    found: list[tuple[str, bytes, int]] = []
    if not erased:
        return found
    for name, _address in known:
        for member in crm.keystore.get_many(name, list(erased)):
            crm.vault.shred(name, member)
            found.append((name, member, erased[member]))
    crm.reshredded.extend(found)
    return found
