"""The API-level props of ``AsyncJobApi``, resolved to their documented defaults and checked once."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Annotations, Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from async_job_construct import defaults
from async_job_construct.auth import JobApiAuth, JobApiAuthKind
from async_job_construct.validation import (
    PropValueError,
    check_duration,
    check_duration_range,
    check_instance,
    check_int_range,
)
from async_job_construct.websocket_options import JobWebSocketOptions, ResolvedWebSocket

__all__ = ["ApiProps", "refuse_partial_single_type"]


@dataclass(frozen=True)
class ApiProps:
    """Every API-level prop, resolved (``None`` given means the documented default)."""

    job_ttl: Duration
    poll_interval: Duration
    removal_policy: RemovalPolicy
    log_retention: logs.RetentionDays
    runtime: lambda_.Runtime
    architecture: lambda_.Architecture
    tracing: bool
    trace_aws_calls: bool
    metrics_namespace: str
    auth: JobApiAuth
    api_key_required: bool
    operators: tuple[str, ...]
    throttling_rate_limit: int
    throttling_burst_limit: int
    encryption_key: kms.IKey | None
    idempotency_key_required: bool
    cloud_watch_role: bool
    cors: apigateway.CorsOptions | None
    web_acl_arn: str | None
    #: The WebSocket's options, resolved; None: no WebSocket.
    websocket: ResolvedWebSocket | None = None

    @staticmethod
    def resolve(
        scope: Construct,
        *,
        job_ttl: Duration | None,
        poll_interval: Duration | None,
        removal_policy: RemovalPolicy | None,
        log_retention: logs.RetentionDays | None,
        runtime: lambda_.Runtime | None,
        architecture: lambda_.Architecture | None,
        tracing: bool | None,
        trace_aws_calls: bool | None,
        metrics_namespace: str | None,
        auth: JobApiAuth | None,
        api_key_required: bool | None,
        operators: Sequence[str] | None,
        throttling_rate_limit: int | None,
        throttling_burst_limit: int | None,
        encryption_key: kms.IKey | None,
        idempotency_key_required: bool | None,
        cloud_watch_role: bool | None,
        cors: apigateway.CorsOptions | None,
        web_acl_arn: str | None,
        websocket: JobWebSocketOptions | bool | None = None,
    ) -> ApiProps:
        """Resolve every default and check every value (``PropValueError`` naming the prop and the fix)."""
        props = ApiProps(
            job_ttl=defaults.DEFAULT_JOB_TTL if job_ttl is None else check_duration("job_ttl", job_ttl),
            poll_interval=(
                defaults.DEFAULT_POLL_INTERVAL
                if poll_interval is None
                else check_duration("poll_interval", poll_interval)
            ),
            removal_policy=defaults.DEFAULT_REMOVAL_POLICY if removal_policy is None else removal_policy,
            log_retention=defaults.DEFAULT_LOG_RETENTION if log_retention is None else log_retention,
            runtime=defaults.DEFAULT_RUNTIME if runtime is None else runtime,
            architecture=defaults.DEFAULT_ARCHITECTURE if architecture is None else architecture,
            tracing=True if tracing is None else tracing,
            trace_aws_calls=False if trace_aws_calls is None else trace_aws_calls,
            metrics_namespace=(
                defaults.DEFAULT_METRICS_NAMESPACE if metrics_namespace is None else metrics_namespace
            ),
            auth=JobApiAuth.iam() if auth is None else auth,
            api_key_required=False if api_key_required is None else api_key_required,
            operators=() if operators is None else tuple(operators),
            throttling_rate_limit=(
                defaults.DEFAULT_THROTTLING_RATE_LIMIT
                if throttling_rate_limit is None
                else throttling_rate_limit
            ),
            throttling_burst_limit=(
                defaults.DEFAULT_THROTTLING_BURST_LIMIT
                if throttling_burst_limit is None
                else throttling_burst_limit
            ),
            encryption_key=encryption_key,
            idempotency_key_required=False if idempotency_key_required is None else idempotency_key_required,
            cloud_watch_role=False if cloud_watch_role is None else cloud_watch_role,
            cors=cors,
            web_acl_arn=web_acl_arn,
        )
        for prop, value, expected, example in (
            ("runtime", props.runtime, lambda_.Runtime, "lambda_.Runtime.PYTHON_3_14"),
            ("architecture", props.architecture, lambda_.Architecture, "lambda_.Architecture.ARM_64"),
            ("auth", props.auth, JobApiAuth, "JobApiAuth.iam()"),
        ):
            check_instance(prop, value, expected, example)
        props._validate()
        props = _with_websocket(props, websocket)
        if props.auth.kind is JobApiAuthKind.NONE:
            Annotations.of(scope).add_warning_v2(
                "async-job:no-auth",
                "auth is JobApiAuth.none(): anyone who can reach the API can submit jobs"
                + (
                    ", and every caller of an API key shares the key's jobs."
                    if props.api_key_required
                    else " and all callers share one owner, 'anonymous'. Use IAM, Cognito or a custom authorizer."
                ),
            )
        return props

    def _validate(self) -> None:
        check_duration_range("job_ttl", self.job_ttl, Duration.hours(1), Duration.days(365))
        check_duration_range("poll_interval", self.poll_interval, Duration.seconds(1), Duration.hours(1))
        check_int_range("throttling_rate_limit", self.throttling_rate_limit, 1, 10000)
        check_int_range("throttling_burst_limit", self.throttling_burst_limit, 1, 5000)
        for operator in self.operators:
            if not operator or operator != operator.strip():
                raise PropValueError(
                    "operators",
                    repr(operator),
                    "must hold caller identities, not empty or padded strings",
                    "Pass identities as the API sees them, e.g. 'arn:aws:iam::123456789012:role/Operators'.",
                )


def _with_websocket(props: ApiProps, websocket: JobWebSocketOptions | bool | None) -> ApiProps:
    """``props`` with the WebSocket's options resolved: ``True`` is ``JobWebSocketOptions()``, ``False`` none."""
    if websocket is None or websocket is False:
        return props
    if websocket is True:
        websocket = JobWebSocketOptions()
    check_instance("websocket", websocket, JobWebSocketOptions, "websocket=True or JobWebSocketOptions(...)")
    resolved = websocket.resolve(
        auth=props.auth.kind,
        rate_limit=props.throttling_rate_limit,
        burst_limit=props.throttling_burst_limit,
    )
    return dataclasses.replace(props, websocket=resolved)


def refuse_partial_single_type(handler: object, code: object, single_type: Mapping[str, object]) -> None:
    """Raise unless ``handler`` and ``code`` come together, and a job type's props only with them."""
    if (handler is None) != (code is None):
        missing = "code" if code is None else "handler"
        raise PropValueError(
            missing,
            None,
            "is required with " + ("handler" if missing == "code" else "code"),
            "Pass both handler and code for the single job type 'jobs', or neither and call add_job_type.",
        )
    if handler is None:
        for prop, value in single_type.items():
            if value is not None:
                raise PropValueError(
                    prop,
                    repr(value),
                    "is a job type's prop, and this AsyncJobApi has no handler (no job type of its own)",
                    f"Pass it to add_job_type(name, handler=..., code=..., {prop}=...), or give handler and code "
                    "here.",
                )
