"""The decision layer at the command line, on anvil: train and register a model, list it and read its
card, segments with a plot, score (decisions on chain, consent enforced), list, show and verify a
decision (with and without keys), recommendations; and the mistakes a user makes, each one line."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from api.principal import Principal
from api.usecases.home import open_crm
from ledger.anvil import free_port
from ledger.clients.consent import purpose_id
from tests.api.clirunner import run, runner

HOLDOUT = "2024-09-01"
AS_OF = "2024-12-01"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, anvil_url: str) -> Path:
    path = tmp_path_factory.mktemp("cli-decisions") / "home"
    run(path, "init", "--chain", anvil_url)
    for name in ("acme", "borealis"):
        run(path, "partner", "add", name)
    run(path, "import", "synthetic", "--partner", "acme", "--seed", "11", "--customers", "200",
        "--interactions", "2500", "--purposes", "loyalty,profiling")  # fmt: skip
    return path


@pytest.fixture(scope="module")
def trained(home: Path) -> str:
    out = run(home, "model", "train", "--partner", "acme", "--horizon-days", "90", "--as-of", HOLDOUT,
              "--no-backtest")  # fmt: skip
    assert "action rule: act on the 20% of scored members most at risk" in out, out
    assert "registered: refitted on the" in out
    assert "EBM (registered)" in out and "HistGradientBoosting" in out and "logistic" in out.lower(), out
    found = re.search(r"model hash 0x([0-9a-f]{64}), model id (\d+)", out)
    assert found, out
    return found.group(2)


@pytest.fixture(scope="module")
def consented(home: Path, trained: str) -> tuple[list[str], list[str]]:
    """acme's customers (all with profiling consent from the import) in order, scored one at a time
    until two of them are in the model's population; and those two. Which customers come first depends
    on their random member ids, so a customer outside the population is possible."""
    listing = run(home, "customer", "list", "--partner", "acme", "--per-page", "200")
    ids = re.findall(r"0x[0-9a-f]{64}", listing)
    chosen: list[str] = []
    for member in ids:
        out = run(home, "score", "--partner", "acme", "--member", member, "--as-of", AS_OF)
        if "1 decided" in out:
            chosen.append(member)
        if len(chosen) == 2:
            return ids, chosen
    raise AssertionError("no two members in the model's population")


@pytest.fixture(scope="module")
def members(consented: tuple[list[str], list[str]]) -> list[str]:
    """Two of acme's customers with profiling consent who are in the model's population."""
    return consented[1]


def test_model_list_and_card(home, trained):
    listing = run(home, "model", "list")
    assert re.search(
        rf"^{trained} acme 0x[0-9a-f]{{64}} block \d+ holdout AUC 0\.\d+ on chain: yes$", listing, re.M
    )
    card = json.loads(run(home, "model", "card", trained))
    assert card["split"]["holdout"]["asOf"].startswith(HOLDOUT)
    assert "fairness" in card and "limitations" in card and card["provenance"]["partner"] == "acme"


def test_score_logs_decisions_and_counts_who_was_skipped(home, trained, consented):
    ids, chosen = consented
    withdrawn = [m for m in reversed(ids) if m not in chosen][:2]
    for member in withdrawn:  # two customers withdraw their profiling consent: they are not scored
        run(home, "consent", "withdraw", "--partner", "acme", "--member", member, "--purpose", "profiling")
    out = run(home, "score", "--partner", "acme", "--all", "--as-of", AS_OF)
    counts = re.search(
        r"(\d+) decided, (\d+) skipped for consent, (\d+) inputs excluded(?: \([^)]*\))?, (\d+) no inputs"
        r"(?:, (\d+) outside the population \([^)]*\))?(?:, (\d+) erased)?",
        out,
    )
    assert counts, out
    decided, skipped, excluded, no_inputs, outside, erased = (int(n or 0) for n in counts.groups())
    assert f"as of {AS_OF} 00:00 UTC (as given)" in out
    assert re.search(r"action rule: act on the 20% of scored members most at risk, among the \d+", out), out
    # every consenting customer in the population is decided; every other one is counted once
    assert skipped == len(withdrawn) and decided >= len(chosen), out
    assert decided + skipped + excluded + no_inputs + outside + erased == 200, out


def test_decision_list_show_verify(home, trained, members):
    lines = run(home, "decision", "list", "--partner", "acme", "--member", members[0]).splitlines()
    assert lines and all(line.split()[1] == members[0] for line in lines)
    decision_id = lines[0].split()[0]
    shown = run(home, "decision", "show", decision_id, "--partner", "acme")
    assert "churn score" in shown and "reason:" in shown and "exact: logit" in shown
    assert "action rule: act on the 20% of scored members most at risk; ranked among" in shown
    verified = run(home, "decision", "verify", decision_id)
    assert f"decision {decision_id}: reproduced" in verified
    for name in ("model", "consent", "inputs", "score", "explanation"):
        assert f"ok {name}:" in verified
    audited = run(home, "decision", "verify", decision_id, "--auditor", code=1)
    assert "not run: score, explanation" in audited and "FAILED" not in audited
    disclosure = home.parent / f"disclosure-{decision_id}.json"
    run(home, "decision", "disclose", decision_id, "--partner", "acme", "--out", str(disclosure))
    assert oct(disclosure.stat().st_mode)[-3:] == "600"
    out = run(
        home, "decision", "disclose", decision_id, "--partner", "acme", "--out", str(disclosure), code=2
    )
    assert "exists" in out
    reproduced = run(home, "decision", "verify", decision_id, "--auditor", "--disclosure", str(disclosure))
    assert f"decision {decision_id}: reproduced" in reproduced and "features from the inputs" in reproduced
    out = run(home, "decision", "verify", decision_id, "--disclosure", str(disclosure), code=2)
    assert "add --auditor" in out


def test_another_partner_sees_nothing_of_acmes_decisions(home, trained, members):
    lines = run(home, "decision", "list", "--partner", "acme").splitlines()
    decision_id = lines[0].split()[0]
    out = run(home, "decision", "show", decision_id, "--partner", "borealis", code=1)
    assert out.startswith("error:") and "made no decision" in out and "churn score" not in out
    assert run(home, "decision", "list", "--partner", "borealis").strip() == "no decisions"
    out = run(home, "score", "--partner", "borealis", "--member", members[0], code=1)
    assert "error:" in out and "has no member" in out
    out = run(home, "score", "--partner", "borealis", "--all", "--model", trained, code=1)
    assert "registered by another partner" in out


def test_an_edited_decision_fails_verification(home, trained, members):
    lines = run(home, "decision", "list", "--partner", "acme", "--member", members[1]).splitlines()
    decision_id = lines[0].split()[0]
    with sqlite3.connect(home / "data.sqlite") as db:
        db.execute("UPDATE decisions SET score_bps = score_bps + 1 WHERE decision_id = ?", [decision_id])
    out = run(home, "decision", "verify", decision_id, code=1)
    assert "FAILED record" in out and "NOT reproduced" in out


def test_recommend(home, members):
    out = run(home, "recommend", "--partner", "acme", "--member", members[0], "--top", "5")
    assert re.match(r"1\. \S+", out)
    assert len(out.strip().splitlines()) <= 5


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["score", "--partner", "acme"], "give --member MEMBER or --all"),
        (["score", "--partner", "acme", "--all", "--as-of", "yesterday"], "not an ISO 8601 date"),
        (["score", "--partner", "acme", "--all", "--model", "99"], "no model 99"),
        (["decision", "show", "999999", "--partner", "acme"], "the chain logged no decision 999999"),
        (["decision", "verify", "999999"], "the chain logged no decision 999999"),
        (["model", "card", "42"], "no model 42"),
        (["model", "train", "--partner", "borealis"], "no verified interactions to train on"),
        (["model", "train", "--partner", "acme", "--horizon-days", "0"], "a horizon is 1 to 730 days"),
        (["model", "train", "--partner", "acme", "--budget", "lots"], "--budget is a share (e.g. 20%)"),
        (["model", "train", "--partner", "acme", "--budget", "150%"], "at most 100%"),
        (["model", "train", "--partner", "acme", "--offer-cost", "5"], "needs both --offer-cost and"),
        (["model", "train", "--partner", "acme", "--offer-cost", "50", "--loss-cost", "10"], "never worth"),
        (["model", "train", "--partner", "acme", "--budget", "9", "--loss-cost", "10"], "not both"),
        (["segments", "--partner", "acme", "--plot", "out.txt"], "the plot is a .png file"),
        (["recommend", "--partner", "acme", "--member", "0x" + "00" * 32], "has no member"),
    ],
)
def test_mistakes_are_one_clear_line(home, trained, args, words):
    from api.cli import app

    before = _rows(home)
    result = runner.invoke(app, ["--home", str(home), *args])
    assert result.exit_code != 0 and words in result.output, result.output
    assert "Traceback" not in result.output
    assert _rows(home) == before  # nothing written (the file's bytes can move with a WAL checkpoint)


def _rows(home: Path) -> list[str]:
    with sqlite3.connect(home / "data.sqlite") as db:
        return list(db.iterdump())


def test_decision_verify_reads_the_chain_without_web3(home, trained, members):
    """`decision verify` opens the home with the JSON-RPC reader (ledger/reader.py, no signing key): its
    answers are the web3 clients' for the decisions this module logged, and the hostile cases fail
    through it: another partner's decision, a model edited in the store, an input's leaf edited."""
    from api.errors import NotAllowed
    from api.usecases.decision_verification import verify_decision
    from api.usecases.home_open import open_crm_to_verify
    from ledger.reader import ReadCoalition

    lines = run(home, "decision", "list", "--partner", "acme", "--member", members[0]).splitlines()
    decision_id = int(lines[0].split()[0])
    lean, full = open_crm_to_verify(home), open_crm(home)
    try:
        reader, clients = lean.coalition, full.coalition
        assert isinstance(reader, ReadCoalition) and lean.signers == {}
        found = clients.decisions.decision(decision_id)
        assert found is not None and reader.decisions.decision(decision_id) == found
        member, partner = found.decision.member, found.partner
        assert reader.decisions.decisions(member=member) == clients.decisions.decisions(member=member)
        assert reader.decisions.decisions(partner=partner) == clients.decisions.decisions(partner=partner)
        assert reader.decisions.model(found.model_id) == clients.decisions.model(found.model_id)
        assert reader.anchor.heads(partner) == clients.anchor.heads(partner)
        at = (member, partner, purpose_id("profiling"), found.block_number)
        assert reader.consent.is_valid_at_block(*at) is clients.consent.is_valid_at_block(*at) is True
        assert reader.members.erasures() == clients.members.erasures()
        assert verify_decision(lean, Principal.operator(), decision_id).ok
        with pytest.raises(NotAllowed, match="made by another partner"):
            verify_decision(lean, Principal.of_partner("borealis"), decision_id)
        with sqlite3.connect(home / "data.sqlite") as db:
            (inputs,) = db.execute(
                "SELECT input_ids FROM decisions WHERE decision_id = ?", [decision_id]
            ).fetchone()
    finally:
        lean.close()
        full.close()
    first_input = json.loads(inputs)[0]
    edits = [
        ("models", "model_json", "onchain_id", int(trained), "FAILED model"),
        ("interactions", "leaf_hash", "id", first_input, "FAILED inputs"),
    ]
    for table, column, key, value, failed in edits:
        with sqlite3.connect(home / "data.sqlite") as db:
            (kept,) = db.execute(f"SELECT {column} FROM {table} WHERE {key} = ?", [value]).fetchone()
            edited = kept + " " if isinstance(kept, str) else bytes([kept[0] ^ 1]) + kept[1:]
            db.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", [edited, value])
        try:
            for mode in ([], ["--auditor"]):
                out = run(home, "decision", "verify", str(decision_id), *mode, code=1)
                assert failed in out and "NOT reproduced" in out, out
        finally:
            with sqlite3.connect(home / "data.sqlite") as db:
                db.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", [kept, value])
    assert f"decision {decision_id}: reproduced" in run(home, "decision", "verify", str(decision_id))


def test_score_signs_and_sends_without_web3_as_the_web3_clients_do(home, trained, members, anvil_url):
    """`score` opens the home with the JSON-RPC reader and the lean decision sender (ledger/sender.py):
    its reads are the web3 clients' answers, its signed recordDecisions is byte for byte the web3 chain
    client's (same calldata, nonce, fees, gas, signature), another partner's batch with acme's model is
    refused by the simulation with the same named error before anything is signed or sent, and a batch it
    sends is mined with the chain's ids; sent again, its taken nonce is NonceTaken."""
    from api.usecases.home_open import open_crm_to_decide
    from ledger.errors import ContractRevert, NonceTaken
    from ledger.reader import JsonRpc

    rpc = JsonRpc(anvil_url).request

    lean, full = open_crm_to_decide(home), open_crm(home)
    try:
        reader, clients = lean.coalition, full.coalition
        assert {n: k.address for n, k in lean.signers.items()} == {
            n: k.address for n, k in full.signers.items()
        }
        acme, borealis = full.signer("acme").address, full.signer("borealis").address
        ids = [bytes.fromhex(m[2:]) for m in members] + [bytes(32)]
        for purpose in (purpose_id("profiling"), purpose_id("loyalty")):
            assert reader.consent.are_valid(ids, acme, purpose) == clients.consent.are_valid(
                ids, acme, purpose
            )
        assert reader.members.enrolled_by(acme) == clients.members.enrolled_by(acme) != {}
        assert reader.anchor.genesis_leaf(acme) == clients.anchor.genesis_leaf(acme)
        logged = clients.decisions.decisions(partner=acme)[:3]
        model_id, batch = logged[0].model_id, [d.decision for d in logged]
        signed = reader.decisions.prepare_record_decisions(lean.signer("acme"), model_id, batch)
        assert signed == clients.decisions.prepare_record_decisions(full.signer("acme"), model_id, batch)

        sent_before = rpc("eth_getTransactionCount", [borealis, "pending"])
        with pytest.raises(ContractRevert) as refused:
            reader.decisions.prepare_record_decisions(lean.signer("borealis"), model_id, batch)
        assert type(refused.value) is not ContractRevert  # a named custom error
        with pytest.raises(type(refused.value)):
            clients.decisions.prepare_record_decisions(full.signer("borealis"), model_id, batch)
        assert rpc("eth_getTransactionCount", [borealis, "pending"]) == sent_before

        snapshot = rpc("evm_snapshot", [])
        try:
            assert reader.decisions.lookup(signed.tx_hash) is None  # never sent
            reader.decisions.broadcast(signed)
            mined = reader.decisions.wait(signed.tx_hash)
            assert reader.decisions.lookup(signed.tx_hash) == mined
            first = reader.decisions.onchain_id(mined)
            assert first == clients.decisions.onchain_id(clients.decisions.lookup(signed.tx_hash))  # type: ignore[arg-type]
            again = [found.decision for found in reader.decisions.decisions(partner=acme)[-len(batch) :]]
            assert again == batch and reader.decisions.decision(first).decision == batch[0]  # type: ignore[union-attr]
            with pytest.raises(NonceTaken):
                reader.decisions.broadcast(signed)
        finally:
            assert rpc("evm_revert", [snapshot])
    finally:
        lean.close()
        full.close()


