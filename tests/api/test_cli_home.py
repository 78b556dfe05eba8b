"""The CLI against a real node (anvil), as a user would drive it: one process per command."""

import gc
import json
import os
import re
import shutil
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest

from api.cli import app
from api.cli.common import state
from tests.api.clirunner import new_home, runner
from tests.api.clirunner import run as cli


@pytest.fixture
def home(tmp_path, anvil_url):
    return new_home(tmp_path / "home", anvil_url)


def test_a_customers_life_through_the_cli(home, tmp_path):
    for name in ("acme", "borealis", "cafe"):
        cli(home, "partner", "add", name)
    # a newcomer is voted in by the others, each with its own key, when asked
    waiting = cli(home, "partner", "add", "delta")
    assert "not a partner of the consortium yet" in waiting
    found = re.search(r"partner delta: (0x[0-9a-fA-F]{40})", waiting)
    assert found is not None
    delta = found.group(1)
    assert "waiting for a majority" in cli(
        home, "governance", "propose", "admit-partner", delta, "--partner", "acme"
    )
    assert "executed" in cli(home, "governance", "vote", "0", "--partner", "borealis")
    assert "2 of 4" in cli(home, "governance", "proposals")
    assert f"partner delta: {delta}" in cli(home, "partner", "add", "delta")

    out = cli(
        home, "customer", "add", "--partner", "acme", "--name", "Alice Q", "--email", "alice@example.org"
    )
    member = out.strip().splitlines()[-1]
    assert re.fullmatch(r"0x[0-9a-f]{64}", member)
    assert "alice@example.org" in cli(home, "customer", "show", member, "--partner", "acme")
    assert "no member" in cli(home, "customer", "show", member, "--partner", "borealis", code=1)

    cli(
        home,
        "interaction",
        "add",
        "--partner",
        "acme",
        "--member",
        member,
        "--kind",
        "purchase",
        "--data",
        '{"total": 12.5}',
    )
    # pending is not a failure: it is named, with what to do about it
    assert "1 pending: run `ledgercrm anchor`" in cli(home, "verify", member)
    assert "1 leaves" in cli(home, "anchor")
    assert "1 verified" in cli(home, "verify", "--all")
    assert gc.get_freeze_count() == 0  # run inside another program (this test), it froze nothing of it

    assert "no valid 'loyalty' consent" in cli(
        home, "points", "earn", "--partner", "acme", "--member", member, "--amount", "100", code=1
    )
    cli(home, "consent", "give", "--partner", "acme", "--member", member, "--purpose", "loyalty")
    assert "balance 100" in cli(
        home, "points", "earn", "--partner", "acme", "--member", member, "--amount", "100"
    )
    assert "balance 60" in cli(
        home, "points", "redeem", "--partner", "acme", "--member", member, "--amount", "40"
    )
    assert cli(home, "points", "balance", "--member", member).strip() == "60"
    refused = cli(home, "points", "redeem", "--partner", "acme", "--member", member, "--amount", "61", code=1)
    assert "holds 60 points; 61 were asked for" in refused and "Insufficient" not in refused
    history = cli(home, "consent", "history", "--member", member)
    assert "loyalty" in history and "yes" in history

    # a customer with a key of her own redeems at any partner, by her signature
    key, passphrase = tmp_path / "bea.json", tmp_path / "pass"
    passphrase.write_text("correct horse battery\n")
    assert "key 0x" in cli(
        home, "customer", "key", "new", "--out", str(key), "--passphrase-file", str(passphrase)
    )
    her = ["--key", str(key), "--passphrase-file", str(passphrase)]  # on her side, with her own key
    binding = tmp_path / "binding.json"
    assert "SignerBinding signed by" in cli(home, "customer", "sign", "binding", *her, "--out", str(binding))
    signer = json.loads(binding.read_text())["typedData"]["message"]["signer"]
    add = ["customer", "add", "--partner", "acme", "--name", "Bea", "--signer", signer, "--binding"]
    keyed = cli(home, *add, str(binding)).strip().splitlines()[-1]
    consent = tmp_path / "consent.json"
    assert "Consent signed by" in cli(
        home, "customer", "sign", "consent-give", "--member", keyed, "--partner", "acme", "--purpose",
        "loyalty", *her, "--out", str(consent),
    )  # fmt: skip
    cli(home, "consent", "give", "--partner", "acme", "--member", keyed, "--purpose", "loyalty",
        "--signature", str(consent))  # fmt: skip
    cli(home, "points", "earn", "--partner", "acme", "--member", keyed, "--amount", "50")
    assert "signed with it" in cli(
        home, "points", "redeem", "--partner", "delta", "--member", keyed, "--amount", "5", code=1
    )
    redeem = tmp_path / "redeem.json"
    cli(home, "customer", "sign", "redeem", "--member", keyed, "--partner", "delta", "--amount", "5", *her,
        "--out", str(redeem))  # fmt: skip
    assert "balance 45" in cli(
        home,
        "points",
        "redeem",
        "--partner",
        "delta",
        "--member",
        keyed,
        "--amount",
        "5",
        "--signature",
        str(redeem),
    )

    assert "interactions now unreadable" in cli(home, "erase", member, "--partner", "acme")
    assert "was erased" in cli(home, "customer", "show", member, "--partner", "acme", code=1)
    assert "1 erased" in cli(home, "verify", "--all")
    assert "store and chain agree" in cli(home, "reconcile")


