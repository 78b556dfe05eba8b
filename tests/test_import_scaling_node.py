"""benchmarks/import_scaling.py on a node it did not start (--node-url): refused in one line when the node
cannot serve the run, and put back to where it was after each size."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from benchmarks.import_scaling import NodeError, check_node, empty_block_cost, main, pid_listening_on
from ledger.anvil import free_port, start_anvil
from ledger.errors import BackendError


def block_number(url: str) -> int:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return int(json.loads(answer.read())["result"], 16)


def test_an_unreachable_node_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(NodeError, match=f"^no node answers at {url}: "):
        check_node(url, None, 1)
    assert main(["--sizes", "2000", "--node-url", url]) == 2
    out = capsys.readouterr().out
    assert out.startswith(f"error: no node answers at {url}") and out.count("\n") == 1
    assert "Traceback" not in out


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(NodeError, match="--node-url takes an http"):
        check_node("ftp://127.0.0.1:8545", None, 1)
    with pytest.raises(NodeError, match="--node-url takes an http"):
        check_node("127.0.0.1:8545", None, 1)


@pytest.mark.anvil
def test_a_node_of_another_chain_is_refused() -> None:
    port = free_port()
    try:
        process = start_anvil(port, chain_id=5)
    except BackendError as exc:
        pytest.skip(f"anvil is not available: {exc}")
    try:
        with pytest.raises(NodeError, match="runs chain id 5, not the devnet's 31337"):
            check_node(f"http://127.0.0.1:{port}", None, 1)
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.mark.anvil
def test_the_node_is_found_by_its_port_and_put_back_after_a_size(anvil_url: str) -> None:
    """The session's anvil: its process found from the port (its CPU read), two empty blocks mined and
    costed, then the chain reverted to the snapshot taken when the node was checked."""
    node = check_node(anvil_url, None, 2)
    port = int(anvil_url.rsplit(":", 1)[1])
    assert node.pid is not None and node.pid == pid_listening_on(port)
    assert "anvil" in Path(f"/proc/{node.pid}/cmdline").read_bytes().decode(errors="replace")
    assert node.client.lower().startswith("anvil") and node.snapshot is not None
    before = block_number(anvil_url)
    cost = empty_block_cost(anvil_url, node.pid, blocks=2)
    assert cost is not None and cost["blocks"] == 2 and cost["cpu_ms"] is not None and cost["wall_ms"] > 0
    assert block_number(anvil_url) == before + 2
    node.reset()
    assert block_number(anvil_url) == before
    node.reset()  # the new snapshot it took is good for the next size
    assert block_number(anvil_url) == before


@pytest.mark.anvil
def test_a_node_pid_that_is_not_a_process_is_refused(anvil_url: str) -> None:
    with pytest.raises(NodeError, match="--node-pid 999999999: no such process"):
        check_node(anvil_url, 999_999_999, 1)