def test_score_refuses_and_prices_a_batch_as_the_web3_client_does(home, trained, members, anvil_url):
    """The lean sender against the web3 chain client on the same batches: each the contract refuses (a
    member with no consent, as an erased or withdrawn one has; the zero member; a score out of range; an
    unknown model; an empty batch) is the same named error on both, before anything is signed or sent; a
    value out of its ABI type is refused by both; on a chain whose base fee is not zero (here 7 gwei)
    both sign the same bytes (fees: the node's priority fee plus twice the base fee)."""
    from dataclasses import replace

    from api.usecases.home_open import open_crm_to_decide
    from ledger.errors import BackendError, ContractRevert
    from ledger.reader import JsonRpc

    rpc = JsonRpc(anvil_url).request

    lean, full = open_crm_to_decide(home), open_crm(home)
    snapshot = rpc("evm_snapshot", [])
    try:
        acme = full.signer("acme").address
        good = [d.decision for d in full.coalition.decisions.decisions(partner=acme)[:2]]
        model_id = full.coalition.decisions.decisions(partner=acme)[0].model_id
        sent_before = rpc("eth_getTransactionCount", [acme, "pending"])
        refused = {
            "no consent": (model_id, [replace(good[0], member=bytes(range(32)))]),
            "zero member": (model_id, [replace(good[0], member=bytes(32))]),
            "score out of range": (model_id, [replace(good[0], score_bps=10_001)]),
            "unknown model": (10**6, good),
            "empty": (model_id, []),
        }
        for what, (model, batch) in refused.items():
            with pytest.raises(ContractRevert) as on_lean:
                lean.coalition.decisions.prepare_record_decisions(lean.signer("acme"), model, batch)
            with pytest.raises(ContractRevert) as on_web3:
                full.coalition.decisions.prepare_record_decisions(full.signer("acme"), model, batch)
            assert type(on_lean.value) is type(on_web3.value) is not ContractRevert, what
        too_big = [replace(good[0], score_bps=2**32)]
        with pytest.raises(BackendError):
            lean.coalition.decisions.prepare_record_decisions(lean.signer("acme"), model_id, too_big)
        with pytest.raises(BackendError):  # was web3's MismatchedABI, untranslated: a traceback
            full.coalition.decisions.prepare_record_decisions(full.signer("acme"), model_id, too_big)
        assert rpc("eth_getTransactionCount", [acme, "pending"]) == sent_before

        rpc("anvil_setNextBlockBaseFeePerGas", [hex(7 * 10**9)])
        rpc("evm_mine", [])
        signed = lean.coalition.decisions.prepare_record_decisions(lean.signer("acme"), model_id, good)
        web3s = full.coalition.decisions.prepare_record_decisions(full.signer("acme"), model_id, good)
        assert signed == web3s and signed.raw != b""
    finally:
        assert rpc("evm_revert", [snapshot])
        rpc("anvil_setNextBlockBaseFeePerGas", ["0x0"])  # anvil keeps the next block's fee past a revert
        lean.close()
        full.close()


