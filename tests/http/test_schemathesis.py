"""schemathesis against the app in process: data generated from the OpenAPI document (valid data, then
invalid data), sent with the credentials each operation is for, and every answer checked: never a 5xx,
every answer as documented, invalid data refused, and no operation that ignores its auth.

The operations are walked here rather than through schemathesis's pytest plugin, whose lazy fixture
loader does not run under pytest 9; the cases, strategies and checks are schemathesis's own."""

from __future__ import annotations

from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.openapi import from_asgi
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from api.http.app import create_app
from tests.http.conftest import Api

CHECKS: dict[GenerationMode, list[Any]] = {
    GenerationMode.POSITIVE: [
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
        ignored_auth,
    ],
    GenerationMode.NEGATIVE: [not_a_server_error, negative_data_rejection],
}
EXAMPLES = 5  # per operation and mode: every route is reached; the matrix and route tests go deep
# signing out ends the sessions the other cases sign in with (tested in test_auth.py)
SKIPPED = {("POST", "/v1/auth/logout")}


def test_the_api_keeps_its_documented_promises(api: Api) -> None:
    bea = api.customer("acme", name="Schema Customer", keyed=True)
    assert bea.key is not None
    credentials = {
        "partner": api.key("acme"),
        "customer": api.bearer(bea.key),
        "auditor": api.bearer(api.auditor),
    }
    # an app of its own over the same store: schemathesis runs the app's lifespan, and ending it shuts down
    # that app's job runner, which the session's client would otherwise go on using
    schema = from_asgi("/openapi.json", create_app(api.crm.settings, api.crm))
    ran = 0
    for result in schema.get_all_operations():
        operation = cast(Any, result).ok()  # an invalid schema raises here, failing the test
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        role = operation.definition.raw.get("x-role")
        headers = credentials.get(role, credentials["partner"])
        for mode, checks in CHECKS.items():
            try:
                exercise(operation, mode, headers, checks)
            except Unsatisfiable:
                # an operation that takes no input has no invalid input to send
                assert mode is GenerationMode.NEGATIVE, operation.path
            ran += 1
    assert ran >= 10


def exercise(operation: Any, mode: GenerationMode, headers: dict[str, str], checks: list[Any]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def run(case: Any) -> None:
        # a reconciliation walks every chain event of the shared chain: seconds on eth-tester
        case.call_and_validate(headers=headers, checks=checks, timeout=120)

    run()
