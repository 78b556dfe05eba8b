"""Changing a customer's bound key from the command line: signed by the old key (on the customer's
side, `customer sign key-change`; a partner relays the signature file), or, for a lost key, voted by a
strict majority of the current partners (they see only the new key's address). Each hostile try comes
first, and each is refused by the contract itself (called directly, past the CLI's own checks), not
only by Python."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from api.cli import app
from api.usecases.customer_keys import open_customer_key
from api.usecases.home import open_crm
from ledger import errors
from ledger.backends import RpcBackend
from ledger.clients import ConsentStatus, MemberInfo, purpose_id
from tests.api.clirunner import new_home, runner
from tests.api.clirunner import run as cli

PASSPHRASE = "correct horse battery"
LOYALTY = purpose_id("loyalty")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, anvil_url):
    """One home for the module: a deployment on the session's anvil node, its three founders added."""
    home = new_home(tmp_path_factory.mktemp("customer-keys") / "home", anvil_url)
    for name in ("acme", "borealis", "cafe"):  # the deployment's founders
        cli(home, "partner", "add", name)
    return home


@pytest.fixture
def home(pristine, tmp_path, anvil_url):
    """A copy of the module's home for one test, and the chain put back (a snapshot) after it: each
    test starts from the same fresh deployment, without an `init` of its own."""
    backend = RpcBackend(anvil_url)
    snapshot = backend.snapshot()
    home = tmp_path / "home"
    shutil.copytree(pristine, home)  # modes kept: 0700 folders, 0600 files
    (tmp_path / "pass").write_text(PASSPHRASE + "\n")
    try:
        yield home
    finally:
        backend.revert(snapshot)


def new_key(home: Path, name: str) -> Path:
    """A customer's keystore file, as `customer key new` writes one but with a cheap scrypt (2**12, not
    2**18: each opening took 0.5 s to 5 s on a busy machine, and these tests open keys some 80 times);
    a keystore states its own KDF parameters, so every command opens it as any other.
    `test_key_new_writes_a_keystore_its_passphrase_opens` runs `customer key new` itself."""
    path = home.parent / f"{name}.json"
    keystore = Account.encrypt(Account.create().key, PASSPHRASE, iterations=2**12)
    path.write_text(json.dumps(keystore) + "\n")
    path.chmod(0o600)
    return path


def test_key_new_writes_a_keystore_its_passphrase_opens(tmp_path):
    (tmp_path / "pass").write_text(PASSPHRASE + "\n")
    out = runner.invoke(
        app,
        [
            "customer",
            "key",
            "new",
            "--out",
            str(tmp_path / "k.json"),
            "--passphrase-file",
            str(tmp_path / "pass"),
        ],
    )
    assert out.exit_code == 0, out.output
    assert f"key {open_customer_key(tmp_path / 'k.json', PASSPHRASE).address}" in out.output
    assert (tmp_path / "k.json").stat().st_mode & 0o777 == 0o600


def keyed_customer(home: Path, key: Path, name: str = "Bea") -> str:
    """She signs her key's binding to a new member id on her side; acme registers her with the file."""
    binding, output = sign(home, key, "binding")
    assert binding is not None, output
    out = cli(
        home,
        *("customer", "add", "--partner", "acme", "--name", name, "--signer", address(key)),
        *("--binding", str(binding)),
    )
    return out.strip().splitlines()[-1]


_files = iter(range(10**6))


def sign(home: Path, key: Path, *what: str) -> tuple[Path | None, str]:
    """The customer signs `what` (`customer sign ...`) with her key file, on her side: the signature
    file (None if the signing was refused) and the command's output."""
    out = home.parent / f"signature-{next(_files)}.json"
    result = runner.invoke(
        app,
        ["--home", str(home), "customer", "sign", *what, "--key", str(key), "--out", str(out),
         "--passphrase-file", str(home.parent / "pass")],
    )  # fmt: skip
    return (out if result.exit_code == 0 else None), result.output