@pytest.mark.parametrize("sent", [True, False], ids=["answer-lost", "never-sent"])
def test_a_node_gone_mid_send_is_one_line_and_the_next_score_logs_each_decision_once(
    home, trained, members, monkeypatch, sent
):
    """`score` (the lean sender) loses its node at the broadcast, after the node took the transaction
    (its answer lost) or before: one line, exit 1; the outbox recorded the hash first, so the next run
    settles it (mined: confirmed; unknown: signed anew) and every decision is on chain once."""
    from api.cli import app
    from ledger.errors import BackendError
    from ledger.reader import JsonRpc

    post = JsonRpc._post

    def gone(rpc: JsonRpc, body: object) -> object:
        if isinstance(body, dict) and body.get("method") == "eth_sendRawTransaction":
            if sent:
                post(rpc, body)
            raise BackendError(f"the node at {rpc.url} stopped answering: connection refused")
        return post(rpc, body)

    args = ["--home", str(home), "score", "--partner", "acme", "--member", members[0], "--as-of", AS_OF]
    with sqlite3.connect(home / "data.sqlite") as db:
        before = db.execute("select count(*) from decisions").fetchone()[0]
    monkeypatch.setattr(JsonRpc, "_post", gone)
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert (
        result.output.strip().splitlines()
        == [line for line in result.output.strip().splitlines() if "stopped answering" in line]
        != []
    ), result.output
    monkeypatch.setattr(JsonRpc, "_post", post)
    assert "logged on chain" in run(home, "score", *args[3:])
    with sqlite3.connect(home / "data.sqlite") as db:
        rows = db.execute("select decision_id from decisions order by id").fetchall()
    ids = [r[0] for r in rows]
    assert len(ids) == before + 2 and None not in ids and len(set(ids)) == len(ids)
    full = open_crm(home)
    try:
        acme = full.signer("acme").address
        assert sorted(d.decision_id for d in full.coalition.decisions.decisions(partner=acme)) == sorted(ids)
    finally:
        full.close()


