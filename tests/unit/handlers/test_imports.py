"""Start-up cost: what importing the runtime pulls in (every module is paid for at each cold start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def imported_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    script = f"import sys\n{code}\nimport json\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_the_package_a_team_imports_loads_no_aws_sdk_nor_powertools() -> None:
    modules = imported_after("import lambda_handlers\nfrom lambda_handlers import JobContext, JobFailedError")

    heavy = {
        m for m in modules if m.split(".")[0] in {"boto3", "botocore", "aws_lambda_powertools", "aws_cdk"}
    }
    assert heavy == set()


def test_the_runtimes_pure_modules_load_no_aws_sdk_nor_powertools() -> None:
    modules = imported_after(
        "import lambda_handlers.job, lambda_handlers.idempotency, lambda_handlers.models, lambda_handlers.messages"
    )

    assert {m for m in modules if m.split(".")[0] in {"boto3", "botocore", "aws_lambda_powertools"}} == set()


def test_the_api_functions_never_load_the_cdk() -> None:
    env = {
        "ASYNC_JOB_TABLE_NAME": "t",
        "ASYNC_JOB_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
        "ASYNC_JOB_MAX_PAYLOAD_BYTES": "1024",
        "ASYNC_JOB_TTL_SECONDS": "60",
        "ASYNC_JOB_RETRY_AFTER_SECONDS": "5",
        "ASYNC_JOB_HANDLER": "m.f",
        "ASYNC_JOB_MAX_RECEIVE_COUNT": "3",
        "POWERTOOLS_METRICS_NAMESPACE": "n",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    code = "import lambda_handlers.submit, lambda_handlers.status, lambda_handlers.worker, lambda_handlers.dead_letter"

    modules = imported_after(code, env)

    assert "lambda_handlers.worker" in modules
    assert not {m for m in modules if m.startswith(("aws_cdk", "constructs", "jsii", "boto3.resources"))}