def signing(home: Path, key: Path, member: str, partner: str) -> list[str]:
    """`--signature FILE` of her consent to `partner` for loyalty, signed with `key`."""
    path, output = sign(
        home, key, "consent-give", "--member", member, "--partner", partner, "--purpose", "loyalty"
    )
    assert path is not None, output
    return ["--signature", str(path)]


def change(home: Path, member: str, partner: str, old: Path, new: Path, code: int = 0) -> str:
    """She signs the change to `new`'s address with `old`; `partner` relays it. A refusal at signing
    is returned as it is (and must be what the test expects: `code` is then 1)."""
    path, output = sign(home, old, "key-change", "--member", member, "--new-signer", address(new))
    if path is None:
        assert code == 1, output
        return output
    return cli(
        home, "customer", "key", "change", member, "--partner", partner, "--signature", str(path), code=code
    )


def reset(home: Path, member: str, partner: str, new: Path, code: int = 0) -> str:
    return cli(
        home,
        "customer",
        "key",
        "reset",
        member,
        "--partner",
        partner,
        "--new-signer",
        address(new),
        code=code,
    )


def address(key: Path) -> str:
    """The key's address, as its keystore file states it (opening it takes a second of scrypt)."""
    return to_checksum_address("0x" + json.loads(key.read_text())["address"])


def on_chain(home: Path, member: str) -> tuple[int, str | None]:
    """The chain's height and the member's key there: what a refusal must leave as it was."""
    crm = open_crm(home)
    try:
        return crm.coalition.chain.w3.eth.block_number, crm.coalition.members.member(
            bytes.fromhex(member[2:])
        ).signer
    finally:
        crm.close()


def partner_address(home: Path, name: str) -> str:
    """The partner's address, from its key file in the home (without opening the home)."""
    return str(Account.from_key((home / "keys" / f"{name}.key").read_text().strip()).address)


def one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


def test_a_key_changes_by_the_old_keys_signature_and_only_by_it(home):
    old, new, thief = new_key(home, "old"), new_key(home, "new"), new_key(home, "thief")
    member = keyed_customer(home, old)
    before = on_chain(home, member)

    # hostile: a key that is not the member's signs the change (to itself, or to the new key)
    refused = one_line(change(home, member, "borealis", thief, thief, code=1))
    assert f"made by {address(thief)}, not by member" in refused
    assert "not by member" in change(home, member, "borealis", new, new, code=1)
    assert on_chain(home, member) == before
    # ... and the contract refuses it too, past the CLI's checks
    crm = open_crm(home)
    try:
        m = bytes.fromhex(member[2:])
        forged = crm.coalition.members.authorize_signer_change(
            open_customer_key(thief, PASSPHRASE), m, address(thief)
        )
        with pytest.raises(errors.MemberInvalidSignature):
            crm.coalition.members.change_signer(crm.signer("borealis"), m, address(thief), forged)
    finally:
        crm.close()
    assert on_chain(home, member) == before
    # the new key already the member's: refused before anything is sent
    assert "key already" in one_line(change(home, member, "borealis", old, old, code=1))

    # the customer signs with its old key; another partner (not its home) relays
    done = change(home, member, "borealis", old, new)
    assert f"signer {address(new)} (was {address(old)})" in done
    assert on_chain(home, member)[1] == address(new)

    # the new key signs a consent; the old one is refused, by the CLI and by the contract
    give = ["consent", "give", "--partner", "cafe", "--member", member, "--purpose", "loyalty"]
    assert "consent given" in cli(home, *give, *signing(home, new, member, "cafe"))
    refused = one_line(
        cli(home, *give[:3], "borealis", *give[4:], *signing(home, old, member, "borealis"), code=1)
    )
    assert f"made by {address(old)}, not by member" in refused
    crm = open_crm(home)
    try:
        m = bytes.fromhex(member[2:])
        members, consent = crm.coalition.members, crm.coalition.consent
        borealis = crm.signer("borealis")
        receipt = os.urandom(32)
        auth = members.authorize_consent(
            open_customer_key(old, PASSPHRASE), m, borealis.address, LOYALTY, ConsentStatus.GIVEN, receipt, 0
        )
        with pytest.raises(errors.MemberInvalidSignature):
            consent.record_signed(
                borealis, m, borealis.address, LOYALTY, ConsentStatus.GIVEN, receipt, 0, auth
            )
        assert not consent.is_valid(m, borealis.address, LOYALTY)
        # the old key cannot take the member back either: it is no longer the signer
        back = members.authorize_signer_change(open_customer_key(old, PASSPHRASE), m, address(old))
        with pytest.raises(errors.MemberInvalidSignature):
            members.change_signer(borealis, m, address(old), back)
    finally:
        crm.close()
    assert on_chain(home, member)[1] == address(new)