def test_a_key_file_is_read_alike_by_score_and_by_every_other_command(home, trained):
    """`score` opens the home without web3 (its keys read by ledger.sender.LocalKey), every other command
    with eth_account: the same key file is taken as the same account by both, or refused by both in one
    line naming the file, never with a traceback that prints the file's text (the web3 path's was)."""
    from api.cli import app
    from api.usecases.home_open import open_crm_to_decide

    key_file = home / "keys" / "acme.key"
    kept = key_file.read_text()
    digits = kept.strip().removeprefix("0x")
    try:
        for bad in ("0x0" + digits, "0x" + digits[:-1] + "z", "0x" + "0" * 64):
            key_file.write_text(bad + "\n")
            for args in (("customer", "list", "--partner", "acme"), ("score", "--partner", "acme", "--all")):
                result = runner.invoke(app, ["--home", str(home), *args])
                assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
                assert "does not hold a private key" in result.output and "Traceback" not in result.output
                assert len(result.output.strip().splitlines()) == 1, result.output
                assert digits[8:40] not in result.output
        key_file.write_text("0X" + digits.upper() + "\n")  # eth_account takes 0X: so must score
        lean, full = open_crm_to_decide(home), open_crm(home)
        try:
            assert lean.signer("acme").address == full.signer("acme").address
        finally:
            lean.close()
            full.close()
    finally:
        key_file.write_text(kept)


