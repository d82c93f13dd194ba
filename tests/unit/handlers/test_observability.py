"""Tracing: Powertools' Tracer in Lambda with tracing on; nothing of X-Ray loaded when tracing is off."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

LAMBDA = {"AWS_LAMBDA_FUNCTION_NAME": "jobs-submit"}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),  # not in Lambda: Powertools' own rule
        (LAMBDA, True),
        ({**LAMBDA, "POWERTOOLS_TRACE_DISABLED": "true"}, False),
        ({**LAMBDA, "POWERTOOLS_TRACE_DISABLED": " TRUE "}, False),
        ({**LAMBDA, "POWERTOOLS_TRACE_DISABLED": "1"}, False),
        ({**LAMBDA, "POWERTOOLS_TRACE_DISABLED": "false"}, True),
    ],
)
def test_tracing_applies_in_lambda_unless_disabled(environ: dict[str, str], expected: bool) -> None:
    # Imported here, not at collection: the module builds Powertools singletons from the environment that the
    # handler fixtures set up.
    from lambda_handlers.observability import tracing_enabled

    assert tracing_enabled(environ) is expected


def _import_status(extra: dict[str, str]) -> dict[str, object]:
    code = (
        "import json, sys; import lambda_handlers.status as s; "
        "print(json.dumps({'xray': 'aws_xray_sdk' in sys.modules, 'tracer': type(s.tracer).__name__}))"
    )
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_LAMBDA", "POWERTOOLS_TRACE"))},
        "AWS_DEFAULT_REGION": "us-east-1",
        "ASYNC_JOB_TABLE_NAME": "jobs",
        "ASYNC_JOB_RETRY_AFTER_SECONDS": "5",
        "ASYNC_JOB_TTL_SECONDS": "3600",
        "POWERTOOLS_SERVICE_NAME": "jobs",
        "POWERTOOLS_METRICS_NAMESPACE": "Jobs",
        **extra,
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_tracing_off_loads_nothing_of_xray() -> None:
    assert _import_status({**LAMBDA, "POWERTOOLS_TRACE_DISABLED": "true"}) == {
        "xray": False,
        "tracer": "_NoTracer",
    }


def test_tracing_on_in_lambda_uses_powertools_tracer() -> None:
    assert _import_status(LAMBDA) == {"xray": True, "tracer": "Tracer"}