def test_user_mistakes_are_one_line_and_a_nonzero_exit(home, tmp_path):
    assert "not a ledgercrm home" in cli(tmp_path / "nowhere", "verify", "--all", code=1)
    assert "already initialised" in cli(home, "init", "--chain", "http://127.0.0.1:1", code=1)
    bad = cli(home, "customer", "show", "0x1234", "--partner", "acme", code=2)
    assert "64 hex digits" in bad
    assert "no partner called 'ghost'" in cli(
        home, "customer", "add", "--partner", "ghost", "--name", "X", code=1
    )
    assert "Traceback" not in cli(
        home,
        "interaction",
        "add",
        "--partner",
        "acme",
        "--member",
        "0x" + "00" * 32,
        "--kind",
        "visit",
        "--data",
        "[1]",
        code=2,
    )


def test_memory_chain_cannot_back_a_home(tmp_path):
    result = runner.invoke(app, ["--home", str(tmp_path / "h"), "init", "--chain", "memory"])
    assert result.exit_code == 1
    assert "lives only as long as one process" in result.output


def test_init_on_the_devnet_starts_it_and_attaches(tmp_path, monkeypatch):
    import subprocess

    from api.usecases.home import DEVNET_SCRIPT
    from ledger.anvil import free_port

    monkeypatch.setenv("DEVNET_PORT", str(free_port()))
    monkeypatch.setenv("DEVNET_STATE_DIR", str(tmp_path / "devnet"))
    try:
        out = cli(tmp_path / "home", "init", "--chain", "devnet")
        assert "Consortium" in out
        cli(tmp_path / "home", "partner", "add", "acme")
        assert "nothing to anchor" in cli(tmp_path / "home", "anchor")
    finally:
        subprocess.run([str(DEVNET_SCRIPT), "down"], check=False, capture_output=True)


def test_import_through_the_cli_is_idempotent(home, tmp_path, monkeypatch):
    import gzip

    csv = tmp_path / "retail.csv.gz"
    with gzip.open(csv, "wt", encoding="utf-8") as out:
        out.write("Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n")
        out.write("489434,85048,LIGHT,12,2009-12-01 07:45:00,6.95,13085,United Kingdom\n")
        out.write("489434,79323P,PINK,12,2009-12-01 07:45:00,6.75,13085,United Kingdom\n")
        out.write("489435,22350,CAT,12,2009-12-01 07:46:00,2.55,13086,France\n")
        out.write("C489449,22087,PAPER,-12,2009-12-01 10:33:00,2.95,13085,United Kingdom\n")
        out.write("489436,21232,MUG,1,2009-12-01 09:06:00,1.25,,United Kingdom\n")
    cli(home, "partner", "add", "acme")
    first = cli(home, "import", "online-retail", str(csv), "--partner", "acme")
    assert re.search(r"customers new\s*│ 2", first) and re.search(r"interactions new\s*│ 3", first)
    assert re.search(r"rows skipped no customer\s*│ 1", first)
    again = cli(home, "import", "online-retail", str(csv), "--partner", "acme")
    assert re.search(r"interactions new\s*│ 0", again) and re.search(r"interactions duplicate\s*│ 3", again)
    # as the script's own process, verify freezes what its imports and the opening made before the run
    # (its full collections skip them); inside another program it does not (test_a_customers_life...)
    assert gc.get_freeze_count() == 0
    monkeypatch.setattr(state, "script", True)
    try:
        assert "3 verified" in cli(home, "verify", "--all")
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def _retail_csv(tmp_path):
    import gzip

    csv = tmp_path / "retail.csv.gz"
    with gzip.open(csv, "wt", encoding="utf-8") as out:
        out.write("Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n")
        out.write("489434,85048,LIGHT,12,2009-12-01 07:45:00,6.95,13085,United Kingdom\n")
        out.write("489435,22350,CAT,12,2009-12-01 07:46:00,2.55,13086,France\n")
    return csv