def test_a_command_of_a_group_builds_that_group_alone():
    from api.cli import app, app_for

    assert app_for([]) is app and app_for(["--help"]) is app and app_for(["--version"]) is app
    assert app_for(["init", "--chain", "devnet"]) is app and app_for(["--home", "h", "verify"]) is app
    for args in (["decision", "verify", "1"], ["--home", "h", "decision", "list"], ["--home=h", "decision"]):
        one = app_for(args)
        assert one is not app and [g.name for g in one.registered_groups] == ["decision"]
        assert one.registered_callback is app.registered_callback  # --home and --version as ever


def test_decision_verify_imports_neither_web3_nor_eth_account(home, members):
    """What makes `decision verify` a fraction of the start-up it was (benchmarks/README.md): a whole
    run, in a fresh interpreter, never imports web3 or eth_account (nor Typer's error formatting, until a
    usage error needs it). A node that does not answer is still one line."""
    lines = run(home, "decision", "list", "--partner", "acme", "--member", members[0]).splitlines()
    code = (
        "import sys\nfrom api.cli import main\n"  # as the ledgercrm script runs it
        # `score` too (its decisions signed and sent by ledger/sender.py)
        f"sys.argv = ['ledgercrm', '--home', {str(home)!r}, 'score', '--partner', 'acme', '--member',"
        f" {members[1]!r}, '--as-of', {AS_OF!r}]\n"
        "try:\n    main()\n"
        "except SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n"
        f"sys.argv = ['ledgercrm', '--home', {str(home)!r}, 'decision', 'verify', {lines[0].split()[0]!r}]\n"
        "try:\n    main()\n"
        "except SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n"
        "heavy = ('web3', 'eth_account', 'typer.rich_utils')\n"
        "print('imported:', sorted(m for m in heavy if m in sys.modules))\n"
        "import os\nprint('openblas threads:', os.environ.get('OPENBLAS_NUM_THREADS'))\n"
        "sys.argv = ['ledgercrm', 'decision', 'verify', 'abc']\n"
        "try:\n    main()\n"
        "except SystemExit as exc:\n    print('exit', exc.code)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env)
    assert done.returncode == 0, done.stderr[-1500:]
    assert "1 decided" in done.stdout and "logged on chain" in done.stdout, done.stdout + done.stderr
    assert "reproduced" in done.stdout and "imported: []" in done.stdout, done.stdout + done.stderr
    assert "openblas threads: 1" in done.stdout  # no spinning BLAS threads; a user's own setting wins:
    version = (
        "import os, sys\nfrom api.cli import main\nsys.argv = ['ledgercrm', '--version']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\nprint(os.environ['OPENBLAS_NUM_THREADS'])\n"
    )
    mine = subprocess.run(
        [sys.executable, "-c", version],
        capture_output=True,
        text=True,
        check=True,
        env={**env, "OPENBLAS_NUM_THREADS": "2"},
    )
    assert mine.stdout.splitlines()[-1] == "2", mine.stdout + mine.stderr
    # Typer's error module, imported at the first usage error, is ours there too: one line, exit 2
    assert "exit 2" in done.stdout and done.stderr.startswith("error: Invalid value for 'DECISION_ID'")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    # the same home's config, pointed at a node that is not there: one line, exit 1, no traceback
    elsewhere = home.parent / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    config = json.loads((home / "config.json").read_text())
    config["rpc_url"] = f"http://127.0.0.1:{free_port()}"
    (elsewhere / "config.json").write_text(json.dumps(config))
    out = run(elsewhere, "decision", "verify", "0", code=1)
    assert out.startswith("error:") and "stopped answering" in out and "Traceback" not in out, out


def test_segments_of_customers_with_profiling_consent_with_a_plot(home, tmp_path):
    plot = tmp_path / "segments.png"
    out = run(home, "segments", "--partner", "acme", "--as-of", HOLDOUT, "--plot", str(plot))
    assert "RFM segments as of 2024-09-01" in out and "k by silhouette" in out and "k by elbow" in out
    assert plot.read_bytes()[:4] == b"\x89PNG"
    out = run(home, "segments", "--partner", "acme", "--plot", str(plot), code=2)
    assert "exists" in out  # a file is never overwritten


def test_the_step_spinner_runs_only_on_a_terminal(monkeypatch):
    """On a terminal the long commands show their step in a spinner (a refresh thread); where stderr is
    no terminal nothing is shown, so no thread wakes 12.5 times a second for nothing."""
    import threading

    from api.cli.common import errors
    from api.cli.models import _steps

    for terminal, threads in ((False, 0), (True, 1)):
        monkeypatch.setattr(errors, "_force_terminal", terminal)
        before = threading.active_count()
        with _steps() as step:
            step("working")
            assert threading.active_count() == before + threads