def test_a_lost_key_is_reset_by_a_majority_of_the_current_partners(home):
    old, new = new_key(home, "old"), new_key(home, "new")
    member = keyed_customer(home, old)
    cafe_address = partner_address(home, "cafe")
    # cafe votes, then is removed from the consortium: its vote must not count any more
    first = reset(home, member, "cafe", new)
    assert "1 of 2 votes: not yet reset" in first and "3 partners" in first
    cli(home, "governance", "propose", "remove", cafe_address, "--partner", "acme")
    assert "executed" in cli(home, "governance", "vote", "0", "--partner", "borealis")  # 2 partners now
    before = on_chain(home, member)
    assert "not a partner of the consortium" in one_line(reset(home, member, "cafe", new, code=1))
    assert on_chain(home, member) == before

    # one partner of two: not a majority
    assert "1 of 2 votes: not yet reset" in reset(home, member, "acme", new)
    assert on_chain(home, member)[1] == address(old)
    # the same partner again: refused, and it counts once (also on the contract's word)
    before = on_chain(home, member)
    again = one_line(reset(home, member, "acme", new, code=1))
    assert "already voted" in again and "1 of 2 votes, not yet reset" in again
    assert on_chain(home, member) == before
    crm = open_crm(home)
    try:
        m = bytes.fromhex(member[2:])
        with pytest.raises(errors.MemberAlreadyVoted):
            crm.coalition.members.vote_signer_reset(crm.signer("acme"), m, address(new))
        assert crm.coalition.members.reset_votes(m, address(new)) == (1, 2)
    finally:
        crm.close()

    # the second partner of two: reset
    assert "2 of 2 votes: signer reset" in reset(home, member, "borealis", new)
    assert on_chain(home, member)[1] == address(new)
    give = ["consent", "give", "--partner", "acme", "--member", member, "--purpose", "loyalty"]
    assert "not by member" in cli(home, *give, *signing(home, old, member, "acme"), code=1)
    assert "consent given" in cli(home, *give, *signing(home, new, member, "acme"))


def test_a_member_without_a_key_and_an_erased_member_have_no_key_to_change(home):
    old, new = new_key(home, "old"), new_key(home, "new")
    keyless = cli(home, "customer", "add", "--partner", "acme", "--name", "Ann").strip().splitlines()[-1]
    before = on_chain(home, keyless)
    for output in (
        change(home, keyless, "acme", old, new, code=1),
        reset(home, keyless, "acme", new, code=1),
    ):
        assert "has no key of its own" in one_line(output)
    assert on_chain(home, keyless) == before
    crm = open_crm(home)
    try:
        m = bytes.fromhex(keyless[2:])
        # a majority of partners cannot impose a key on a member that never had one
        with pytest.raises(errors.MemberNoSigner):
            crm.coalition.members.vote_signer_reset(crm.signer("borealis"), m, address(new))
        auth = crm.coalition.members.authorize_signer_change(
            open_customer_key(old, PASSPHRASE), m, address(new)
        )
        with pytest.raises(errors.MemberNoSigner):
            crm.coalition.members.change_signer(crm.signer("borealis"), m, address(new), auth)
    finally:
        crm.close()

    keyed = keyed_customer(home, old)
    reset(home, keyed, "borealis", new)  # 1 of 2: a reset under way when the customer is erased
    # a member with a key is erased by a majority's vote (or her signature), then in her home's store
    for partner in ("acme", "cafe"):
        cli(home, "customer", "erase-vote", keyed, "--partner", partner)
    cli(home, "erase", keyed, "--partner", "acme")
    before = on_chain(home, keyed)
    for output in (
        change(home, keyed, "borealis", old, new, code=1),
        reset(home, keyed, "cafe", new, code=1),  # would have been the second vote
    ):
        assert "was erased" in one_line(output)
    assert on_chain(home, keyed) == before
    crm = open_crm(home)
    try:
        m = bytes.fromhex(keyed[2:])
        with pytest.raises(errors.MemberIsErased):
            crm.coalition.members.vote_signer_reset(crm.signer("cafe"), m, address(new))
    finally:
        crm.close()
    assert on_chain(home, keyed)[1] == address(old)


