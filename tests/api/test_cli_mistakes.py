"""Every mistake a partner makes at the command line: one readable line, a non-zero exit, and no change.

One home on anvil serves the module; each test asserts that the store, the key store and the chain are
exactly as they were after its mistake (a failed command writes nothing, on or off chain).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from api.cli import app
from tests.api.clirunner import run, runner

HEADER = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, anvil_url: str) -> Path:
    path = tmp_path_factory.mktemp("mistakes") / "home"
    run(path, "init", "--chain", anvil_url)
    for name in ("acme", "borealis"):
        run(path, "partner", "add", name)
    return path


@pytest.fixture(scope="module")
def member(home: Path) -> str:
    out = run(home, "customer", "add", "--partner", "acme", "--name", "Alice", "--external-ref", "C-1")
    member = out.split()[-1]
    run(home, "consent", "give", "--partner", "acme", "--member", member, "--purpose", "loyalty")
    run(home, "points", "earn", "--partner", "acme", "--member", member, "--amount", "100")
    return member


def snapshot(home: Path) -> tuple[list[str], list[str], str]:
    """Every row of both stores, and the chain's block number."""
    config = json.loads((home / "config.json").read_text())
    request = urllib.request.Request(
        config["rpc_url"],
        data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        block = json.load(response)["result"]
    dumps = []
    for name in ("data.sqlite", "keys.sqlite"):
        with sqlite3.connect(home / name) as db:
            dumps.append(list(db.iterdump()))
    return dumps[0], dumps[1], block


@contextmanager
def unchanged(home: Path) -> Iterator[None]:
    before = snapshot(home)
    yield
    assert snapshot(home) == before, "a failed command changed the store or the chain"


BYTES_REPR = re.compile(r"(?<!\w)b['\"]")


def one_line(output: str) -> str:
    """The error, which must be a single line of words: no traceback, no Python repr."""
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    # a bytes repr is b'...' after a space or bracket; "0x…cb's home" (an id, then an apostrophe) is words
    assert "Traceback" not in output and "Error(" not in output and not BYTES_REPR.search(output), output
    return lines[0]


@pytest.mark.parametrize("amount", [2**63, 2**64, 2**300])
def test_an_amount_beyond_what_can_be_stored_is_refused_in_words(home, member, amount):
    with unchanged(home):
        out = run(
            home, "points", "earn", "--partner", "acme", "--member", member, "--amount", str(amount), code=2
        )
    assert "an amount is a whole number of points from 1 to 1,000,000,000" in one_line(out)


def test_the_largest_storable_amount_is_a_question_for_the_chain_not_a_crash(home, member):
    # the per-call cap passes the use case's bound; what the chain says of it is then the answer, in words
    result = runner.invoke(
        app,
        [
            "--home",
            str(home),
            "points",
            "redeem",
            "--partner",
            "acme",
            "--member",
            member,
            "--amount",
            str(10**9),
        ],
    )
    assert result.exit_code == 1
    assert "holds 100 points; 1,000,000,000 were asked for" in one_line(result.output)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b"a,b,c\n1,2,3\n",
            "not an Online Retail II file: its header is a, b, c; expected Invoice, StockCode",
        ),
        (b"", "the file is empty"),
    ],
)
def test_a_csv_that_is_not_online_retail_is_one_line(home, tmp_path, content, expected):
    path = tmp_path / "retail.csv"
    path.write_bytes(content)
    with unchanged(home):
        out = run(home, "import", "online-retail", str(path), "--partner", "acme", code=2)
    assert expected in one_line(out) and "['" not in out and "None" not in out


def test_a_gz_that_is_not_gzip_is_one_line(home, tmp_path):
    path = tmp_path / "retail.csv.gz"
    path.write_text(HEADER)
    with unchanged(home):
        out = run(home, "import", "online-retail", str(path), "--partner", "acme", code=2)
    assert "the name ends in .gz but the file is not gzip-compressed" in one_line(out)


