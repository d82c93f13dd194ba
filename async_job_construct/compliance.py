"""The scanner findings this design has on purpose, acknowledged on the exact resource with the reason.

cdk-nag findings are acknowledged through ``Validations.of(resource).acknowledge``; checkov reads skips from the
template metadata (``skip_checkov``). The README's security model lists every one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from aws_cdk import Acknowledgment, CfnResource, Validations
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from async_job_construct.auth import JobApiAuthKind

__all__ = [
    "acknowledge_cloud_watch_role",
    "acknowledge_method_authorization",
    "acknowledge_tracing",
    "skip_checkov",
    "skip_function_checks",
]

#: checkov findings every function of this design has on purpose, with the reason a reviewer gets.
_CHECKOV_FUNCTION_SKIPS: Final = (
    (
        "CKV_AWS_116",
        "Invoked synchronously (API Gateway) or by an SQS event source; a Lambda DLQ applies only to asynchronous "
        "invocations. Jobs that keep failing reach the queue's dead-letter queue and end FAILED.",
    ),
    (
        "CKV_AWS_117",
        "Calls only DynamoDB, SQS and X-Ray endpoints; a VPC adds NAT or endpoint cost and isolates nothing. "
        "Attach one to worker_function when the team's handler needs private resources.",
    ),
    (
        "CKV_AWS_115",
        "Worker concurrency is capped by max_concurrency on its event source and the API by stage throttling; "
        "reserved concurrency would take capacity from the account's other functions.",
    ),
    (
        "CKV_AWS_173",
        "The variables hold resource names and limits, no secrets; Lambda encrypts them at rest with its key.",
    ),
)


def skip_checkov(resource: Construct, check: str, reason: str) -> None:
    """Record a justified checkov skip in the template metadata of ``resource``."""
    cfn = resource.node.default_child
    assert isinstance(cfn, CfnResource)
    metadata = cfn.get_metadata("checkov") or {"skip": []}
    metadata["skip"].append({"id": check, "comment": reason})
    cfn.add_metadata("checkov", metadata)


def skip_function_checks(function: lambda_.Function) -> None:
    """The checkov skips every function of the construct carries."""
    for check, reason in _CHECKOV_FUNCTION_SKIPS:
        skip_checkov(function, check, reason)


def acknowledge_tracing(function: lambda_.Function) -> None:
    """X-Ray's write actions support no resource-level permissions (``tracing=True``)."""
    assert function.role is not None
    Validations.of(function.role).acknowledge(
        Acknowledgment(
            id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            reason="xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level "
            "permissions (tracing=True).",
        )
    )


def acknowledge_method_authorization(methods: Iterable[apigateway.Method], auth: JobApiAuthKind) -> None:
    """The job routes use the authorization ``auth`` chose; CORS preflights carry no credentials."""
    for method in methods:
        if method.http_method == "OPTIONS":
            Validations.of(method).acknowledge(
                Acknowledgment(
                    id="AwsSolutions::AwsSolutions-APIG4",
                    reason="CORS preflight (OPTIONS) requests carry no credentials by the Fetch standard.",
                ),
                Acknowledgment(
                    id="AwsSolutions::AwsSolutions-COG4",
                    reason="CORS preflight (OPTIONS) requests carry no credentials by the Fetch standard.",
                ),
            )
        elif auth is not JobApiAuthKind.COGNITO:
            Validations.of(method).acknowledge(
                Acknowledgment(
                    id="AwsSolutions::AwsSolutions-COG4",
                    reason=f"The job routes use {auth.value} authorization (the `auth` prop); a "
                    "Cognito user pool authorizer is one of its options, not a requirement.",
                )
            )


def acknowledge_cloud_watch_role(api: apigateway.RestApi) -> None:
    """API Gateway's account-level logging role uses the managed policy AWS maintains for it."""
    Validations.of(api).acknowledge(
        Acknowledgment(
            id="AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            reason="API Gateway's account-level logging role; AWS maintains this managed policy for "
            "exactly that role (cloud_watch_role=True).",
        )
    )
