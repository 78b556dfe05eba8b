"""Turning revert data (selector + ABI-encoded arguments) into the named Python exceptions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from ledger.errors import NAMED_ERRORS, ContractPanic, ContractRevert

_ERROR_STRING = function_signature_to_4byte_selector("Error(string)")
_PANIC = function_signature_to_4byte_selector("Panic(uint256)")


class RevertDecoder:
    """Knows every custom error of the given ABIs by its selector."""

    def __init__(self, abis: Iterable[list[dict[str, Any]]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                types = [_abi_type(i) for i in item["inputs"]]
                selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
                self._errors[selector] = (item["name"], types, [i["name"] for i in item["inputs"]])

    def decode(self, data: bytes) -> ContractRevert:
        selector, body = data[:4], data[4:]
        try:
            if selector == _ERROR_STRING:
                (reason,) = abi_decode(["string"], body)
                return ContractRevert(f"reverted: {reason}")
            if selector == _PANIC:
                (code,) = abi_decode(["uint256"], body)
                return ContractPanic(code=code)
            known = self._errors.get(selector)
            if known is None:
                return ContractRevert(f"reverted with unknown data 0x{data.hex()}" if data else "reverted")
            name, types, names = known
            values = abi_decode(types, body)
        except DecodingError:
            return ContractRevert(f"reverted with undecodable data 0x{data.hex()}")
        fields = {n: _python_value(t, v) for n, t, v in zip(names, types, values, strict=True)}
        return NAMED_ERRORS.get(name, ContractRevert)(**fields)


def _abi_type(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){param['type'][5:]}"
    return str(param["type"])


def _python_value(abi_type: str, value: Any) -> Any:
    return to_checksum_address(value) if abi_type == "address" else value