def test_a_truncated_gzip_is_one_line_not_aborted(home, tmp_path):
    rows = "".join(
        f"{489434 + i},85048,LIGHT,1,2009-12-01 07:45:00,6.95,{13000 + i},France\n" for i in range(3000)
    )
    data = gzip.compress((HEADER + rows).encode())
    path = tmp_path / "retail.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with unchanged(home):
        out = run(home, "import", "online-retail", str(path), "--partner", "acme", code=2)
    line = one_line(out)
    assert "the gzip stream is truncated or corrupt" in line and "Aborted" not in out


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ("LIGHT,twelve,2009-12-01 07:45:00,6.95", "data row 2: quantity 'twelve' is not an integer"),
        ("LIGHT,12,2009-12-01 07:45:00,£6.95", "data row 2: price '£6.95' is not a number"),
    ],
)
def test_a_bad_cell_is_one_line_naming_its_row(home, tmp_path, cells, expected):
    path = tmp_path / "retail.csv"
    good = "489434,85048,LIGHT,12,2009-12-01 07:45:00,6.95,13085,United Kingdom\n"
    path.write_text(HEADER + good + f"489435,85049,{cells},13086,United Kingdom\n")
    out = run(home, "import", "online-retail", str(path), "--partner", "acme", code=2)
    line = one_line(out)
    assert expected in line and "Traceback" not in out and "InvalidOperation" not in out, out


def test_a_second_import_of_the_same_partner_says_one_is_running(home, tmp_path):
    path = tmp_path / "retail.csv"
    path.write_text(HEADER + "489434,85048,LIGHT,12,2009-12-01 07:45:00,6.95,13085,United Kingdom\n")
    lock = home / "locks" / "import-acme.lock"
    lock.parent.mkdir(exist_ok=True)
    # another process holds the import lock, as a running import does
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            f"f = open({str(lock)!r}, 'a'); fcntl.flock(f, fcntl.LOCK_EX)\n"
            "print('held', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with unchanged(home):
            out = run(home, "import", "online-retail", str(path), "--partner", "acme", code=1)
        assert "an import into acme is already running; wait for it to finish" in one_line(out)
        # the lock is per partner: an import into another partner is not held up
        assert "interactions new" in run(home, "import", "online-retail", str(path), "--partner", "borealis")
    finally:
        holder.kill()
        holder.wait()


def test_redeeming_above_the_balance_is_said_in_words(home, member):
    with unchanged(home):
        out = run(
            home, "points", "redeem", "--partner", "acme", "--member", member, "--amount", "101", code=1
        )
    line = one_line(out)
    assert f"member {member} holds 100 points; 101 were asked for" in line
    assert "Insufficient" not in line and "needed=" not in line


def test_a_consent_expiring_in_the_past_is_said_with_dates(home, member):
    with unchanged(home):
        out = run(
            home,
            "consent",
            "give",
            "--partner",
            "acme",
            "--member",
            member,
            "--purpose",
            "marketing",
            "--expires",
            "2020-01-01T00:00:00+00:00",
            code=1,
        )
    line = one_line(out)
    assert "the expiry 2020-01-01 00:00:00 UTC is not in the future (the chain's time is 20" in line
    assert "expiresAt=" not in line


def test_a_mismatch_found_by_verify_is_said_in_hex(home, member):
    run(
        home, "interaction", "add", "--partner", "acme", "--member", member, "--kind", "visit", "--data", "{}"
    )
    run(home, "anchor")
    with sqlite3.connect(home / "data.sqlite") as db:
        (row,) = db.execute("SELECT id, leaf_hash FROM interactions ORDER BY id DESC LIMIT 1").fetchall()
        original = row[1]
        db.execute("UPDATE interactions SET leaf_hash = ? WHERE id = ?", (b"\x9f" * 32, row[0]))
    try:
        out = run(home, "verify", member, code=1)
        assert not BYTES_REPR.search(out) and "\\x" not in out, out
        assert re.search(r"0x[0-9a-f]{16}", out), out
    finally:
        with sqlite3.connect(home / "data.sqlite") as db:
            db.execute("UPDATE interactions SET leaf_hash = ? WHERE id = ?", (original, row[0]))
    assert "verified" in run(home, "verify", member)