def test_key_files_are_opened_and_checked_before_anything_is_sent(home):
    old = new_key(home, "old")
    member = keyed_customer(home, old)
    before = on_chain(home, member)
    (home.parent / "wrong").write_text("not the passphrase\n")
    new = Account.create().address
    signing_with = ["customer", "sign", "key-change", "--member", member, "--new-signer", new]
    out = cli(home, *signing_with, "--key", str(old), "--out", str(home.parent / "s.json"),
              "--passphrase-file", str(home.parent / "wrong"), code=1)  # fmt: skip
    assert "wrong passphrase" in one_line(out)
    out = cli(home, *signing_with, "--key", str(home.parent / "pass"), "--out", str(home.parent / "s.json"),
              "--passphrase-file", str(home.parent / "pass"), code=2)  # fmt: skip
    assert "is not a keystore file" in one_line(out)
    assert "key already" in one_line(reset(home, member, "acme", old, code=1))
    # without a passphrase file, the passphrase is asked for
    asked = cli(home, *signing_with, "--key", str(old), "--out", str(home.parent / "s.json"),
                stdin="not it\n", code=1)  # fmt: skip
    assert "passphrase" in asked and "wrong passphrase" in asked
    assert not (home.parent / "s.json").exists()
    # the partner's commands take no key file at all
    assert "No such option" in cli(home, "customer", "key", "reset", member, "--partner", "acme",
                                   "--new-key", str(old), code=2)  # fmt: skip
    assert on_chain(home, member) == before


def test_a_reset_that_became_a_majority_when_a_partner_left_is_applied_by_voting_again(home):
    old, new = new_key(home, "old"), new_key(home, "new")
    member = keyed_customer(home, old)
    found = re.search(r"partner delta: (0x[0-9a-fA-F]{40})", cli(home, "partner", "add", "delta"))
    assert found is not None
    delta = found.group(1)
    cli(home, "governance", "propose", "admit-partner", delta, "--partner", "acme")
    assert "executed" in cli(home, "governance", "vote", "0", "--partner", "borealis")
    cli(home, "partner", "add", "delta")  # now a partner: registered in this home
    assert "1 of 3 votes: not yet reset" in reset(home, member, "acme", new)
    assert "2 of 3 votes: not yet reset" in reset(home, member, "borealis", new)  # 2 of 4 partners
    cli(home, "governance", "propose", "remove", delta, "--partner", "acme")
    cli(home, "governance", "vote", "1", "--partner", "borealis")
    assert "executed" in cli(home, "governance", "vote", "1", "--partner", "cafe")  # 3 partners left
    assert on_chain(home, member)[1] == address(old)  # 2 of 3 now, but nobody has voted since
    assert "2 of 2 votes: signer reset" in reset(home, member, "acme", new)
    assert on_chain(home, member)[1] == address(new)


