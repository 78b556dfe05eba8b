"""A node that is not there, or stops answering, is named in words: the reason the operating system
gave, never requests' message with urllib3's reprs nested in it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from eth_utils import to_checksum_address

from ledger.anvil import free_port, start_anvil
from ledger.backends import RpcBackend, unreachable
from ledger.chain import Chain
from ledger.errors import BackendError

REPR_MARKS = ("HTTPConnectionPool", "NewConnectionError", "Max retries", "object at 0x", "Caused by")


def _plain(message: str) -> None:
    for mark in REPR_MARKS:
        assert mark not in message, message


def test_no_node_at_the_port_is_connection_refused() -> None:
    with pytest.raises(BackendError) as caught:
        RpcBackend(f"http://127.0.0.1:{free_port()}")
    message = str(caught.value)
    assert message.startswith("no EVM node answers at http://127.0.0.1:")
    assert message.endswith(": connection refused"), message
    _plain(message)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        server.close()


def test_a_node_that_never_answers_is_no_answer_in_time(silent_port: int) -> None:
    with pytest.raises(BackendError) as caught:
        RpcBackend(f"http://127.0.0.1:{silent_port}", timeout=0.3)
    assert str(caught.value) == f"no EVM node answers at http://127.0.0.1:{silent_port}: no answer in time"


def test_other_failures_are_not_taken_for_an_absent_node() -> None:
    assert unreachable(ValueError("bad input")) is None
    assert unreachable(OSError(2, "No such file or directory")) is None


def test_a_node_that_stops_mid_run_is_named_in_words() -> None:
    try:
        port = free_port()
        process = start_anvil(port)
    except BackendError as exc:
        pytest.skip(f"anvil is not available: {exc}")
    url = f"http://127.0.0.1:{port}"
    try:
        chain = Chain(RpcBackend(url), [])
        assert chain.w3.eth.block_number == 0
    finally:
        process.terminate()
        process.wait(timeout=15)
    contract = chain.w3.eth.contract(address=to_checksum_address("0x" + "11" * 20), abi=[])
    with pytest.raises(BackendError) as caught:  # what an import meets when the node goes away
        chain.lookup(contract, "0x" + "22" * 32)
    assert str(caught.value) == f"the node at {url} stopped answering: connection refused"


def test_a_node_is_not_started_on_a_port_another_node_answers_on(anvil_url: str) -> None:
    # the new node would exit at once ("Address already in use") while the other answered for it
    port = int(anvil_url.rsplit(":", 1)[1])
    with pytest.raises(BackendError) as caught:
        start_anvil(port)
    assert str(caught.value) == f"a node already answers on {anvil_url}: choose another port"
