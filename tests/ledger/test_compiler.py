import shutil
from pathlib import Path

import pytest
import solcx

from ledger import compiler
from ledger.errors import CompilationError
from ledger.paths import contracts_dir


def test_compiles_the_five_contracts_with_the_pinned_settings():
    build = compiler.compile_contracts()
    assert set(compiler.CONTRACT_NAMES) <= set(build.artifacts)
    assert build.compiler == compiler.SOLC_VERSION
    for name in compiler.CONTRACT_NAMES:
        # the CBOR metadata trailer names the compiler that really ran: "solc" 0.8.30
        assert build[name].deployed_bytecode.endswith("64736f6c6343" + "00081e" + "0033")
        assert any(item["type"] == "event" for item in build[name].abi)


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A copy of contracts/ and an empty build folder, so a test can edit sources freely."""
    sources = tmp_path / "contracts"
    shutil.copytree(contracts_dir(), sources)
    monkeypatch.setenv("LEDGERCRM_CONTRACTS_DIR", str(sources))
    monkeypatch.setenv("LEDGERCRM_BUILD_DIR", str(tmp_path / "build"))
    return sources


def test_cache_is_reused_and_rebuilt_when_a_source_changes(scratch: Path, monkeypatch):
    first = compiler.compile_contracts()
    calls = []
    real = solcx.compile_standard

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(solcx, "compile_standard", counting)
    assert compiler.compile_contracts().input_hash == first.input_hash
    assert calls == []  # served from the cache

    anchor = scratch / "InteractionAnchor.sol"
    anchor.write_text(
        anchor.read_text().replace(
            "uint256 private constant _MAX_PROOF_LENGTH = 64;",
            "uint256 private constant _MAX_PROOF_LENGTH = 63;",
        )
    )
    rebuilt = compiler.compile_contracts()
    assert calls == [1]
    assert rebuilt.input_hash != first.input_hash
    assert rebuilt["InteractionAnchor"].bytecode != first["InteractionAnchor"].bytecode


def test_a_compile_error_shows_the_compilers_message(scratch: Path):
    broken = scratch / "LoyaltyPoints.sol"
    broken.write_text(
        broken.read_text().replace("_redeemed[msg.sender] += amount;", "_redeemed[msg.sender] += amount")
    )
    with pytest.raises(CompilationError) as raised:
        compiler.compile_contracts()
    assert "LoyaltyPoints.sol" in str(raised.value)
    assert "Expected ';'" in str(raised.value)


def test_a_missing_import_is_named(scratch: Path):
    (scratch / "Extra.sol").write_text(
        'pragma solidity ^0.8.24;\nimport "./Nowhere.sol";\ncontract Extra {}\n'
    )
    with pytest.raises(CompilationError, match=r"Nowhere\.sol"):
        compiler.compile_contracts()


def test_explicit_compiler_path_is_honoured(monkeypatch, tmp_path):
    monkeypatch.setenv("LEDGERCRM_SOLC", str(tmp_path / "no-such-solc"))
    with pytest.raises(CompilationError, match="LEDGERCRM_SOLC"):
        compiler.find_solc()