def test_a_keyed_member_is_erased_by_a_partners_vote_not_by_her_home_alone(home):
    """Issue 30, finding 11, from the command line: the home's `erase` of a member with a key is refused
    (one line) and changes nothing; `customer erase-vote` of a majority erases her on chain, after
    which her home's `erase` finishes the store's part. A keyless member moves by `move-vote`."""
    member = keyed_customer(home, new_key(home, "bea"))
    before = on_chain(home, member)
    refused = one_line(cli(home, "erase", member, "--partner", "acme", code=1))
    assert "own key" in refused and "vote of the partners" in refused
    assert on_chain(home, member) == before
    first = one_line(cli(home, "customer", "erase-vote", member, "--partner", "acme"))
    assert "erasure: 1 of 2 votes: not yet" in first and "acme's vote counts until" in first
    assert "already voted" in one_line(
        cli(home, "customer", "erase-vote", member, "--partner", "acme", code=1)
    )
    assert "erased on chain" in cli(home, "customer", "erase-vote", member, "--partner", "borealis")
    assert "erased" in cli(home, "erase", member, "--partner", "acme")

    plain = cli(home, "customer", "add", "--partner", "acme", "--name", "Cy").strip().splitlines()[-1]
    move = ["customer", "move-vote", plain, "--to", "cafe", "--partner"]
    assert "not yet" in cli(home, *move, "borealis")
    assert "not a partner" in one_line(cli(home, *move[:4], "0x" + "11" * 20, "--partner", "cafe", code=1))
    assert f"home {partner_address(home, 'cafe')}: 2 of 2 votes: moved" in cli(home, *move, "cafe")


# --- no partner command opens a customer's keystore (issue 30, High 2) ------------------------------------

# what only the customer runs, on her own device, with her own keystore
CUSTOMER_SIDE = (("customer", "sign"), ("customer", "key", "new"))
KEYSTORE_OPTIONS = {"--key", "--signer-key", "--passphrase-file", "--new-key", "--customer-key"}


def _commands(command, path=()):
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path, command


def test_no_partner_command_takes_a_customers_keystore_or_passphrase():
    """Walks the whole Typer app: only the customer's own commands open a keystore. (On the code before
    `customer sign binding`: `customer add --signer-key --passphrase-file` and `customer key bind --key`
    failed this.)"""
    import typer

    everything = list(_commands(typer.main.get_command(app)))
    assert len(everything) > 50
    customer_side = [path for path, _ in everything if path[: len(CUSTOMER_SIDE[0])] == CUSTOMER_SIDE[0]]
    assert {"binding", "move", "erasure", "key-change", "redeem"} <= {path[-1] for path in customer_side}
    offending = []
    for path, command in everything:
        if any(path[: len(side)] == side for side in CUSTOMER_SIDE):
            continue
        for param in command.params:
            words = f"{' '.join(param.opts)} {getattr(param, 'help', '') or ''}".lower()
            if KEYSTORE_OPTIONS & set(param.opts) or "keystore" in words or "passphrase" in words:
                offending.append(f"{' '.join(path)} {'/'.join(param.opts)}")
    assert offending == []


def _chain_and_store(home: Path, member: str) -> tuple[int, MemberInfo | None, list[str]]:
    """The chain's height, the member as the chain knows it, and every row of the store and key store:
    what a refusal must leave as it was."""
    import sqlite3

    crm = open_crm(home)
    try:
        height = crm.coalition.chain.w3.eth.block_number
        info = crm.coalition.members.member(bytes.fromhex(member[2:])) if member else None
    finally:
        crm.close()
    rows: list[str] = []
    for name in ("data.sqlite", "keys.sqlite"):
        with sqlite3.connect(home / name) as db:
            rows.extend(db.iterdump())
    return height, info, rows


def _forged(home: Path, signer_key: Path, like: Path) -> Path:
    """The typed data of the file `like`, signed with another key (what a partner that made up a key, or
    holds a stolen one, would hand in)."""
    from api.usecases.signing import read_signature_file, sign, write_signature_file

    out = home.parent / f"forged-{next(_files)}.json"
    write_signature_file(
        out, sign(open_customer_key(signer_key, PASSPHRASE), read_signature_file(like).typed_data)
    )
    return out