def test_the_same_external_key_with_other_data_is_a_conflict(home, member):
    args = ["interaction", "add", "--partner", "acme", "--member", member, "--kind", "purchase"]
    run(home, *args, "--external-key", "INV1", "--data", '{"total": 10}')
    assert "already recorded: INV1" in run(home, *args, "--external-key", "INV1", "--data", '{"total": 10}')
    with unchanged(home):
        out = run(home, *args, "--external-key", "INV1", "--data", '{"total": 99}', code=1)
    line = one_line(out)
    assert "INV1" in line and "differ" in line


def test_a_duplicate_customer_number_is_said_in_words(home, member):
    with unchanged(home):
        out = run(
            home, "customer", "add", "--partner", "acme", "--name", "Bob", "--external-ref", "C-1", code=1
        )
    line = one_line(out)
    assert "C-1" in line and "UNIQUE" not in line and "constraint" not in line
    # the same number at another partner is another customer
    assert re.fullmatch(
        r"0x[0-9a-f]{64}\n",
        run(home, "customer", "add", "--partner", "borealis", "--name", "Bob", "--external-ref", "C-1"),
    )


def test_square_brackets_in_a_message_are_printed_as_given(home):
    with unchanged(home):
        out = run(home, "customer", "show", "0x" + "ab" * 32, "--partner", "[acme]", code=1)
    assert "[acme]" in one_line(out)


def test_init_with_an_unknown_chain_names_what_it_takes(tmp_path):
    out = run(tmp_path / "h", "init", "--chain", "foo", code=2)
    assert "--chain takes devnet or an http(s) JSON-RPC URL" in out and "memory" not in out
    assert not (tmp_path / "h").exists()


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--email", "not-an-email", "--email: value is not a valid email address"),
        ("--country", "uk", "--country: a two-letter country code in capitals (ISO 3166-1), such as GB"),
    ],
)
def test_bad_customer_data_is_refused_before_anything_is_written(home, option, value, expected):
    with unchanged(home):
        out = run(home, "customer", "add", "--partner", "acme", "--name", "X", option, value, code=2)
    assert expected in one_line(out)


def test_data_comes_from_a_file_or_stdin_within_a_stated_limit(home, member, tmp_path):
    args = ["interaction", "add", "--partner", "acme", "--member", member, "--kind", "email"]
    payload = tmp_path / "data.json"
    payload.write_text(json.dumps({"text": "x" * 50_000}))
    assert "recorded" in run(home, *args, "--external-key", "F1", "--data", f"@{payload}")
    assert "recorded" in run(home, *args, "--external-key", "S1", "--data", "-", stdin='{"from": "stdin"}')
    payload.write_text(json.dumps({"text": "x" * 70_000}))
    with unchanged(home):
        too_big = run(home, *args, "--external-key", "F2", "--data", f"@{payload}", code=2)
        missing = run(home, *args, "--external-key", "F3", "--data", f"@{tmp_path / 'nope.json'}", code=2)
        not_object = run(home, *args, "--external-key", "F4", "--data", "[1]", code=2)
    assert "--data: at most 64 KiB of JSON" in one_line(too_big)
    assert "--data: cannot read" in one_line(missing) and "No such file" in missing
    assert "--data: must be a JSON object" in one_line(not_object)


# --- seen as a new user would (issue 30) -------------------------------------------------------------------


def test_an_unknown_purpose_in_consent_check_is_one_line(home, member):
    before = snapshot(home)
    result = runner.invoke(
        app,
        [
            "--home",
            str(home),
            "consent",
            "check",
            "--partner",
            "acme",
            "--member",
            member,
            "--purpose",
            "Loyalty",
        ],
    )
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "error: unknown purpose 'Loyalty': one of loyalty, profiling, marketing, analytics,"
        " personalisation, research"
    ]
    assert snapshot(home) == before