def _members(home):
    """The imported customers' member ids (customer number -> member), and the chain's and store's
    consent records of each: {(member, purpose): (history length on chain, receipts in the store)}."""
    from api.principal import Principal
    from api.usecases.customers import find_customers_by_ref
    from api.usecases.home import open_crm
    from ledger.clients import PURPOSES, purpose_id
    from offchain.repositories import consents

    crm = open_crm(home)
    try:
        found = find_customers_by_ref(crm, Principal.of_partner("acme"), ["13085", "13086"])
        with crm.unit_of_work() as db:
            acme = crm.partner(db, "acme")
            receipts = [(bytes(r.member_id), r.purpose) for r in consents.of_partner(db, acme.id)]
        records = {
            (member, purpose): (
                crm.coalition.consent.history_length(member, acme.address, purpose_id(purpose)),
                receipts.count((member, purpose)),
            )
            for member in found.values()
            for purpose in PURPOSES
        }
    finally:
        crm.close()
    return found, records


def _consent_check(home, member, purpose, code):
    return cli(
        home,
        "consent",
        "check",
        "--partner",
        "acme",
        "--member",
        "0x" + member.hex(),
        "--purpose",
        purpose,
        code=code,
    )


def test_an_import_attests_loyalty_only_unless_told_more_purposes(home, tmp_path):
    csv = _retail_csv(tmp_path)
    cli(home, "partner", "add", "acme")
    cli(home, "import", "online-retail", str(csv), "--partner", "acme")
    found, records = _members(home)
    assert len(found) == 2
    for member in found.values():
        assert "valid" in _consent_check(home, member, "loyalty", 0)
        assert "not valid" in _consent_check(home, member, "profiling", 1)
        assert records[(member, "loyalty")] == (1, 1)
        assert records[(member, "profiling")] == (0, 0)
    # the source also holds profiling consent: a second run attests it, and only it
    out = cli(
        home, "import", "online-retail", str(csv), "--partner", "acme", "--purposes", "loyalty,profiling"
    )
    assert re.search(r"consents recorded\s*│ 2", out)
    _, records = _members(home)
    for member in found.values():
        assert "valid" in _consent_check(home, member, "profiling", 0)
        assert records[(member, "loyalty")] == (1, 1)
        assert records[(member, "profiling")] == (1, 1)


def test_an_import_with_two_purposes_records_both_once_on_chain(home, tmp_path):
    csv = _retail_csv(tmp_path)
    cli(home, "partner", "add", "acme")
    out = cli(
        home, "import", "online-retail", str(csv), "--partner", "acme", "--purposes", "loyalty,profiling"
    )
    assert re.search(r"consents recorded\s*│ 4", out)
    assert re.search(r"point events\s*│ 2", out)
    again = cli(
        home, "import", "online-retail", str(csv), "--partner", "acme", "--purposes", "profiling,loyalty"
    )
    assert re.search(r"consents recorded\s*│ 0", again)
    found, records = _members(home)
    for member in found.values():
        for purpose in ("loyalty", "profiling"):
            assert "valid" in _consent_check(home, member, purpose, 0)
            assert records[(member, purpose)] == (1, 1)  # not doubled by the re-run
        assert "not valid" in _consent_check(home, member, "marketing", 1)
    assert "store and chain agree" in cli(home, "reconcile")


