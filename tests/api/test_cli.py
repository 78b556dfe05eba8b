import re

from typer.testing import CliRunner

from api.cli import app

runner = CliRunner()


def test_demo_runs_end_to_end_on_the_in_process_chain():
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "acme proposes cafe: 1 of 2 votes: waiting for a majority" in result.output
    assert "borealis votes for cafe: 2 of 2 votes: admitted\n" in result.output
    assert "refused by the contract: balance 500, needed 10000" in result.output
    assert "verify: 1 tampered (the row's occurredAt differs from the committed one)" in result.output
    assert "6 interactions unreadable" in result.output
    audit = re.search(
        r"the auditor verifies with no key at all: (\d+) checks ran .*, 0 findings", result.output
    )
    assert audit is not None and int(audit.group(1)) >= 6  # decisions and models are checked too (#30)
    assert "Settlement positions" in result.output and "-1200" in result.output and "+500" in result.output
    assert re.search(r"The net positions sum to -\d+: the points members still hold", result.output)
    assert re.search(r"points reconciled with the chain\s*│ yes", result.output)
    # the decision layer: a registered model, decisions on chain, one reproduced, consent enforced
    assert re.search(r"delta trains a churn model .*: model 0 registered on chain", result.output)
    assert re.search(
        r"delta scores every customer: \d+ decided and logged on chain, 1 skipped for consent", result.output
    )
    assert re.search(r"decision \d+: churn score 0\.\d+: \w+; reasons: ", result.output)
    assert "not run: score, explanation (they read personal data)" in result.output
    assert "score, reasons and explanation reproduced bit for bit" in result.output
    assert "the auditor reproduces score and explanation bit for bit" in result.output
    assert "delta tries to score the customer who withdrew: no decision: skipped for consent" in result.output


def test_a_bad_chain_is_a_clear_error_with_a_nonzero_exit():
    result = runner.invoke(app, ["demo", "--chain", "mars"])
    assert result.exit_code != 0
    assert "expected 'memory' or an http(s) JSON-RPC URL" in result.output


def test_an_unreachable_node_is_a_clear_error():
    result = runner.invoke(app, ["demo", "--chain", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "no EVM node answers at http://127.0.0.1:9: connection refused" in result.output
    assert "Traceback" not in result.output
    assert "HTTPConnectionPool" not in result.output  # requests' message, urllib3's reprs inside