def test_a_key_is_bound_only_by_the_binding_file_its_own_key_signed(home):
    """Issue 30, High 2 and Medium 3 at the command line: the customer signs her key's binding on her
    side (`customer sign binding`); `customer add --signer --binding` and `customer key bind --signer
    --binding` take that file, and refuse one signed by another key, for another key or member, or
    relayed by a partner that is not the member's home, writing nothing on or off chain."""
    bea, thief = new_key(home, "bea"), new_key(home, "thief")
    add = ["customer", "add", "--partner", "acme", "--name", "Bea", "--signer", address(bea)]
    by_thief, _ = sign(home, thief, "binding")
    assert by_thief is not None
    own, _ = sign(home, bea, "binding")
    assert own is not None
    before = _chain_and_store(home, "")
    # the thief's own binding, handed in for bea's address; bea's binding signed over by the thief
    assert f"signed for the key {address(thief)}, not {address(bea)}" in one_line(
        cli(home, *add, "--binding", str(by_thief), code=1)
    )
    assert f"not signed by the key {address(bea)}" in one_line(
        cli(home, *add, "--binding", str(_forged(home, thief, own)), code=1)
    )
    # a key file is no longer taken, and --signer alone binds nothing
    assert "No such option: --signer-key" in one_line(cli(home, *add[:6], "--signer-key", str(bea), code=2))
    assert "go together" in one_line(cli(home, *add, code=2))
    assert _chain_and_store(home, "") == before

    keyless = cli(home, "customer", "add", "--partner", "acme", "--name", "Ann").strip().splitlines()[-1]
    for_ann, _ = sign(home, bea, "binding", "--member", keyless)
    assert (
        for_ann is not None and keyless in json.loads(for_ann.read_text())["typedData"]["message"]["member"]
    )
    bind = ["customer", "key", "bind", keyless, "--signer", address(bea)]
    before = _chain_and_store(home, keyless)
    assert (
        f"binding is for member {json.loads(own.read_text())['typedData']['message']['member']}"
        in one_line(cli(home, *bind, "--partner", "acme", "--binding", str(own), code=1))
    )
    assert f"not signed by the key {address(bea)}" in one_line(
        cli(home, *bind, "--partner", "acme", "--binding", str(_forged(home, thief, for_ann)), code=1)
    )
    assert f"partner 'borealis' has no member {keyless}" in one_line(
        cli(home, *bind, "--partner", "borealis", "--binding", str(for_ann), code=1)
    )
    assert _chain_and_store(home, keyless) == before
    # the contract refuses the forged binding too, past the CLI's checks
    crm = open_crm(home)
    try:
        m = bytes.fromhex(keyless[2:])
        forged = crm.coalition.members.authorize_binding(open_customer_key(thief, PASSPHRASE), m)
        with pytest.raises(errors.MemberInvalidSignature):
            crm.coalition.members.bind_signer(crm.signer("acme"), m, address(bea), forged)
    finally:
        crm.close()

    # a binding to a member the chain knows already does not register a new customer (here or elsewhere)
    before = _chain_and_store(home, keyless)
    for partner in ("borealis", "acme"):
        assert f"member {keyless}, which is enrolled already" in one_line(
            cli(home, *add[:3], partner, *add[4:], "--binding", str(for_ann), code=1)
        )
    assert _chain_and_store(home, keyless) == before

    assert f"signer {address(bea)} bound" in cli(home, *bind, "--partner", "acme", "--binding", str(for_ann))
    assert on_chain(home, keyless)[1] == address(bea)
    member = cli(home, *add, "--binding", str(own)).strip().splitlines()[-1]
    assert member == json.loads(own.read_text())["typedData"]["message"]["member"]
    assert on_chain(home, member)[1] == address(bea)


