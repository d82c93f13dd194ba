#!/usr/bin/env python3
"""Integration test on AWS: deploy an AsyncJobApi, submit a job, wait until it reads SUCCEEDED.

Run by integ-runner from the repository root, with AWS credentials (docs/deploy.md)::

    npx integ-runner --directory tests/integ --language python --update-on-failed

It deploys two stacks: ``AsyncJobInteg`` (the construct, with the sample app's job) and the IntegTest's
assertion stack, whose custom resources

1. invoke the submit function with an API Gateway proxy event for ``POST /jobs`` (the API is IAM-authorized,
   and the construct grants API Gateway no test-invoke permission, so the request goes to the function itself,
   as API Gateway would send it), and read the new job's id from the 202's body;
2. invoke the status function with the event of ``GET /jobs/{id}``, by the same caller, every 10 s until its
   200's body says ``"status": "SUCCEEDED"`` (5 minutes at most: the job takes about a second).

The worker runs it from the real queue, so the whole path but API Gateway's SigV4 check is exercised. Both
stacks are destroyed afterwards (the construct's resources are made removable here: ``RemovalPolicy.DESTROY``).
CI does not deploy: ``tests/integ/test_integ_snapshot.py`` checks that this app still synthesizes the committed
snapshot (``integ_async_job.py.snapshot/``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk.integ_tests_alpha import ExpectedResult, IntegTest, Match

from async_job_construct import AsyncJobApi

ROOT: Final = Path(__file__).resolve().parents[2]
STACK_NAME: Final = "AsyncJobInteg"
TEST_NAME: Final = "AsyncJobIntegTest"
#: Who submits and reads the job (the identity API Gateway would put in the event; the job's owner).
CALLER: Final = "integ-runner"
#: The request's host and stage as the function sees them: the job's Location is built from them.
DOMAIN: Final = "integ.invalid"
STAGE: Final = "integ"
#: The sample job, made short: one step of one second.
PAYLOAD: Final = {"seconds": 1, "steps": 1}
_PLACEHOLDER: Final = "@@TOKEN@@"


def proxy_event(method: str, resource: str, path: str, **extra: Any) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy event, as API Gateway sends it to the function of ``resource``."""
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json", "Host": DOMAIN},
        "multiValueHeaders": {"Content-Type": ["application/json"], "Host": [DOMAIN]},
        "queryStringParameters": None,
        "pathParameters": None,
        "body": None,
        "isBase64Encoded": False,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "stage": STAGE,
            "domainName": DOMAIN,
            "identity": {"caller": CALLER, "userArn": CALLER},
        },
        **extra,
    }


def submit_event() -> dict[str, Any]:
    """``POST /jobs`` with the sample job's payload."""
    return proxy_event("POST", "/jobs", "/jobs", body=json.dumps(PAYLOAD))


def status_event(job_id: str) -> dict[str, Any]:
    """``GET /jobs/{id}`` of ``job_id`` (a token at synth: the id the submit returned)."""
    return proxy_event("GET", "/jobs/{id}", f"/jobs/{job_id}", pathParameters={"id": job_id})


def json_with_token(event: Callable[[str], dict[str, Any]], token: str) -> str:
    """``json.dumps(event(token))`` for a ``token`` known only at deploy time (a plain id: no quote in it).

    The assertion provider JSON-encodes each parameter at synth and decodes it before the call; a token's
    value is spliced into the encoded text unescaped, so a JSON document made with ``Stack.to_json_string``
    would arrive with its quotes unescaped and fail to decode. So the document is written here with a
    placeholder, JSON-encoded once more (what the provider's own encoding would have done), and split at the
    placeholder: the provider's quotes then close a correctly escaped string around the token's value.
    """
    encoded = json.dumps(json.dumps(event(_PLACEHOLDER)))[1:-1]  # the escaped body of a JSON string
    parts: list[str] = []
    for i, literal in enumerate(encoded.split(_PLACEHOLDER)):
        parts.extend([token, literal] if i else [literal])
    return cdk.Fn.join("", parts)


def build_app(outdir: str | None = None) -> cdk.App:
    """The integ app: the stack under test and the IntegTest with its assertions."""
    context = {
        **json.loads((ROOT / "cdk.json").read_text())["context"],
        # the assertion stack imports the stack's function names: keep CloudFormation's exports (the default,
        # said explicitly; integ-runner destroys the assertion stack first)
        "@aws-cdk/core:defaultCrossStackReferences": "strong",
    }
    app = cdk.App(outdir=outdir, context=context)
    stack = cdk.Stack(app, STACK_NAME)
    jobs = AsyncJobApi(
        stack,
        "Jobs",
        handler="report.generate",
        code=lambda_.Code.from_asset(str(ROOT / "sample_jobs")),
        timeout=cdk.Duration.minutes(1),
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    # No update workflow: it would deploy the committed snapshot first, which holds no asset sources.
    integ = IntegTest(app, TEST_NAME, test_cases=[stack], diff_assets=False, stack_update_workflow=False)

    submitted = integ.assertions.invoke_function(
        function_name=jobs.submit_function.function_name,
        payload=json.dumps(submit_event()),
    )
    job_id = submitted.get_att_string("Payload.body.id")
    status = integ.assertions.invoke_function(
        function_name=jobs.status_function.function_name, payload=json_with_token(status_event, job_id)
    )
    status.expect(
        ExpectedResult.object_like(
            {
                "StatusCode": 200,
                "Payload": Match.serialized_json(
                    Match.object_like(
                        {
                            "statusCode": 200,
                            "body": Match.serialized_json(Match.object_like({"status": "SUCCEEDED"})),
                        }
                    )
                ),
            }
        )
    )
    status.wait_for_assertions(total_timeout=cdk.Duration.minutes(5), interval=cdk.Duration.seconds(10))
    submitted.next(status)
    return app


if __name__ == "__main__":
    build_app().synth()
