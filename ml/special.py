"""scipy.special's hypergeometric function for BG/NBD's expected purchases, without paying for the
package's import where nothing else needs it.

`scipy.special.hyp2f1` is a ufunc of the compiled module `scipy.special._ufuncs` (the very object:
`scipy.special.hyp2f1 is scipy.special._ufuncs.hyp2f1`). Importing the package costs ~0.17 CPU s, most
of it its array-API layer, whose copy of numpy's namespace makes numpy load f2py, ma, testing, random and
polynomial; `_ufuncs` itself loads in ~0.02 s. A `score --all` or a `decision verify` needs nothing else
of the package.

So where the package is not imported yet, it is made as the import system makes it (its own spec and
module object, in sys.modules, as `scipy.special` of `scipy`) but not run: its `__init__` runs, into that
same object, the first time anything asks it for a name it lacks (`_Deferred`). `_ufuncs` is then
imported as a submodule of it, as usual, and whatever imports `scipy.special` later (training,
sklearn, scipy.stats) gets the full package: the same object, its `__init__` run on first use, every
submodule in place (tests/ml/test_special.py checks both orders in a fresh process).
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Callable
from functools import cache
from types import ModuleType
from typing import Any

_PACKAGE = "scipy.special"
_running = threading.Lock()  # the deferred `__init__` runs once, whichever thread asks first


class _Deferred(ModuleType):
    """The package `scipy.special` before its `__init__` has run: it has its spec, `__path__` and the
    submodules imported since; asked for anything else, it runs `__init__` and answers as the package."""

    def __getattr__(self, name: str) -> Any:
        _run(self)
        return getattr(self, name)

    def __dir__(self) -> list[str]:
        _run(self)
        return dir(self)


def _run(module: ModuleType) -> None:
    with _running:
        if type(module) is _Deferred:
            module.__class__ = ModuleType  # type: ignore[assignment]  # a plain module from here on
            spec = module.__spec__
            assert spec is not None and spec.loader is not None
            spec.loader.exec_module(module)


@cache
def hyp2f1() -> Callable[..., Any]:
    """scipy.special's `hyp2f1` ufunc: the package's own if it is imported, else from `_ufuncs` with the
    package deferred (see above)."""
    if _PACKAGE not in sys.modules:
        import scipy

        spec = importlib.util.find_spec(_PACKAGE)
        if spec is not None and spec.loader is not None and spec.submodule_search_locations:
            module = importlib.util.module_from_spec(spec)
            module.__class__ = _Deferred
            sys.modules[_PACKAGE] = module
            scipy.special = module  # as an import of it would set it
    from scipy.special._ufuncs import hyp2f1 as found

    return found  # type: ignore[no-any-return]
