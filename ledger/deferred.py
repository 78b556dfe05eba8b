"""py_ecc's BLS12-381 modules, loaded when first used rather than whenever eth_account is imported.

eth_account imports eth_keyfile, and eth_keyfile imports `G2ProofOfPossession` from `py_ecc.bls` and
`curve_order` from `py_ecc.bls12_381` at module level, for BLS (EIP-2335) keystores, which nothing here
makes or reads. Importing those two computes BLS12-381 pairing constants in pure Python: about 0.3
CPU s, paid by every process that touches the chain (`decision verify` spent more on it than on
verifying). `defer_bls` puts a stand-in module in the place of each; the real one is imported the first
time anything reads an attribute the stand-in does not hold, and is from then on the module everyone
gets, so BLS keystores still work (tests/ledger/test_deferred.py).

`curve_order` (the order of the BLS12-381 group, a constant of the curve) is held by the stand-in itself:
eth_keyfile reads it at import. The test checks it against the real module's. Nothing else of py_ecc is
deferred: py-evm's precompiles import the optimized curves themselves, directly.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from typing import Any

BLS12_381_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001

# module -> (names eth_keyfile takes from it at its own import that stand for the real attribute until
# used, constants the stand-in holds as they are)
_DEFERRED: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "py_ecc.bls": (("G2ProofOfPossession",), {}),
    "py_ecc.bls12_381": ((), {"curve_order": BLS12_381_ORDER}),
}


class _Attribute:
    """One attribute of a deferred module (a class), until something reads from it or calls it."""

    def __init__(self, module: str, name: str) -> None:
        self._module = module
        self._name = name

    def __getattr__(self, item: str) -> Any:
        return getattr(getattr(real(self._module), self._name), item)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(real(self._module), self._name)(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<deferred {self._module}.{self._name}>"


class _StandIn(types.ModuleType):
    def __getattr__(self, item: str) -> Any:
        if item.startswith("__"):  # the import system's own probes (__path__, __spec__...)
            raise AttributeError(item)
        return getattr(real(self.__name__), item)


def real(name: str) -> types.ModuleType:
    """The real module `name`, imported now if its stand-in is still in its place."""
    found = sys.modules.get(name)
    if found is None or isinstance(found, _StandIn):
        sys.modules.pop(name, None)
        found = importlib.import_module(name)
        # submodules imported through the stand-in (py-evm's precompiles) were set on it, not on the
        # real module, and an import finds them in sys.modules without setting them again
        prefix = name + "."
        for key, module in list(sys.modules.items()):
            child = key[len(prefix) :]
            if key.startswith(prefix) and "." not in child and not hasattr(found, child):
                setattr(found, child, module)
    return found


def defer_bls() -> None:
    """Put the stand-ins in place, each unless its module is imported already (then it costs nothing
    more to use it)."""
    # The package is found, not imported: its __init__ reads its version from the installed metadata
    # (importlib.metadata, ~0.04 CPU s), which a process that never signs (`decision verify`) does not
    # need; whatever imports a module of it imports the package then, as it would.
    package = importlib.util.find_spec("py_ecc")
    if package is None or package.submodule_search_locations is None:
        return  # not installed: nothing imports it
    for name, (attributes, constants) in _DEFERRED.items():
        if name in sys.modules:
            continue
        stand_in = _StandIn(name, "deferred: imported on first use (ledger.deferred)")
        folders = [
            os.path.join(folder, name.rsplit(".", 1)[1]) for folder in package.submodule_search_locations
        ]
        if any(os.path.isfile(os.path.join(folder, "__init__.py")) for folder in folders):
            # still a package: py-evm's precompiles import `py_ecc.bls.hash_to_curve` and friends
            # directly, which needs the parent's path, and only that
            stand_in.__path__ = folders
        for attribute in attributes:
            setattr(stand_in, attribute, _Attribute(name, attribute))
        for constant, value in constants.items():
            setattr(stand_in, constant, value)
        sys.modules[name] = stand_in


# Classes that web3 takes by name from aiohttp at its own import (`from aiohttp import ClientSession`), for
# its async providers, which nothing here uses: importing aiohttp costs every process that loads web3
# 0.1-0.2 CPU s (an import's module loading 1.06-1.28 -> 0.96-1.07 CPU s; benchmarks/README.md). web3
# evaluates `ClientSession | None` in signatures at import, so these stand in as classes, not objects.
_DEFERRED_CLASSES: dict[str, tuple[str, ...]] = {
    "aiohttp": ("ClientError", "ClientResponse", "ClientSession", "ClientTimeout", "TCPConnector"),
}


class _DeferredClass(type):
    """The type of a stand-in class: calling it, reading its attributes, and isinstance and issubclass
    against it are the real class's, imported on first use. (An `except` of a stand-in does not catch the
    real class's exceptions: Python compares exception classes without asking the stand-in. Only web3's
    async providers catch aiohttp's, and nothing here runs them.)"""

    _deferred: tuple[str, str]

    def _real(cls) -> type:
        module, name = cls._deferred
        found: type = getattr(real(module), name)
        return found

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls._real()(*args, **kwargs)

    def __getattr__(cls, item: str) -> Any:
        if item.startswith("__"):
            raise AttributeError(item)
        return getattr(cls._real(), item)

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, cls._real())

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, cls._real())


def defer_aiohttp() -> None:
    """Put aiohttp's stand-in in place (see `_DEFERRED_CLASSES`), unless it is imported already or not
    installed; the real package is imported the first time anything uses it."""
    for name, classes in _DEFERRED_CLASSES.items():
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or spec.submodule_search_locations is None:
            continue
        stand_in = _StandIn(name, "deferred: imported on first use (ledger.deferred)")
        stand_in.__path__ = list(spec.submodule_search_locations)  # a submodule imported directly still is
        for class_name in classes:
            stand_in_class = _DeferredClass(
                class_name, (), {"_deferred": (name, class_name), "__module__": name}
            )
            setattr(stand_in, class_name, stand_in_class)
        sys.modules[name] = stand_in


def loaded(name: str) -> bool:
    """Whether the real module `name` has been imported (by use, or before `defer_bls`)."""
    return name in sys.modules and not isinstance(sys.modules[name], _StandIn)
