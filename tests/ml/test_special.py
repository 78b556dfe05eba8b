"""`ml.special.hyp2f1`: scipy.special's own ufunc, without running the package's `__init__` where nothing
else needs it, and the full package for whatever imports it afterwards. Each order in a fresh process
(this one may have imported scipy.special already): one process, ~0.5 s."""

from __future__ import annotations

import subprocess
import sys

from ml import special

# Deferred first, then the package in full (what training or sklearn does after a score in one process);
# then, in the same script, the values against the ufunc the package exports, bit for bit.
_DEFERRED_THEN_FULL = """
import math, sys
from ml import special
from ml.features import BgNbd

found = special.hyp2f1()
package = sys.modules["scipy.special"]
assert type(package).__name__ == "_Deferred", type(package)
assert "numpy.f2py" not in sys.modules and "scipy._lib._array_api" not in sys.modules
ARGS = [(1.5, 2.5, 3.5, 0.3), (0.24, 2.1, 3.7, 0.98), (9.0, 12.0, 21.5, 0.5)]
values = [found(a, b, c, z) for a, b, c, z in ARGS]
expected = BgNbd(r=0.24, alpha=4.4, a=0.79, b=2.4).expected_purchases(3, 200.0, 300.0, 90.0)

import scipy.special
from scipy.special import gammaln
import scipy.special._ufuncs_cxx

assert scipy.special is package and type(package) is type(sys)
assert scipy.special.hyp2f1 is found
assert scipy.special._ufuncs_cxx is sys.modules["scipy.special._ufuncs_cxx"]
assert abs(gammaln(5.0) - math.log(24.0)) < 1e-12
assert "logsumexp" in dir(scipy.special)
assert [scipy.special.hyp2f1(a, b, c, z) for a, b, c, z in ARGS] == values
assert BgNbd(r=0.24, alpha=4.4, a=0.79, b=2.4).expected_purchases(3, 200.0, 300.0, 90.0) == expected
print("ok")
"""


def test_hyp2f1_defers_the_package_and_leaves_it_whole():
    done = subprocess.run(
        [sys.executable, "-c", _DEFERRED_THEN_FULL], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


def test_hyp2f1_is_the_packages_own_once_it_is_imported():
    import scipy.special

    assert special.hyp2f1.__wrapped__() is scipy.special.hyp2f1
    assert type(sys.modules["scipy.special"]) is type(sys)