@pytest.mark.parametrize("purposes", ["loyalty,telepathy", "Loyalty", ","])
def test_an_import_with_an_unknown_purpose_is_refused_with_nothing_written(home, tmp_path, purposes):
    csv = _retail_csv(tmp_path)
    cli(home, "partner", "add", "acme")
    out = cli(home, "import", "online-retail", str(csv), "--partner", "acme", "--purposes", purposes, code=2)
    assert len(out.strip().splitlines()) == 1
    assert "purpose" in out and "loyalty, profiling" in out
    found, _ = _members(home)
    assert found == {}  # no customer, hence no consent, point or interaction, off chain or on
    assert "0 of 0 customers" in cli(home, "customer", "list", "--partner", "acme")
    out = cli(
        home,
        "import",
        "synthetic",
        "--partner",
        "acme",
        "--customers",
        "3",
        "--interactions",
        "5",
        "--purposes",
        purposes,
        code=2,
    )
    assert len(out.strip().splitlines()) == 1
    assert "0 of 0 customers" in cli(home, "customer", "list", "--partner", "acme")


def test_a_homes_folders_and_files_are_its_owners_only(home):
    """A low of issue 30: the store files and the home were world-readable. Whatever the umask."""
    previous = os.umask(0o022)
    try:
        cli(home, "partner", "add", "acme")
        member = cli(home, "customer", "add", "--partner", "acme", "--name", "Zoe").strip().splitlines()[-1]
        cli(
            home,
            "interaction",
            "add",
            "--partner",
            "acme",
            "--member",
            member,
            "--kind",
            "visit",
            "--data",
            "{}",
        )
        cli(home, "anchor")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    seen = {p.name for p in home.rglob("*")}
    assert {"data.sqlite", "keys.sqlite", "config.json", "keys", "acme.key", "acme.kek"} <= seen
    for path in home.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path.relative_to(home)} is {oct(mode)}"


def test_an_interrupted_import_says_so_verify_names_the_customers_the_chain_lacks_and_anchor_sends_them(
    home, monkeypatch
):
    """Seen as a new user (issue 30): Ctrl-C during an import printed nothing and left customers the
    chain did not know, which `verify --all` did not name."""
    from api.usecases import imports

    cli(home, "partner", "add", "acme")
    real, calls = getattr(imports, "send_staged_enrolments"), []  # noqa: B009 (not re-exported)

    def interrupted(*args, **kwargs):  # Ctrl-C once the first chunk's customers are written
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(imports, "send_staged_enrolments", interrupted)
    args = ("import", "synthetic", "--partner", "acme", "--customers", "4", "--interactions", "12")
    out = cli(home, *args, code=130)
    assert (
        out.strip().splitlines()[-1].startswith("error: interrupted") and "run the same import again" in out
    )
    monkeypatch.undo()

    out = cli(home, "verify", "--all")  # pending is not a failure, but each waiting customer is named
    waiting = [line for line in out.splitlines() if "not enrolled on chain yet" in line]
    assert len(waiting) == 4 and all(line.startswith("pending customer 0x") for line in waiting)
    assert "4 customers enrolled" in cli(home, "anchor")  # the advice works
    assert "not enrolled" not in cli(home, "verify", "--all")
    cli(home, *args)  # and the import finishes
    out = cli(home, "verify", "--all")
    assert "pending" not in out and "missing" not in out and "tampered" not in out


def test_a_key_store_restored_after_an_erasure_is_shredded_again_when_the_home_is_opened(home):
    """Medium 7 of issue 30, as an operator meets it: the old key store restored, the next command
    shreds the key again and says so, and `verify --all` fails on it (once)."""
    cli(home, "partner", "add", "acme")
    member = cli(home, "customer", "add", "--partner", "acme", "--name", "Zoe").strip().splitlines()[-1]
    keys, backup = home / "keys.sqlite", home.parent / "keys-backup.sqlite"
    with closing(sqlite3.connect(keys)) as live, closing(sqlite3.connect(backup)) as copy:
        live.backup(copy)
    cli(home, "erase", member, "--partner", "acme")
    for suffix in ("-wal", "-shm"):
        Path(f"{keys}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup, keys)

    out = cli(home, "verify", "--all", code=1)
    assert "warning: the key store held a data key of acme's member " + member in out
    assert f"tampered key of {member} of acme:" in out and "shredded again" in out
    assert "was erased" in cli(home, "customer", "show", member, "--partner", "acme", code=1)
    assert "warning" not in cli(home, "verify", "--all")  # shredded for good
