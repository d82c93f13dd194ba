"""``AsyncJobApi``: the asynchronous request-reply pattern as one construct."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final

from aws_cdk import (
    Acknowledgment,
    Annotations,
    Aws,
    CfnResource,
    Duration,
    RemovalPolicy,
    Stack,
    Token,
    Validations,
)
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from async_job_construct.auth import JobApiAuth, JobApiAuthKind
from async_job_construct.runtime_assets import runtime_assets
from async_job_construct.validation import (
    PropValueError,
    check_duration_range,
    check_int_range,
    check_python_handler,
)

__all__ = ["AsyncJobApi"]

DEFAULT_TIMEOUT: Final = Duration.minutes(5)
DEFAULT_MEMORY_SIZE: Final = 1024
API_MEMORY_SIZE: Final = 256
DEFAULT_MAX_RECEIVE_COUNT: Final = 3
VISIBILITY_TIMEOUT_FACTOR: Final = 6
DEFAULT_BATCH_SIZE: Final = 1
DEFAULT_JOB_TTL: Final = Duration.days(7)
DEFAULT_MAX_PAYLOAD_BYTES: Final = 256 * 1024
DEFAULT_POLL_INTERVAL: Final = Duration.seconds(5)
DEFAULT_LOG_RETENTION: Final = logs.RetentionDays.ONE_MONTH
DEFAULT_METRICS_NAMESPACE: Final = "AsyncJobs"
DEFAULT_RUNTIME: Final = lambda_.Runtime.PYTHON_3_14
DEFAULT_RETRY_BASE_DELAY: Final = Duration.seconds(10)
DEFAULT_RETRY_MAX_DELAY: Final = Duration.minutes(15)
DEFAULT_THROTTLING_RATE_LIMIT: Final = 100
DEFAULT_THROTTLING_BURST_LIMIT: Final = 200
QUEUE_RETENTION: Final = Duration.days(14)
#: SQS accepts messages up to 1 MiB; the envelope ``{"v":1,"jobId":"<uuid>","payload":...}`` takes the rest.
MAX_PAYLOAD_BYTES_LIMIT: Final = 1024 * 1024 - 1024
#: The Powertools for AWS Lambda (Python) v3 public layer, published in account 017000801446 of each region.
POWERTOOLS_LAYER_ACCOUNT: Final = "017000801446"
POWERTOOLS_LAYER_VERSION: Final = 36
#: Marks the resources of each ``AsyncJobApi`` in the template, for tools such as the local runtime.
METADATA_KEY: Final = "AsyncJob"

_RESERVED_ENV_PREFIXES: Final = ("ASYNC_JOB_", "AWS_", "LAMBDA_", "_")

#: The stage's access log line (JSON), with the latencies a job API is judged by.
ACCESS_LOG_FIELDS: Final = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "caller": "$context.identity.caller",
    "user": "$context.identity.user",
    "principalId": "$context.authorizer.principalId",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integrationStatus",
    "errorType": "$context.error.responseType",
}

#: checkov findings this design has on purpose, with the reason a reviewer gets (see the README's security model).
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


class _Needs(Enum):
    """What a gateway response type needs to be answered at all (besides an authorization kind)."""

    NOTHING = "nothing"
    API_KEY = "an API key (api_key_required)"
    WEB_ACL = "a web ACL (web_acl_arn)"


@dataclass(frozen=True)
class _GatewayProblem:
    """One of API Gateway's own answers, as an RFC 9457 problem (a ``GatewayResponse``).

    ``status`` is the one status API Gateway answers the type with; it is set on the response and in the body.
    None where the status varies (``DEFAULT_4XX``: 400 or 403; ``DEFAULT_5XX``, which covers
    ``INTEGRATION_FAILURE``: 500 when Lambda refuses the invocation, 502 for a function error): a gateway
    response template is not VTL (plain ``$context`` substitution, no ``#if``, no status variable), so the body
    cannot say it, and pinning one would change what clients receive. ``detail`` is a template expression: a
    JSON string constant or ``$context.error.messageString`` (API Gateway quotes and escapes that one only).
    """

    response_type: apigateway.ResponseType
    status: int | None
    slug: str
    title: str
    detail: str = "$context.error.messageString"
    #: The authorization kinds under which API Gateway can answer this type.
    auth: frozenset[JobApiAuthKind] = frozenset(JobApiAuthKind)
    needs: _Needs = _Needs.NOTHING


_REJECTED: Final = "Request rejected by the API gateway"
_FAILED: Final = "The API gateway failed to handle the request"
_SIGNED: Final = frozenset({JobApiAuthKind.IAM})
_AUTHORIZED: Final = frozenset({JobApiAuthKind.IAM, JobApiAuthKind.COGNITO, JobApiAuthKind.CUSTOM})
_TOKENS: Final = frozenset({JobApiAuthKind.COGNITO, JobApiAuthKind.CUSTOM})


def _rejected(
    response_type: apigateway.ResponseType,
    status: int,
    auth: frozenset[JobApiAuthKind] = frozenset(JobApiAuthKind),
    needs: _Needs = _Needs.NOTHING,
) -> _GatewayProblem:
    title = _FAILED if status >= 500 else _REJECTED
    return _GatewayProblem(
        response_type, status, f"gateway-{response_type.response_type}", title, auth=auth, needs=needs
    )


#: API Gateway's own answers, as RFC 9457 problems, one ``GatewayResponse`` each where the API can give it (the
#: local runtime reads them from the template). A type whose status API Gateway fixes gets its own response,
#: so that its problem carries ``status``; the others (and those this API cannot give: BAD_REQUEST_PARAMETERS,
#: as the only required parameter is the path's id; QUOTA_EXCEEDED, as the usage plan sets no quota;
#: UNSUPPORTED_MEDIA_TYPE, which needs a strict passthrough that Lambda proxy integrations do not have;
#: INTEGRATION_TIMEOUT, as the API's functions time out at 10 s, before API Gateway's 29 s) fall back to the
#: DEFAULT_4XX and DEFAULT_5XX problems. Default statuses: AWS's "Gateway response types for API Gateway".
GATEWAY_PROBLEMS: Final = (
    _GatewayProblem(
        apigateway.ResponseType.BAD_REQUEST_BODY,
        400,
        "invalid-json",
        "Invalid JSON",
        # A constant: API Gateway does not JSON-escape $context.error.validationErrorString (parser messages
        # hold double quotes), so quoting it into the template would answer invalid JSON. The request model asks
        # for any JSON value, so this answers a body that is not JSON only; the submit function answers
        # body-not-object for JSON that is not an object (a gateway response cannot tell the two apart).
        '"The body is not JSON (RFC 8259: UTF-8 text, no NaN or Infinity); API Gateway rejected it before any '
        'function ran."',
    ),
    _rejected(apigateway.ResponseType.MISSING_AUTHENTICATION_TOKEN, 403),
    _rejected(apigateway.ResponseType.ACCESS_DENIED, 403, _AUTHORIZED),
    _rejected(apigateway.ResponseType.INVALID_SIGNATURE, 403, _SIGNED),
    _rejected(apigateway.ResponseType.EXPIRED_TOKEN, 403, _SIGNED),
    _rejected(apigateway.ResponseType.UNAUTHORIZED, 401, _TOKENS),
    _rejected(apigateway.ResponseType.AUTHORIZER_FAILURE, 500, frozenset({JobApiAuthKind.CUSTOM})),
    _rejected(
        apigateway.ResponseType.AUTHORIZER_CONFIGURATION_ERROR, 500, frozenset({JobApiAuthKind.CUSTOM})
    ),
    _rejected(apigateway.ResponseType.INVALID_API_KEY, 403, needs=_Needs.API_KEY),
    _rejected(apigateway.ResponseType.WAF_FILTERED, 403, needs=_Needs.WEB_ACL),
    _rejected(apigateway.ResponseType.THROTTLED, 429),
    _rejected(apigateway.ResponseType.REQUEST_TOO_LARGE, 413),
    _GatewayProblem(
        apigateway.ResponseType.DEFAULT_4_XX, None, "gateway-$context.error.responseType", _REJECTED
    ),
    _GatewayProblem(
        apigateway.ResponseType.DEFAULT_5_XX, None, "gateway-$context.error.responseType", _FAILED
    ),
)


def _skip_checkov(resource: Construct, check: str, reason: str) -> None:
    """Record a justified checkov skip in the template metadata of ``resource``."""
    cfn = resource.node.default_child
    assert isinstance(cfn, CfnResource)
    metadata = cfn.get_metadata("checkov") or {"skip": []}
    metadata["skip"].append({"id": check, "comment": reason})
    cfn.add_metadata("checkov", metadata)


def _is_supported_python(runtime: lambda_.Runtime) -> bool:
    prefix = "python3."
    if runtime.family != lambda_.RuntimeFamily.PYTHON or not runtime.name.startswith(prefix):
        return False
    minor = runtime.name.removeprefix(prefix)
    return minor.isdigit() and int(minor) >= 11


class AsyncJobApi(Construct):
    """A REST API that runs a long Python handler asynchronously: ``202 Accepted`` now, the result by polling.

    ``POST /jobs`` validates the JSON body, records the job ``QUEUED`` in a DynamoDB status table, enqueues it
    on SQS and answers ``202`` with ``Location`` and ``Retry-After``. A worker Lambda runs the team's handler
    (``handle(payload, job)``) for up to 15 minutes with retries; a dead-letter consumer marks jobs that still
    fail ``FAILED``. ``GET /jobs/{id}`` returns the job to its owner.

    Example
    -------
    >>> jobs = AsyncJobApi(self, "Reports",
    ...     handler="reports.generate",
    ...     code=lambda_.Code.from_asset("jobs"),
    ...     timeout=Duration.minutes(10),
    ... )
    >>> jobs.grant_invoke(reporting_role)
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        handler: str,
        code: lambda_.Code,
        timeout: Duration | None = None,
        memory_size: int | None = None,
        environment: Mapping[str, str] | None = None,
        runtime: lambda_.Runtime | None = None,
        architecture: lambda_.Architecture | None = None,
        max_receive_count: int | None = None,
        visibility_timeout: Duration | None = None,
        batch_size: int | None = None,
        max_concurrency: int | None = None,
        job_ttl: Duration | None = None,
        max_payload_bytes: int | None = None,
        poll_interval: Duration | None = None,
        removal_policy: RemovalPolicy | None = None,
        log_retention: logs.RetentionDays | None = None,
        queue: sqs.IQueue | None = None,
        dead_letter_queue: sqs.IQueue | None = None,
        table: dynamodb.ITable | None = None,
        worker_policy_statements: Sequence[iam.PolicyStatement] | None = None,
        powertools_layer: lambda_.ILayerVersion | None = None,
        tracing: bool | None = None,
        metrics_namespace: str | None = None,
        auth: JobApiAuth | None = None,
        api_key_required: bool | None = None,
        operators: Sequence[str] | None = None,
        throttling_rate_limit: int | None = None,
        throttling_burst_limit: int | None = None,
        cors: apigateway.CorsOptions | None = None,
        encryption_key: kms.IKey | None = None,
        web_acl_arn: str | None = None,
        cloud_watch_role: bool | None = None,
        idempotency_key_required: bool | None = None,
        retry_base_delay: Duration | None = None,
        retry_max_delay: Duration | None = None,
        trace_aws_calls: bool | None = None,
    ) -> None:
        """Create the job API.

        Parameters
        ----------
        handler
            The team's function as ``module.function`` inside ``code``; called as ``function(payload, job)``
            with the request's JSON object and a ``lambda_handlers.JobContext``. Its return value (JSON) becomes
            the job's result; an exception fails the attempt (``JobFailedError`` fails the job at once).
        code
            The team's code asset (``lambda_.Code.from_asset("jobs")``). The runtime is added as a layer.
        timeout
            How long one attempt may run. Default: 5 minutes. At most 15 minutes (the Lambda limit).
        memory_size
            The worker's memory in MiB (CPU scales with it). Default: 1024.
        environment
            Extra environment variables for the worker. Names starting ``ASYNC_JOB_``, ``AWS_``, ``LAMBDA_`` or
            ``_`` are reserved. Default: none.
        runtime
            The worker's Python runtime (3.11 or later). Default: Python 3.14.
        architecture
            The architecture of every function. Default: x86_64 (the one most team dependencies build for).
        max_receive_count
            Attempts before a job is ``FAILED`` (its message dead-lettered). Default: 3, or the redrive
            policy's count when ``queue`` is an ``sqs.Queue`` with a dead-letter queue.
        visibility_timeout
            The queue's visibility timeout: the wait before a crashed attempt is retried. Default: 6 x
            ``timeout`` (AWS's advice for Lambda event sources). Must be >= ``timeout`` and <= 12 hours.
        batch_size
            Messages one worker invocation takes (run one after another within one ``timeout``). Default: 1.
        max_concurrency
            Most concurrent worker invocations the queue may start (2-1000). Default: no limit beyond the
            account's concurrency.
        job_ttl
            How long a job (and its result) stays readable after it ends (SUCCEEDED, FAILED or CANCELLED). An
            unfinished job is kept however long it waits (at most 14 days, SQS's message retention, plus
            ``job_ttl``). Default: 7 days.
        max_payload_bytes
            The largest request body accepted, in bytes; larger ones get ``413``. Default: 262144 (256 KiB).
            At most 1047552 (SQS's 1 MiB message limit less the envelope).
        poll_interval
            The ``Retry-After`` the API advises while a job is not finished. Default: 5 seconds.
        removal_policy
            What happens to the table, the queues and the log groups when they leave the stack.
            Default: ``RemovalPolicy.RETAIN`` (nothing a client was promised is deleted by accident).
        log_retention
            Retention of every function's log group. Default: one month.
        queue
            Bring your own job queue instead of the one created here. Excludes ``visibility_timeout``.
            Default: a new SQS-encrypted, TLS-only queue.
        dead_letter_queue
            The dead-letter queue of ``queue``; required with an imported ``queue`` (an ``sqs.Queue`` with a
            redrive policy provides its own). Default: a new one.
        table
            Bring your own status table (partition key ``pk`` of type string; enable TTL on ``expiresAt``).
            Default: a new on-demand table with TTL and point-in-time recovery.
        worker_policy_statements
            Extra IAM statements for the worker's role (what the team's handler calls). Default: none.
            ``jobs.worker_function`` can also be passed to any ``grant_*``.
        powertools_layer
            The Powertools for AWS Lambda (Python) layer. Default: the public v3 layer for the function's
            region, runtime and architecture.
        tracing
            X-Ray tracing on the functions and the API stage (the platform's segments: API Gateway, each
            invocation with its init and duration). Default: true.
        trace_aws_calls
            With ``tracing``, also record a subsegment for every AWS call the runtime makes (Powertools' Tracer
            patching botocore). Costs about 250 ms of every cold start (the X-Ray SDK's import, measured by
            ``bench/cold_start.py``), so it is opt-in. Default: false.
        metrics_namespace
            The CloudWatch namespace of the job metrics. Default: ``AsyncJobs``.
        auth
            How callers authenticate, which also decides who owns a job: ``JobApiAuth.iam()``,
            ``.cognito(pools)``, ``.custom(authorizer)`` or ``.none()`` (a synth warning). Default: IAM (SigV4).
        api_key_required
            Require an API key (``x-api-key``) on every job route, metered by ``usage_plan``; add keys with
            ``jobs.usage_plan.add_api_key(key)``. Default: false.
        operators
            Caller identities (as the API sees them: IAM role or user ARNs, Cognito subs, authorizer principal
            ids) that may read every job, not only their own. Default: none.
        throttling_rate_limit
            Steady-state requests per second the stage accepts before answering ``429``. Default: 100.
        throttling_burst_limit
            Burst of requests the stage accepts. Default: 200.
        cors
            CORS preflight for browser clients. Default: none (no browser access).
        encryption_key
            A customer-managed KMS key for the queues and the table. Default: SQS-managed encryption for the
            queues and an AWS-managed key for the table.
        web_acl_arn
            A WAFv2 web ACL (regional) to associate with the API stage. Default: none.
        cloud_watch_role
            Create the account-level role that lets API Gateway write the stage's access and execution logs
            (one per account and region; skip it when the account already has one). Default: false.
        idempotency_key_required
            Refuse ``POST /jobs`` without an ``Idempotency-Key`` header (``400``). Either way a key given makes
            the request idempotent for that caller. Default: false.
        retry_base_delay
            The delay before the first retry of a failed attempt; it doubles per attempt, with full jitter, up to
            ``retry_max_delay``. Default: 10 seconds.
        retry_max_delay
            The longest delay between two attempts (at most 12 hours, SQS's visibility limit). Default: 15 minutes.
        """
        super().__init__(scope, id)

        self.timeout: Duration = timeout if timeout is not None else DEFAULT_TIMEOUT
        self.memory_size: int = memory_size if memory_size is not None else DEFAULT_MEMORY_SIZE
        self.runtime: lambda_.Runtime = runtime if runtime is not None else DEFAULT_RUNTIME
        self.architecture: lambda_.Architecture = (
            architecture if architecture is not None else lambda_.Architecture.X86_64
        )
        self.batch_size: int = batch_size if batch_size is not None else DEFAULT_BATCH_SIZE
        self.max_concurrency: int | None = max_concurrency
        self.job_ttl: Duration = job_ttl if job_ttl is not None else DEFAULT_JOB_TTL
        self.max_payload_bytes: int = (
            max_payload_bytes if max_payload_bytes is not None else DEFAULT_MAX_PAYLOAD_BYTES
        )
        self.poll_interval: Duration = poll_interval if poll_interval is not None else DEFAULT_POLL_INTERVAL
        self.removal_policy: RemovalPolicy = (
            removal_policy if removal_policy is not None else RemovalPolicy.RETAIN
        )
        self.log_retention: logs.RetentionDays = (
            log_retention if log_retention is not None else DEFAULT_LOG_RETENTION
        )
        self.tracing: bool = tracing if tracing is not None else True
        self.trace_aws_calls: bool = trace_aws_calls if trace_aws_calls is not None else False
        self.metrics_namespace: str = (
            metrics_namespace if metrics_namespace is not None else DEFAULT_METRICS_NAMESPACE
        )
        self.handler: str = handler
        self._functions_and_roles: list[tuple[lambda_.Function, iam.Role]] = []
        self.auth: JobApiAuth = auth if auth is not None else JobApiAuth.iam()
        self.api_key_required: bool = api_key_required if api_key_required is not None else False
        self.operators: tuple[str, ...] = tuple(operators or ())
        self.throttling_rate_limit: int = (
            throttling_rate_limit if throttling_rate_limit is not None else DEFAULT_THROTTLING_RATE_LIMIT
        )
        self.throttling_burst_limit: int = (
            throttling_burst_limit if throttling_burst_limit is not None else DEFAULT_THROTTLING_BURST_LIMIT
        )
        self.encryption_key: kms.IKey | None = encryption_key
        self.idempotency_key_required: bool = (
            idempotency_key_required if idempotency_key_required is not None else False
        )
        self.retry_base_delay: Duration = (
            retry_base_delay if retry_base_delay is not None else DEFAULT_RETRY_BASE_DELAY
        )
        self.retry_max_delay: Duration = (
            retry_max_delay if retry_max_delay is not None else DEFAULT_RETRY_MAX_DELAY
        )
        self._cors = cors
        self._web_acl_arn = web_acl_arn
        self._cloud_watch_role = cloud_watch_role if cloud_watch_role is not None else False

        self._validate_worker(handler, environment or {})
        self._validate_limits()
        self._validate_api()

        self.table: dynamodb.ITable = table if table is not None else self._create_table()
        if table is not None:
            Annotations.of(self).add_warning_v2(
                "async-job:byo-table",
                "table: the table you pass must have partition key 'pk' (string) and TTL on 'expiresAt'; "
                "expired jobs are hidden either way, but only TTL deletes them.",
            )
        self.queue, self.dead_letter_queue, self.max_receive_count, self.visibility_timeout = (
            self._resolve_queues(queue, dead_letter_queue, max_receive_count, visibility_timeout)
        )
        self._warn_if_retries_outlive_retention()

        assets = runtime_assets()
        self.powertools_layer: lambda_.ILayerVersion = (
            powertools_layer if powertools_layer is not None else self._public_powertools_layer()
        )
        self.runtime_layer = lambda_.LayerVersion(
            self,
            "RuntimeLayer",
            code=lambda_.Code.from_asset(str(assets.layer_dir)),
            compatible_runtimes=[self.runtime],
            compatible_architectures=[self.architecture],
            description="async-job-construct runtime (lambda_handlers) for the worker",
        )
        runtime_code = lambda_.Code.from_asset(str(assets.function_dir))
        common_env = {
            "ASYNC_JOB_TABLE_NAME": self.table.table_name,
            "POWERTOOLS_SERVICE_NAME": id,
            "POWERTOOLS_METRICS_NAMESPACE": self.metrics_namespace,
            # Every function that ends a job sets its expiry: job_ttl from the end.
            "ASYNC_JOB_TTL_SECONDS": str(int(self.job_ttl.to_seconds())),
            # Unless AWS calls are traced, the runtime builds no X-Ray tracer at all (a third of its cold start).
            **({} if self.tracing and self.trace_aws_calls else {"POWERTOOLS_TRACE_DISABLED": "true"}),
        }
        retry_after = str(int(self.poll_interval.to_seconds()))

        self.submit_function = self._function(
            "SubmitFunction",
            role="submit",
            code=runtime_code,
            handler="lambda_handlers.submit.handler",
            timeout=Duration.seconds(10),
            memory_size=API_MEMORY_SIZE,
            environment={
                **common_env,
                "ASYNC_JOB_QUEUE_URL": self.queue.queue_url,
                "ASYNC_JOB_MAX_PAYLOAD_BYTES": str(self.max_payload_bytes),
                "ASYNC_JOB_RETRY_AFTER_SECONDS": retry_after,
                "ASYNC_JOB_IDEMPOTENCY_KEY_REQUIRED": "true" if self.idempotency_key_required else "false",
            },
        )
        self.status_function = self._function(
            "StatusFunction",
            role="status",
            code=runtime_code,
            handler="lambda_handlers.status.handler",
            timeout=Duration.seconds(10),
            memory_size=API_MEMORY_SIZE,
            environment={
                **common_env,
                "ASYNC_JOB_RETRY_AFTER_SECONDS": retry_after,
                **({"ASYNC_JOB_OPERATORS": json.dumps(list(self.operators))} if self.operators else {}),
            },
        )
        self.worker_function = self._function(
            "Worker",
            role="worker",
            code=code,
            handler="lambda_handlers.worker.handler",
            timeout=self.timeout,
            memory_size=self.memory_size,
            layers=[self.runtime_layer],
            environment={
                **dict(environment or {}),
                **common_env,
                "ASYNC_JOB_HANDLER": handler,
                "ASYNC_JOB_MAX_RECEIVE_COUNT": str(self.max_receive_count),
                "ASYNC_JOB_RETRY_BASE_SECONDS": str(int(self.retry_base_delay.to_seconds())),
                "ASYNC_JOB_RETRY_MAX_SECONDS": str(int(self.retry_max_delay.to_seconds())),
            },
        )
        self.dead_letter_function = self._function(
            "DeadLetterFunction",
            role="dead-letter",
            code=runtime_code,
            handler="lambda_handlers.dead_letter.handler",
            timeout=Duration.seconds(30),
            memory_size=API_MEMORY_SIZE,
            environment={**common_env, "ASYNC_JOB_MAX_RECEIVE_COUNT": str(self.max_receive_count)},
        )

        # Put (alone or in TransactWriteItems with the idempotency key), Delete to undo a job that could not be
        # enqueued, Get to answer an idempotent replay.
        self.table.grant(self.submit_function, "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:GetItem")
        self.queue.grant(self.submit_function, "sqs:SendMessage")
        if self.queue.encryption_master_key is not None:
            self.queue.encryption_master_key.grant(self.submit_function, "kms:GenerateDataKey", "kms:Decrypt")
        self.table.grant(self.status_function, "dynamodb:GetItem", "dynamodb:UpdateItem")  # read, cancel
        self.table.grant(self.worker_function, "dynamodb:UpdateItem")
        # Get to decide on the job as it is, Update to end it.
        self.table.grant(self.dead_letter_function, "dynamodb:GetItem", "dynamodb:UpdateItem")
        if self.encryption_key is not None:
            # CloudWatch Logs encrypts the log groups with the key; an imported key's policy must allow it.
            self.encryption_key.grant_encrypt_decrypt(
                iam.ServicePrincipal(f"logs.{Stack.of(self).region}.amazonaws.com")
            )
        if self.encryption_key is not None and table is None:
            # table.grant() leaves the table's key to the caller; the queues' grants include theirs.
            for writer in (
                self.submit_function,
                self.status_function,
                self.worker_function,
                self.dead_letter_function,
            ):
                self.encryption_key.grant(
                    writer, "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"
                )
        for statement in worker_policy_statements or ():
            self.worker_function.add_to_role_policy(statement)

        self.worker_function.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                batch_size=self.batch_size,
                max_concurrency=self.max_concurrency,
                report_batch_item_failures=True,
            )
        )
        self.dead_letter_function.add_event_source(
            event_sources.SqsEventSource(
                self.dead_letter_queue, batch_size=10, report_batch_item_failures=True
            )
        )

        self.api = self._create_api(id)
        self._drop_redundant_role_dependencies()
        self.url: str = self.api.url_for_path("/jobs")

    # ----------------------------------------------------------------------------------------------- grants

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` submit, read and cancel its own jobs through the IAM-authorized API.

        Example
        -------
        >>> jobs.grant_invoke(client_role)
        """
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["execute-api:Invoke"],
            resource_arns=[
                self.api.arn_for_execute_api("POST", "/jobs"),
                self.api.arn_for_execute_api("GET", "/jobs/*"),
                self.api.arn_for_execute_api("DELETE", "/jobs/*"),
            ],
        )

    # ------------------------------------------------------------------------------------------- validation

    def _validate_worker(self, handler: str, environment: Mapping[str, str]) -> None:
        check_python_handler("handler", handler)
        check_duration_range(
            "timeout",
            self.timeout,
            Duration.seconds(1),
            Duration.minutes(15),
            "Lambda runs a function for at most 15 minutes; split longer work into several jobs.",
        )
        check_int_range("memory_size", self.memory_size, 128, 10240)
        if not _is_supported_python(self.runtime):
            raise PropValueError(
                "runtime",
                self.runtime.name,
                "must be a Python runtime of version 3.11 or later",
                "Pass lambda_.Runtime.PYTHON_3_14 (the default) or another python3.11+ runtime.",
            )
        for name in environment:
            if name.startswith(_RESERVED_ENV_PREFIXES):
                raise PropValueError(
                    "environment",
                    repr(name),
                    f"must not set a reserved variable (names starting {', '.join(_RESERVED_ENV_PREFIXES)})",
                    "Rename the variable; the construct and Lambda set these themselves.",
                )

    def _validate_limits(self) -> None:
        check_int_range("batch_size", self.batch_size, 1, 10)
        if self.max_concurrency is not None:
            check_int_range("max_concurrency", self.max_concurrency, 2, 1000)
        check_int_range("max_payload_bytes", self.max_payload_bytes, 1, MAX_PAYLOAD_BYTES_LIMIT)
        check_duration_range("job_ttl", self.job_ttl, Duration.hours(1), Duration.days(365))
        check_duration_range("poll_interval", self.poll_interval, Duration.seconds(1), Duration.hours(1))
        check_duration_range(
            "retry_base_delay", self.retry_base_delay, Duration.seconds(1), Duration.hours(12)
        )
        check_duration_range(
            "retry_max_delay",
            self.retry_max_delay,
            self.retry_base_delay,
            Duration.hours(12),
            "It caps the doubling retry_base_delay, so it must be at least that; SQS delays at most 12 hours.",
        )
        if not Token.is_unresolved(self.batch_size) and self.batch_size > 1:
            Annotations.of(self).add_warning_v2(
                "async-job:batch-size",
                f"batch_size is {self.batch_size}: the jobs of one batch run one after another inside a single "
                f"invocation of timeout={self.timeout.to_human_string()}, so a slow job delays the others and "
                "can make them all time out. Keep batch_size=1 unless jobs are short.",
            )

    def _warn_if_retries_outlive_retention(self) -> None:
        """Warn when a job's attempts can take longer than SQS keeps its message (then the job is never run
        again and stays QUEUED until its item expires)."""
        durations = (self.timeout, self.visibility_timeout, self.retry_max_delay)
        if Token.is_unresolved(self.max_receive_count) or any(d.is_unresolved() for d in durations):
            return
        per_attempt = max(
            self.visibility_timeout.to_seconds(),
            self.timeout.to_seconds() + self.retry_max_delay.to_seconds(),
        )
        longest = self.max_receive_count * per_attempt
        if longest > QUEUE_RETENTION.to_seconds():
            Annotations.of(self).add_warning_v2(
                "async-job:retries-outlive-retention",
                f"max_receive_count ({self.max_receive_count}) x the longest attempt (the larger of "
                f"visibility_timeout and timeout + retry_max_delay: {Duration.seconds(per_attempt).to_human_string()}) "
                f"is {Duration.seconds(longest).to_human_string()}, longer than SQS keeps a message "
                f"({QUEUE_RETENTION.to_human_string()}): a job that keeps failing can lose its message before its "
                "last attempt and never end. Lower max_receive_count or retry_max_delay.",
            )

    def _validate_api(self) -> None:
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
        if self.auth.kind is JobApiAuthKind.NONE:
            Annotations.of(self).add_warning_v2(
                "async-job:no-auth",
                "auth is JobApiAuth.none(): anyone who can reach the API can submit jobs"
                + (
                    ", and every caller of an API key shares the key's jobs."
                    if self.api_key_required
                    else " and all callers share one owner, 'anonymous'. Use IAM, Cognito or a custom authorizer."
                ),
            )

    def _resolve_queues(
        self,
        queue: sqs.IQueue | None,
        dead_letter_queue: sqs.IQueue | None,
        max_receive_count: int | None,
        visibility_timeout: Duration | None,
    ) -> tuple[sqs.IQueue, sqs.IQueue, int, Duration]:
        if queue is None:
            if dead_letter_queue is not None:
                raise PropValueError(
                    "dead_letter_queue",
                    dead_letter_queue.node.path,
                    "is only used together with `queue`",
                    "Pass `queue` too, or leave both out to let the construct create them.",
                )
            count = max_receive_count if max_receive_count is not None else DEFAULT_MAX_RECEIVE_COUNT
            check_int_range("max_receive_count", count, 1, 1000)
            visibility = (
                visibility_timeout
                if visibility_timeout is not None
                else Duration.seconds(self.timeout.to_seconds() * VISIBILITY_TIMEOUT_FACTOR)
            )
            self._validate_visibility(visibility)
            dlq = self._create_queue("DeadLetterQueue", visibility=Duration.seconds(60), dead_letter=None)
            main = self._create_queue(
                "Queue",
                visibility=visibility,
                dead_letter=sqs.DeadLetterQueue(max_receive_count=count, queue=dlq),
            )
            return main, dlq, count, visibility

        if visibility_timeout is not None:
            raise PropValueError(
                "visibility_timeout",
                visibility_timeout.to_human_string(),
                "configures the queue this construct creates and cannot apply to the `queue` you pass",
                "Set the visibility timeout on your queue (at least `timeout`, ideally 6 x) and drop this prop.",
            )
        own_redrive = queue.dead_letter_queue if isinstance(queue, sqs.Queue) else None
        if dead_letter_queue is None and own_redrive is not None:
            dead_letter_queue = own_redrive.queue
            if max_receive_count is None:
                max_receive_count = int(own_redrive.max_receive_count)
        if dead_letter_queue is None or max_receive_count is None:
            raise PropValueError(
                "queue",
                queue.node.path,
                "has no dead-letter queue and max_receive_count this construct can see",
                "Pass dead_letter_queue= and max_receive_count= matching the queue's redrive policy, "
                "so that jobs that keep failing are marked FAILED instead of lost.",
            )
        check_int_range("max_receive_count", max_receive_count, 1, 1000)
        cfn_queue = queue.node.default_child if isinstance(queue, sqs.Queue) else None
        if not isinstance(cfn_queue, sqs.CfnQueue):
            Annotations.of(self).add_warning_v2(
                "async-job:imported-queue",
                "queue: the visibility timeout of an imported queue cannot be checked at synth; it must be at "
                f"least timeout ({self.timeout.to_human_string()}), ideally 6 x, or jobs run twice.",
            )
            return queue, dead_letter_queue, max_receive_count, self.timeout
        seconds = cfn_queue.visibility_timeout
        visibility = Duration.seconds(30 if seconds is None else seconds)  # 30 s: SQS's own default
        self._validate_visibility(visibility)
        return queue, dead_letter_queue, max_receive_count, visibility

    def _validate_visibility(self, visibility: Duration) -> None:
        if visibility.is_unresolved() or self.timeout.is_unresolved():
            return
        check_duration_range(
            "visibility_timeout",
            visibility,
            self.timeout,
            Duration.hours(12),
            f"It must cover one attempt (timeout={self.timeout.to_human_string()}), or SQS hands the job to a "
            "second worker while the first still runs; SQS allows at most 12 hours.",
        )
        advised = self.timeout.to_seconds() * VISIBILITY_TIMEOUT_FACTOR
        if visibility.to_seconds() < advised:
            Annotations.of(self).add_warning_v2(
                "async-job:visibility-timeout",
                f"visibility_timeout is {visibility.to_human_string()}, less than 6 x timeout "
                f"({Duration.seconds(advised).to_human_string()}), AWS's advice for Lambda event sources: "
                "throttled batches may be retried, and use up attempts, before a worker gets to them.",
            )

    # ------------------------------------------------------------------------------------------- resources

    def _mark(self, resource: Construct, role: str) -> None:
        cfn = resource.node.default_child
        if isinstance(cfn, apigateway.CfnRestApi | lambda_.CfnFunction | sqs.CfnQueue | dynamodb.CfnTable):
            cfn.add_metadata(METADATA_KEY, {"api": self.node.path, "role": role})

    def _create_table(self) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute="expiresAt",
            encryption=(
                dynamodb.TableEncryption.AWS_MANAGED
                if self.encryption_key is None
                else dynamodb.TableEncryption.CUSTOMER_MANAGED
            ),
            encryption_key=self.encryption_key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=self.removal_policy,
        )
        self._mark(table, "table")
        if self.encryption_key is None:
            _skip_checkov(
                table,
                "CKV_AWS_119",
                "Encrypted with the AWS-managed key (aws/dynamodb); pass encryption_key for a customer-managed key.",
            )
        return table

    def _create_queue(
        self, id: str, *, visibility: Duration, dead_letter: sqs.DeadLetterQueue | None
    ) -> sqs.Queue:
        queue = sqs.Queue(
            self,
            id,
            visibility_timeout=visibility,
            retention_period=QUEUE_RETENTION,
            encryption=(
                sqs.QueueEncryption.SQS_MANAGED if self.encryption_key is None else sqs.QueueEncryption.KMS
            ),
            encryption_master_key=self.encryption_key,
            enforce_ssl=True,
            dead_letter_queue=dead_letter,
            removal_policy=self.removal_policy,
        )
        self._mark(queue, "queue" if dead_letter is not None else "dead-letter-queue")
        if self.encryption_key is None:
            _skip_checkov(
                queue,
                "CKV_AWS_27",
                "Encrypted at rest by SQS-managed SSE (SqsManagedSseEnabled), which this check does not "
                "recognise; pass encryption_key for a customer-managed key.",
            )
        return queue

    def _public_powertools_layer(self) -> lambda_.ILayerVersion:
        python = self.runtime.name.replace(".", "")  # python3.14 -> python314
        arch = "arm64" if self.architecture.name == lambda_.Architecture.ARM_64.name else "x86_64"
        return lambda_.LayerVersion.from_layer_version_arn(
            self,
            "PowertoolsLayer",
            f"arn:{Aws.PARTITION}:lambda:{Stack.of(self).region}:{POWERTOOLS_LAYER_ACCOUNT}:layer:"
            f"AWSLambdaPowertoolsPythonV3-{python}-{arch}:{POWERTOOLS_LAYER_VERSION}",
        )

    def _log_group(self, id: str) -> logs.LogGroup:
        log_group = logs.LogGroup(
            self,
            id,
            retention=self.log_retention,
            removal_policy=self.removal_policy,
            encryption_key=self.encryption_key,
        )
        if self.encryption_key is None:
            _skip_checkov(
                log_group,
                "CKV_AWS_158",
                "CloudWatch Logs encrypts log data at rest with its own keys; pass encryption_key for a CMK.",
            )
        return log_group

    def _function(
        self,
        id: str,
        *,
        role: str,
        code: lambda_.Code,
        handler: str,
        timeout: Duration,
        memory_size: int,
        environment: Mapping[str, str],
        layers: Sequence[lambda_.ILayerVersion] = (),
    ) -> lambda_.Function:
        log_group = self._log_group(f"{id}Logs")
        # Our own role instead of Lambda's default, which carries the AWS-managed AWSLambdaBasicExecutionRole
        # (logs:CreateLogGroup and writes to every log group): this one writes to its own log group only.
        execution_role = iam.Role(
            self,
            f"{id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{self.node.path}/{id}: its log group, and what grant_* adds",
        )
        log_group.grant_write(execution_role)
        function = lambda_.Function(
            self,
            id,
            runtime=self.runtime,
            architecture=self.architecture,
            code=code,
            handler=handler,
            timeout=timeout,
            memory_size=memory_size,
            environment=dict(environment),
            layers=[*layers, self.powertools_layer],
            tracing=lambda_.Tracing.ACTIVE if self.tracing else lambda_.Tracing.DISABLED,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            role=execution_role,
        )
        self._mark(function, role)
        for check, reason in _CHECKOV_FUNCTION_SKIPS:
            _skip_checkov(function, check, reason)
        self._functions_and_roles.append((function, execution_role))
        return function

    def _drop_redundant_role_dependencies(self) -> None:
        """Keep each function's DependsOn on its role's policy only.

        CDK also makes the function depend on the role itself, which its ``Role: Fn::GetAtt`` already enforces
        (cfn-lint W3005); the policy dependency is the one that matters, so the function never runs without it.
        """
        stack = Stack.of(self)
        for function, execution_role in self._functions_and_roles:
            policy = execution_role.node.try_find_child("DefaultPolicy")
            cfn_function = function.node.default_child
            if policy is None or not isinstance(cfn_function, lambda_.CfnFunction):
                continue
            cfn_policy = policy.node.default_child
            assert isinstance(cfn_policy, iam.CfnPolicy)
            cfn_function.add_override("DependsOn", [stack.get_logical_id(cfn_policy)])

    def _create_api(self, id: str) -> apigateway.RestApi:
        self.access_log_group = self._log_group("AccessLogs")
        api = apigateway.RestApi(
            self,
            "Api",
            description=f"Asynchronous job API of {self.node.path}",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            cloud_watch_role=self._cloud_watch_role,
            deploy_options=apigateway.StageOptions(
                tracing_enabled=self.tracing,
                throttling_rate_limit=self.throttling_rate_limit,
                throttling_burst_limit=self.throttling_burst_limit,
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                metrics_enabled=True,
                access_log_destination=apigateway.LogGroupLogDestination(self.access_log_group),
                access_log_format=apigateway.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)),
            ),
            default_method_options=self.auth.method_options(self),
            default_cors_preflight_options=self._cors,
        )
        self._mark(api, "api")
        _skip_checkov(
            api.deployment_stage,
            "CKV_AWS_120",
            "A job-status API must not cache: a cached GET would hide progress and completion.",
        )
        available = {
            _Needs.NOTHING: True,
            _Needs.API_KEY: self.api_key_required,
            _Needs.WEB_ACL: self._web_acl_arn is not None,
        }
        for problem in GATEWAY_PROBLEMS:
            if self.auth.kind not in problem.auth or not available[problem.needs]:
                continue  # API Gateway never answers this type for this API: no resource for it
            body: dict[str, object] = {
                "type": f"urn:async-job:problem:{problem.slug}",
                "title": problem.title,
            }
            if problem.status is not None:
                body["status"] = problem.status
            api.add_gateway_response(
                f"Problem{problem.response_type.response_type}",
                type=problem.response_type,
                status_code=None if problem.status is None else str(problem.status),
                # The template is keyed by the default content type; the header below is what the client sees.
                templates={"application/json": json.dumps(body)[:-1] + f', "detail": {problem.detail}}}'},
                response_headers={"Content-Type": "'application/problem+json'"},
            )
        # API Gateway rejects a body that is not JSON before any Lambda runs (BAD_REQUEST_BODY, invalid-json).
        # The model asks for no type: JSON that is not an object reaches the submit function, whose
        # body-not-object problem says so; one gateway response cannot answer both (see GATEWAY_PROBLEMS).
        body_model = api.add_model(
            "JobRequest",
            content_type="application/json",
            schema=apigateway.JsonSchema(
                schema=apigateway.JsonSchemaVersion.DRAFT4,
                description="Any JSON value: the submit function requires an object",
            ),
        )
        validator = api.add_request_validator(
            "RequestValidator", validate_request_body=True, validate_request_parameters=True
        )

        jobs = api.root.add_resource("jobs")
        jobs.add_method(
            "POST",
            apigateway.LambdaIntegration(self.submit_function, allow_test_invoke=False),
            api_key_required=self.api_key_required,
            request_models={"application/json": body_model},
            request_validator=validator,
        )
        job = jobs.add_resource("{id}")
        status_integration = apigateway.LambdaIntegration(self.status_function, allow_test_invoke=False)
        for method in ("GET", "DELETE"):
            job.add_method(
                method,
                status_integration,
                api_key_required=self.api_key_required,
                request_parameters={"method.request.path.id": True},
                request_validator=validator,
            )
        self.jobs_resource: apigateway.Resource = jobs
        self.job_resource: apigateway.Resource = job

        self.usage_plan: apigateway.UsagePlan | None = None
        if self.api_key_required:
            self.usage_plan = api.add_usage_plan(
                "UsagePlan",
                description=f"API keys that may call {self.node.path}",
                throttle=apigateway.ThrottleSettings(
                    rate_limit=self.throttling_rate_limit, burst_limit=self.throttling_burst_limit
                ),
                api_stages=[apigateway.UsagePlanPerApiStage(api=api, stage=api.deployment_stage)],
            )
        if self._web_acl_arn is not None:
            from aws_cdk import aws_wafv2 as wafv2  # only with this option: its module is large to import

            wafv2.CfnWebACLAssociation(
                self,
                "WebAclAssociation",
                resource_arn=api.deployment_stage.stage_arn,
                web_acl_arn=self._web_acl_arn,
            )
        self._acknowledge_inherent_findings(api)
        return api

    def _acknowledge_inherent_findings(self, api: apigateway.RestApi) -> None:
        """Acknowledge the scanner findings this design has on purpose, each at the narrowest scope."""
        if self.tracing:
            for function in (
                self.submit_function,
                self.status_function,
                self.worker_function,
                self.dead_letter_function,
            ):
                assert function.role is not None
                Validations.of(function.role).acknowledge(
                    Acknowledgment(
                        id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                        reason="xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level "
                        "permissions (tracing=True).",
                    )
                )
        if self.auth.kind is not JobApiAuthKind.COGNITO:
            for method in (m for m in api.methods if m.http_method != "OPTIONS"):
                Validations.of(method).acknowledge(
                    Acknowledgment(
                        id="AwsSolutions::AwsSolutions-COG4",
                        reason=f"The job routes use {self.auth.kind.value} authorization (the `auth` prop); a "
                        "Cognito user pool authorizer is one of its options, not a requirement.",
                    )
                )
        for method in (m for m in api.methods if m.http_method == "OPTIONS"):
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
        if self._cloud_watch_role:
            Validations.of(api).acknowledge(
                Acknowledgment(
                    id="AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                    "AmazonAPIGatewayPushToCloudWatchLogs]",
                    reason="API Gateway's account-level logging role; AWS maintains this managed policy for "
                    "exactly that role (cloud_watch_role=True).",
                )
            )