@pytest.mark.parametrize(
    "args, words",
    [
        (["verify", "--bogus"], "No such option: --bogus"),
        (["points", "earn", "--partner", "acme"], "Missing option '--member'"),
        (
            ["points", "earn", "--partner", "acme", "--member", "0x" + "00" * 32, "--amount", "ten"],
            "'--amount'",
        ),
        (["customer", "show", "0x12", "--partner", "acme"], "64 hex digits"),
        (
            [
                "consent",
                "give",
                "--partner",
                "acme",
                "--member",
                "0x" + "00" * 32,
                "--purpose",
                "loyalty",
                "--customer-key",
                "k.json",
            ],
            "No such option: --customer-key",
        ),
    ],
)
def test_a_malformed_option_is_one_line_and_exit_2(home, args, words):
    result = runner.invoke(app, ["--home", str(home), *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and lines[0].startswith("error: "), result.output
    assert "--help` lists what it takes" in lines[0]


def test_help_shows_no_type_for_a_flag():
    out = runner.invoke(app, ["verify", "--help"]).output
    assert "--all" in out and "<bool>" not in out
    assert "ADDRESS" in out  # an option with a value still names it


def test_counts_are_singular_for_one_and_tables_keep_ids_whole_in_a_pipe(home, member):
    out = run(home, "points", "redeem", "--partner", "acme", "--member", member, "--amount", "1")
    assert out.startswith("redeemed 1 point;")
    assert "1 of 1 customer" in run(home, "customer", "list", "--partner", "acme", "--search", "Alice")
    run(
        home, "interaction", "add", "--partner", "acme", "--member", member, "--kind", "visit", "--data", "{}"
    )
    # a real pipe (80 columns for Rich): every id and address on one line, whole
    for command, whole in (
        (["partner", "list"], re.compile(r"0x[0-9a-fA-F]{40}")),
        (["consent", "history", "--member", member], re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")),
        (["interaction", "list", "--partner", "acme", "--member", member], re.compile(r"\d\d:\d\d:\d\d")),
    ):
        ledgercrm = Path(sys.executable).parent / "ledgercrm"
        piped = subprocess.run(
            [str(ledgercrm), "--home", str(home), *command],
            capture_output=True, text=True, check=True, env={**os.environ, "COLUMNS": "80"},
        )  # fmt: skip
        assert whole.search(piped.stdout), (command, piped.stdout)


def test_an_invitation_prints_its_link_once_and_a_mistaken_one_changes_nothing(home, member):
    with unchanged(home):
        out = run(home, "customer", "invite", member, "--partner", "acme", "--expires", "7x", code=2)
    assert "--expires: a duration is a number and m, h or d" in one_line(out)
    with unchanged(home):
        out = run(home, "customer", "invite", member, "--partner", "acme", "--url", "ftp://x", code=2)
    assert "--url: an http:// or https:// address" in one_line(out)
    with unchanged(home):  # another partner's customer: as if there were none
        out = run(home, "customer", "invite", member, "--partner", "borealis", code=1)
    assert f"partner 'borealis' has no member {member}" in one_line(out)

    out = run(home, "customer", "invite", member, "--partner", "acme", "--url", "https://crm.example.org/")
    link = re.search(r"https://crm\.example\.org/me/invite#(inv_[\w-]+)", out)
    assert link is not None, out
    code = link.group(1)
    assert out.strip().splitlines()[-1] == code
    with sqlite3.connect(home / "data.sqlite") as db:  # the store holds its hash, never the code
        dump = "\n".join(db.iterdump())
    assert code not in dump and 'INSERT INTO "invitations"' in dump


# --- one exit code per kind of mistake (docs/cli.md) -----------------------------------------------------

NOBODY = "0x" + "00" * 32
GIVE = ["consent", "give", "--member", "{member}", "--purpose", "loyalty"]
EARN = ["points", "earn", "--partner", "acme", "--member", "{member}", "--amount"]


@pytest.mark.parametrize(
    ("kind", "args", "code"),
    [
        # 2: the command line is malformed, whatever the state: Typer's usage errors and our own parsing
        ("unknown option", ["verify", "--bogus"], 2),
        ("missing option", ["points", "earn", "--partner", "acme"], 2),
        ("member id", ["customer", "show", "0x12", "--partner", "acme"], 2),
        ("time", [*GIVE, "--partner", "acme", "--expires", "tomorrow"], 2),
        ("address", ["customer", "key", "reset", "{member}", "--partner", "acme", "--new-signer", "0x12"], 2),
        ("address", ["governance", "propose", "admit-partner", "0xnope", "--partner", "acme"], 2),
        (
            "address",
            [
                "customer",
                "key",
                "bind",
                "{member}",
                "--partner",
                "acme",
                "--signer",
                "0x12",
                "--binding",
                "{signed}",
            ],
            2,
        ),
        ("duration", ["token", "issue", "--partner", "acme", "--expires", "3 weeks"], 2),
        (
            "purpose",
            ["consent", "check", "--partner", "acme", "--member", "{member}", "--purpose", "Loyalty"],
            2,
        ),
        ("customer data", ["customer", "update", "{member}", "--partner", "acme", "--country", "uk"], 2),
        ("unreadable file", [*GIVE, "--partner", "acme", "--signature", "{missing}"], 2),
        ("not a signature file", [*GIVE, "--partner", "acme", "--signature", "{not_json}"], 2),
        (
            "unreadable file",
            [
                "interaction",
                "add",
                "--partner",
                "acme",
                "--member",
                "{member}",
                "--kind",
                "email",
                "--data",
                "@{missing}",
            ],
            2,
        ),
        ("unreadable file", ["import", "online-retail", "{missing}", "--partner", "acme"], 2),
        ("chain URL", ["--home", "{fresh}", "init", "--chain", "ftp://x"], 2),
        ("partner name", ["partner", "add", "BAD NAME"], 2),
        ("amount", [*EARN, "0"], 2),
        # 1: well formed, and refused by the rules or by the chain
        ("not found", ["customer", "show", NOBODY, "--partner", "acme"], 1),
        ("not found", ["customer", "show", "{member}", "--partner", "borealis"], 1),
        ("unknown partner", ["customer", "list", "--partner", "nobody"], 1),
        ("not allowed", [*GIVE, "--partner", "borealis"], 1),
        ("a rule", ["points", "redeem", "--partner", "acme", "--member", "{member}", "--amount", "1000"], 1),
        (
            "a rule",
            ["customer", "key", "change", "{member}", "--partner", "acme", "--signature", "{signed}"],
            1,
        ),
        ("the chain", ["governance", "vote", "99", "--partner", "borealis"], 1),
    ],
)
def test_each_kind_of_mistake_has_its_exit_code(home, member, tmp_path, kind, args, code):
    """2 for a command line that does not parse (Typer's usage errors and our own: an address, a time, a
    duration, a purpose, a member id, a file that cannot be read or is not what it should be), 1 for a
    refusal by the rules or the chain, a thing not found; always one line, and nothing written."""
    not_json = tmp_path / "signature.json"
    not_json.write_text("{not json")
    signed = tmp_path / "signed.json"  # well formed, for a member without a key
    signed.write_text(json.dumps({"schema": "ledgercrm/customer-signature/v1", "signature": "0x" + "11" * 65,
                                  "typedData": {"primaryType": "SignerChange", "message": {}}}))  # fmt: skip
    values = {"member": member, "missing": str(tmp_path / "missing.json"), "not_json": str(not_json),
              "signed": str(signed), "fresh": str(tmp_path / "fresh")}  # fmt: skip
    filled = [arg.format(**values) for arg in args]
    if filled[0] != "--home":
        filled = ["--home", str(home), *filled]
    with unchanged(home):
        result = runner.invoke(app, filled)
    assert result.exit_code == code, (kind, result.output)
    assert one_line(result.output).startswith("error: "), kind
