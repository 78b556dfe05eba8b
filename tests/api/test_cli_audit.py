"""The auditor's commands at the command line, on anvil: a partner writes a bundle in its home; the
auditor verifies it with only a node URL and a deployment manifest (no home), writes the HTML report,
and watches the chain; a customer's timeline; the mistakes, each one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.api.clirunner import run, runner
from tests.fixtures.twins import twin


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, anvil_url: str) -> Path:
    path = tmp_path_factory.mktemp("cli-audit") / "home"
    run(path, "init", "--chain", anvil_url)
    run(path, "partner", "add", "acme")
    out = run(
        path, "customer", "add", "--partner", "acme", "--name", "Dora Evidence", "--email", "dora@example.org"
    )
    member = re.search(r"0x[0-9a-f]{64}", out).group(0)  # type: ignore[union-attr]
    for n in range(3):
        run(
            path,
            "interaction",
            "add",
            "--partner",
            "acme",
            "--member",
            member,
            "--kind",
            "visit",
            "--data",
            json.dumps({"n": n, "note": "private words"}),
        )
    run(path, "consent", "give", "--partner", "acme", "--member", member, "--purpose", "loyalty")
    run(path, "points", "earn", "--partner", "acme", "--member", member, "--amount", "25")
    run(path, "customer", "update", member, "--partner", "acme", "--email", "dora.new@example.org")
    run(path, "anchor")
    (path / "member").write_text(member)
    return path


@pytest.fixture(scope="module")
def manifest(home: Path) -> Path:
    """What the auditor holds: the deployment manifest, handed over out of band."""
    path = home.parent / "deployment.json"
    path.write_text(json.dumps(json.loads((home / "config.json").read_text())["deployment"]))
    return path


@pytest.fixture(scope="module")
def bundle(home: Path) -> Path:
    out = home.parent / "acme.json.gz"
    printed = run(home, "audit", "bundle", "--partner", "acme", "--out", str(out))
    assert re.search(
        r"acme\.json\.gz: [\d,]+ bytes; \d+ heads?, 4 leaves, 1 consent receipt, 0 erasure", printed
    )
    return out


def auditor(*args: str, code: int = 0) -> str:
    """A command run where there is no home at all."""
    result = runner.invoke(
        __import__("api.cli", fromlist=["app"]).app, ["--home", "/nonexistent/home", *args]
    )
    assert result.exit_code == code, result.output
    return result.output


def test_the_auditor_verifies_a_bundle_with_a_node_and_a_manifest_only(bundle, manifest, anvil_url, tmp_path):
    report = tmp_path / "report.html"
    out = auditor(
        "audit",
        "verify",
        str(bundle),
        "--chain",
        anvil_url,
        "--deployment",
        str(manifest),
        "--report",
        str(report),
    )
    assert "everything in the bundle holds" in out and "FINDING" not in out
    assert "checked 4 leaves of acme proven" in out and "checked 1 consent receipts" in out
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 5
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched from anywhere
    assert "<script" not in page and "dora" not in page


def test_a_tampered_bundle_fails_with_its_finding(bundle, manifest, anvil_url, tmp_path):
    import gzip

    data = json.loads(gzip.decompress(bundle.read_bytes()))
    data["log"]["leaves"][1], data["log"]["leaves"][2] = data["log"]["leaves"][2], data["log"]["leaves"][1]
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data))
    report = tmp_path / "report.html"
    out = auditor(
        "audit",
        "verify",
        str(tampered),
        "--chain",
        anvil_url,
        "--deployment",
        str(manifest),
        "--report",
        str(report),
        code=1,
    )
    assert "FINDING leaf 2 of acme: out of order" in out and "finding" in out.splitlines()[-2]
    assert "out of order" in report.read_text()


def test_the_auditors_mistakes_are_one_line(bundle, manifest, anvil_url, tmp_path):
    out = auditor("audit", "verify", str(bundle), "--chain", anvil_url, code=2)
    assert out.strip().splitlines() == [
        "error: give --consortium ADDRESS or --deployment FILE: the contracts come from what you hold,"
        " never from the bundle"
    ]
    (tmp_path / "x.json").write_text("[1, 2]")
    out = auditor(
        "audit",
        "verify",
        str(tmp_path / "x.json"),
        "--chain",
        anvil_url,
        "--deployment",
        str(manifest),
        code=2,
    )
    assert len(out.strip().splitlines()) == 1 and "not an evidence bundle" in out
    (tmp_path / "v1.json").write_text(json.dumps({"format": "ledgercrm/evidence-bundle/v1"}))
    out = auditor(
        "audit",
        "verify",
        str(tmp_path / "v1.json"),
        "--chain",
        anvil_url,
        "--deployment",
        str(manifest),
        code=2,
    )
    assert out.strip().splitlines() == [
        f"error: {tmp_path / 'v1.json'} is an evidence bundle of format 'ledgercrm/evidence-bundle/v1',"
        " which this release does not read (it reads 'ledgercrm/evidence-bundle/v2' only): ask the"
        " partner for one made with this release's `audit bundle`"
    ]
    out = auditor(
        "audit", "verify", str(bundle), "--chain", "http://127.0.0.1:9", "--deployment", str(manifest), code=1
    )
    assert len(out.strip().splitlines()) == 1 and "no EVM node answers" in out
    out = auditor(
        "audit", "verify", str(bundle), "--chain", anvil_url, "--consortium", "0x" + "11" * 20, code=1
    )
    assert len(out.strip().splitlines()) == 1 and "Consortium" in out
    out = auditor("audit", "verify", str(bundle), "--chain", anvil_url, "--consortium", "acme", code=2)
    assert len(out.strip().splitlines()) == 1 and "--consortium takes a contract address" in out
    other = "0x" + "22" * 20  # a manifest pinned to a Consortium that is not its own is refused
    out = auditor("audit", "verify", str(bundle), "--chain", anvil_url, "--deployment", str(manifest),
                  "--consortium", other, code=1)  # fmt: skip
    assert len(out.strip().splitlines()) == 1 and "Consortium" in out


def test_the_consortium_address_alone_is_enough(home, bundle, anvil_url):
    """The trust anchor given out of band: every other address is read from the Consortium on chain."""
    consortium = json.loads((home / "config.json").read_text())["deployment"]["contracts"]["Consortium"]
    out = auditor("audit", "verify", str(bundle), "--chain", anvil_url, "--consortium", consortium)
    assert "everything in the bundle holds" in out


def test_an_auditor_on_another_chain_is_refused_in_words(bundle, manifest, anvil_url, second_anvil_url):
    """A twin of the coalition's deployment on another chain (same chain id, addresses, code and
    Consortium records: every devnet deploys from one account at the same nonces). The auditor's
    manifest, pinned to the coalition's chain, refuses that node; an auditor given only the Consortium's
    address trusts its node, and a bundle made on the coalition's chain is refused as another chain's."""
    import gzip

    from ledger.deployment import Deployment

    deployment = Deployment.load(manifest)
    stated = json.loads(gzip.decompress(bundle.read_bytes()))["deployment"]
    assert (stated["deployedAtBlock"], stated["deployedAtBlockHash"]) == (
        deployment.block_number,
        deployment.block_hash,
    )
    with twin(deployment, second_anvil_url) as copy:
        theirs = copy.deployment.block_hash
        out = auditor("audit", "verify", str(bundle), "--chain", second_anvil_url, "--deployment",
                      str(manifest), code=1)  # fmt: skip
        assert out.strip().splitlines() == [
            f"error: this node's block {deployment.block_number} is {theirs}, the coalition's is"
            f" {deployment.block_hash}: a different chain"
        ]
        consortium = deployment.contracts["Consortium"]
        out = auditor("audit", "verify", str(bundle), "--chain", second_anvil_url, "--consortium",
                      consortium, code=1)  # fmt: skip
        findings = [line for line in out.splitlines() if line.startswith("FINDING")]
        assert findings == [
            "FINDING deployment: the bundle was made on another chain: its block"
            f" {deployment.block_number} is {deployment.block_hash}, your node's block"
            f" {deployment.block_number} is {theirs}: nothing else in it was checked"
        ]
        assert "1 finding" in out.splitlines()[-1]
        # the address given with the hash of its block, as `init` prints it: the node is refused
        pinned = f"{consortium}@{deployment.block_hash}"
        out = auditor(
            "audit", "verify", str(bundle), "--chain", second_anvil_url, "--consortium", pinned, code=1
        )
        assert len(out.strip().splitlines()) == 1 and out.strip().endswith(": a different chain")
    out = auditor("audit", "verify", str(bundle), "--chain", anvil_url, "--consortium", pinned)
    assert "everything in the bundle holds" in out and f"block {deployment.block_number} is" in out
    out = auditor(
        "audit", "verify", str(bundle), "--chain", anvil_url, "--consortium", f"{consortium}@0x12", code=2
    )
    assert len(out.strip().splitlines()) == 1 and "the hash of the block it was deployed in" in out


def test_a_bundle_that_exists_is_not_overwritten(home, bundle):
    out = run(home, "audit", "bundle", "--partner", "acme", "--out", str(bundle), code=2)
    assert "exists" in out and len(out.strip().splitlines()) == 1


def test_the_monitor_watches_and_resumes(home, manifest, anvil_url, tmp_path):
    state = tmp_path / "monitor"
    out = auditor(
        "audit", "watch", "--chain", anvil_url, "--deployment", str(manifest), "--state", str(state), "--once"
    )
    assert "the partner's first head, consistent with its genesis leaf" in out and "FINDING" not in out
    assert re.search(r"blocks 0\.\.\d+: .*1 ConsentRecorded, .*1 MemberEnrolled, .*1 PointsEarned", out), out
    member = (home / "member").read_text()
    run(
        home, "interaction", "add", "--partner", "acme", "--member", member, "--kind", "visit", "--data", "{}"
    )
    run(home, "anchor")
    out = auditor(
        "audit", "watch", "--chain", anvil_url, "--deployment", str(manifest), "--state", str(state), "--once"
    )
    assert out.count("consistent with head") == 1 and "first head" not in out
    assert "FINDING" not in out


def test_the_customer_timeline(home):
    member = (home / "member").read_text()
    out = run(home, "customer", "timeline", member, "--partner", "acme")
    events = [
        e for e in ("registered", "consent given", "points earned", "personal data updated") if e in out
    ]
    assert len(events) == 4 and "changed: email" in out and "dora.new" not in out
    out = run(home, "customer", "timeline", "0x" + "ab" * 32, "--partner", "acme", code=1)
    assert len(out.strip().splitlines()) == 1


def test_a_bundle_of_chosen_members_and_blocks(home, tmp_path, manifest, anvil_url):
    member = (home / "member").read_text()
    out = run(home, "audit", "bundle", "--partner", "acme", "--out", str(tmp_path / "m.json"),
              "--member", member, "--member", member, "--from-block", "1")  # fmt: skip
    assert ", 1 consent receipt," in out
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["scope"] == {"members": [member], "fromBlock": 1}
    out = auditor(
        "audit", "verify", str(tmp_path / "m.json"), "--chain", anvil_url, "--deployment", str(manifest)
    )
    assert "everything in the bundle holds" in out
    stranger = "0x" + "cd" * 32
    out = run(home, "audit", "bundle", "--partner", "acme", "--out", str(tmp_path / "s.json"),
              "--member", stranger, code=1)  # fmt: skip
    assert len(out.strip().splitlines()) == 1 and "no member" in out and not (tmp_path / "s.json").exists()
    out = run(home, "audit", "bundle", "--partner", "acme", "--out", str(tmp_path / "t.json"),
              "--from-block", "-3", code=2)  # fmt: skip
    assert not (tmp_path / "t.json").exists()
