import json

import pytest

from offchain.canonical import CanonicalizationError, canonical_json

# RFC 8785 section 3.2.2 input and section 3.2.3 output (the specification's own example).
RFC_INPUT = (
    '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
    ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
    ' "literals": [null, true, false]}'
)
RFC_OUTPUT = (
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
)


def test_the_rfc_example():
    assert canonical_json(json.loads(RFC_INPUT)) == RFC_OUTPUT.encode()


def test_key_order_does_not_matter():
    assert canonical_json({"b": 1, "a": {"d": 2, "c": 3}}) == canonical_json({"a": {"c": 3, "d": 2}, "b": 1})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 2**60, {1: "non-string key"}])
def test_values_outside_i_json_are_refused(bad):
    with pytest.raises(CanonicalizationError):
        canonical_json({"x": bad})