def test_she_moves_her_home_and_erases_herself_by_her_signature_and_only_by_it(home):
    """Issue 30, Medium 11 at the command line: `customer sign move` / `customer sign erasure` on her
    side, relayed with `customer move --signature` / `erase --signature`. Another key's signature, one
    for another member or another new home, one relayed by a partner that does not hold her, and a
    replayed one (its nonce used since) are each refused in words and change nothing on or off chain."""
    bea, thief, cy_key = new_key(home, "bea"), new_key(home, "thief"), new_key(home, "cy")
    member, cy = keyed_customer(home, bea), keyed_customer(home, cy_key, "Cy")
    erasure, _ = sign(home, bea, "erasure", "--member", member)  # signed now: its nonce is used below
    assert erasure is not None
    moves = {
        "thief": sign(home, thief, "move", "--member", member, "--to", "borealis")[0],
        "cafe": sign(home, bea, "move", "--member", member, "--to", "cafe")[0],
        "cy": sign(home, cy_key, "move", "--member", cy, "--to", "borealis")[0],
        "own": sign(home, bea, "move", "--member", member, "--to", "borealis")[0],
    }
    assert None not in moves.values()
    move = ["customer", "move", member, "--partner", "cafe", "--to", "borealis", "--signature"]
    before = _chain_and_store(home, member)
    refusals = {
        "thief": f"made by {address(thief)}, not by member",
        "cafe": f"for a move to {partner_address(home, 'cafe')}, not to {partner_address(home, 'borealis')}",
        "cy": f"is for member {cy}, not {member}",
    }
    for which, words in refusals.items():
        assert words in one_line(cli(home, *move, str(moves[which]), code=1)), which
    assert _chain_and_store(home, member) == before
    crm = open_crm(home)
    try:  # the contract refuses another key's move too, past the CLI's checks
        m = bytes.fromhex(member[2:])
        forged = crm.coalition.members.authorize_home_move(
            open_customer_key(thief, PASSPHRASE), m, partner_address(home, "borealis")
        )
        with pytest.raises(errors.MemberInvalidSignature):
            crm.coalition.members.move_home_signed(
                crm.signer("cafe"), m, partner_address(home, "borealis"), forged
            )
    finally:
        crm.close()

    moved = cli(home, *move, str(moves["own"]))
    assert f"home {partner_address(home, 'borealis')} (was {partner_address(home, 'acme')})" in moved
    after_move = _chain_and_store(home, member)
    assert after_move[1] is not None and after_move[1].home == partner_address(home, "borealis")
    # replayed: the move again, and the erasure signed before the move (its nonce went to the move)
    assert "already used" in one_line(cli(home, *move, str(moves["own"]), code=1))
    erase = ["erase", member, "--partner", "acme", "--signature"]
    assert "already used" in one_line(cli(home, *erase, str(erasure), code=1))
    cy_erasure, _ = sign(home, cy_key, "erasure", "--member", cy)
    assert f"is for member {cy}, not {member}" in one_line(cli(home, *erase, str(cy_erasure), code=1))
    by_thief, _ = sign(home, thief, "erasure", "--member", member)
    assert f"made by {address(thief)}, not by member" in one_line(cli(home, *erase, str(by_thief), code=1))
    fresh, _ = sign(home, bea, "erasure", "--member", member)
    # borealis, her home now, does not hold her data: acme's store does
    assert (
        "no member"
        in one_line(
            cli(home, "erase", member, "--partner", "borealis", "--signature", str(fresh), code=1)
        ).lower()
    )
    assert _chain_and_store(home, member) == after_move
    assert "Bea" in cli(home, "customer", "show", member, "--partner", "acme")

    assert f"erased {member}" in cli(home, *erase, str(fresh))
    assert on_chain(home, member)[1] == address(bea)  # frozen, with its key
    crm = open_crm(home)
    try:
        assert crm.coalition.members.member(bytes.fromhex(member[2:])).erased
    finally:
        crm.close()
    assert "erased" in cli(home, "customer", "show", member, "--partner", "acme", code=1)
