"""``AsyncJobApi``: the asynchronous request-reply pattern, composed of a gateway, a table, shared functions and
one ``JobType`` per kind of job."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

import jsii
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IValidation

from async_job_construct.auth import JobApiAuth
from async_job_construct.bucket import JobBucket
from async_job_construct.functions import FunctionFactory, FunctionOptions
from async_job_construct.gateway import GatewayOptions, JobGateway, logging_account
from async_job_construct.job_type import JobType
from async_job_construct.monitoring import JobMonitoring, MonitoringOptions
from async_job_construct.props import ApiProps, refuse_partial_single_type
from async_job_construct.push import PushOptions
from async_job_construct.runtime_assets import runtime_assets
from async_job_construct.shared_functions import SharedFunctions, service_name
from async_job_construct.table import status_table
from async_job_construct.websocket import JobWebSocket, JobWebSocketOptions
from lambda_handlers.contract import DEFAULT_JOB_TYPE, JOBS_PATH, Env

__all__ = ["AsyncJobApi"]


_T = TypeVar("_T")


class _OfSingleType(Generic[_T]):
    """A resolved prop of the API's one job type, read on the API (``jobs.timeout``) as in the single form."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __get__(self, api: AsyncJobApi, owner: type | None = None) -> _T:
        value: _T = getattr(api._single(self._name), self._name)
        return value


class AsyncJobApi(Construct):
    """A REST API that runs long Python handlers asynchronously: ``202 Accepted`` now, the result by polling.

    ``POST /jobs`` (or ``POST /{type}``) records the job ``QUEUED`` in a DynamoDB status table, enqueues it on
    the type's SQS queue and answers ``202`` with ``Location`` and ``Retry-After``; the type's worker Lambda runs
    the team's handler (``handler(payload, job)``) for up to 15 minutes with retries, or, for a type whose
    ``timeout`` is longer (up to 365 days), as a Lambda durable execution; ``GET``/``DELETE /jobs/{id}`` read and
    cancel any job. The README's props tables give every prop and its default.

    Pass ``handler`` and ``code`` for one job type named ``jobs`` (submitted at ``POST /jobs``); pass neither and
    call ``add_job_type`` for several.

    Examples
    --------
    >>> jobs = AsyncJobApi(self, "Reports", handler="reports.generate", code=lambda_.Code.from_asset("jobs"))
    >>> jobs.grant_invoke(reporting_role)

    >>> media = AsyncJobApi(self, "Media")
    >>> thumbs = media.add_job_type("thumbnails", handler="thumbs.make", code=code, max_concurrency=5)
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        handler: str | None = None,
        code: lambda_.Code | str | os.PathLike[str] | None = None,
        timeout: Duration | None = None,
        invocation_timeout: Duration | None = None,
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
        bucket: s3.IBucket | None = None,
        job_events: str | None = None,
        event_bus: events.IEventBus | None = None,
        webhook_allowed_hosts: Sequence[str] | None = None,
        webhook_max_attempts: int = 8,
        monitoring: MonitoringOptions | None = None,
        worker_policy_statements: Sequence[iam.PolicyStatement] | None = None,
        powertools_layer: lambda_.ILayerVersion | None = None,
        powertools_layer_version: int | str | None = None,
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
        websocket: JobWebSocketOptions | bool | None = None,
    ) -> None:
        """Create the job API, and its one job type ``jobs`` when ``handler`` and ``code`` are given.

        Parameters
        ----------
        handler, code, timeout, invocation_timeout, memory_size, environment, max_receive_count,
        visibility_timeout, batch_size, max_concurrency, max_payload_bytes, queue, dead_letter_queue,
        worker_policy_statements, retry_base_delay, retry_max_delay
            The props of the one job type ``jobs``, as for ``add_job_type``; only with ``handler`` and ``code``.
        runtime, architecture
            Of the API's own functions, and the default of every job type's worker. Default: Python 3.14, x86_64.
        job_ttl
            How long a job stays readable after it ends (1 hour to 365 days). Default: 7 days.
        poll_interval
            The ``Retry-After`` advised while a job is not finished. Default: 5 seconds.
        removal_policy
            Of the table, the queues and the log groups. Default: ``RemovalPolicy.RETAIN``.
        log_retention
            Of every function's log group. Default: one month.
        table
            Bring your own status table (partition key ``pk``, string; TTL on ``expiresAt``). Default: a new one.
        bucket
            Bring your own bucket for results too large for the status item, saved files and large payloads
            (kept under ``jobs/`` and ``payloads/``; expire them yourself). Default: a new one, encrypted (with
            ``encryption_key`` when given), TLS only, public access blocked, objects expiring with their jobs.
        job_events
            ``"terminal"`` (the default): an EventBridge event when a job ends (SUCCEEDED, FAILED, CANCELLED); ``"all"``: on every
            change of status; ``"none"``: no events (and no webhooks). Read from the table's stream.
        event_bus
            Where the events go. Default: the account's default bus.
        webhook_allowed_hosts
            Hosts a caller may name in ``Callback-Url`` (``hooks.example.com``, or ``*.example.com``); a signed POST
            goes there when the job ends. Default: none (the header is refused).
        webhook_max_attempts
            Deliveries of a webhook before it is given up (``FAILED`` on the job). Default: 8 (7 waits of 30 s doubling: about 64 minutes).
        monitoring
            Alarms, a dashboard and saved Logs Insights queries (docs/operations.md), e.g.
            ``MonitoringOptions(alarm_topic=topic)``; ``MonitoringOptions(alarms=False, dashboard=False,
            log_queries=False)`` for none. Default: all three, with no alarm action.
        powertools_layer
            The Powertools v3 layer of every function. Default: the public layer for each runtime and architecture.
        powertools_layer_version
            Which public layer: a layer version (int), or ``"latest"`` or a release (``"3.23.0"``) resolved at
            deploy through Powertools' SSM parameters. Default: layer 27 (Powertools 3.23.0, the runtime's pin);
            see docs/powertools-layer.md.
        tracing, trace_aws_calls
            X-Ray on the functions and the stage (default: true); also each AWS call (default: false, +~250 ms
            per cold start).
        metrics_namespace
            The CloudWatch namespace of the job metrics. Default: ``AsyncJobs``.
        auth, api_key_required, operators
            Who may call (default ``JobApiAuth.iam()``), an API key on top (default: false), identities that read
            every job (default: none).
        throttling_rate_limit, throttling_burst_limit
            The stage's throttling. Default: 100 requests/s, bursts of 200.
        cors, web_acl_arn
            CORS preflight for browsers, a regional WAFv2 web ACL for the stage. Default: none.
        encryption_key
            One CMK for the queues, the table and the log groups. Default: SSE-SQS and AWS-managed keys.
        cloud_watch_role
            Create API Gateway's account-level logging role (one per stack, shared by its APIs). Default: false.
        idempotency_key_required
            Refuse a ``POST`` without ``Idempotency-Key`` (``400``). Default: false.
        websocket
            Live job updates over a WebSocket API (docs/websockets.md): ``True``, or ``JobWebSocketOptions(...)``
            (required with Cognito or custom auth: its ``authorizer_function``). Default: none (nothing is
            created).
        """
        super().__init__(scope, id)
        single_type: dict[str, Any] = {
            "timeout": timeout,
            "invocation_timeout": invocation_timeout,
            "memory_size": memory_size,
            "environment": environment,
            "max_receive_count": max_receive_count,
            "visibility_timeout": visibility_timeout,
            "batch_size": batch_size,
            "max_concurrency": max_concurrency,
            "max_payload_bytes": max_payload_bytes,
            "queue": queue,
            "dead_letter_queue": dead_letter_queue,
            "worker_policy_statements": worker_policy_statements,
            "retry_base_delay": retry_base_delay,
            "retry_max_delay": retry_max_delay,
        }
        refuse_partial_single_type(handler, code, single_type)
        props = ApiProps.resolve(
            self,
            job_ttl=job_ttl,
            poll_interval=poll_interval,
            removal_policy=removal_policy,
            log_retention=log_retention,
            runtime=runtime,
            architecture=architecture,
            tracing=tracing,
            trace_aws_calls=trace_aws_calls,
            metrics_namespace=metrics_namespace,
            auth=auth,
            api_key_required=api_key_required,
            operators=operators,
            throttling_rate_limit=throttling_rate_limit,
            throttling_burst_limit=throttling_burst_limit,
            encryption_key=encryption_key,
            idempotency_key_required=idempotency_key_required,
            cloud_watch_role=cloud_watch_role,
            cors=cors,
            web_acl_arn=web_acl_arn,
            websocket=websocket,
        )
        self.job_ttl: Duration = props.job_ttl
        self.poll_interval: Duration = props.poll_interval
        self.removal_policy: RemovalPolicy = props.removal_policy
        self.log_retention: logs.RetentionDays = props.log_retention
        self.runtime: lambda_.Runtime = props.runtime
        self.architecture: lambda_.Architecture = props.architecture
        self.tracing: bool = props.tracing
        self.trace_aws_calls: bool = props.trace_aws_calls
        self.metrics_namespace: str = props.metrics_namespace
        self.auth: JobApiAuth = props.auth
        self.api_key_required: bool = props.api_key_required
        self.operators: tuple[str, ...] = props.operators
        self.throttling_rate_limit: int = props.throttling_rate_limit
        self.throttling_burst_limit: int = props.throttling_burst_limit
        self.encryption_key: kms.IKey | None = props.encryption_key
        self.idempotency_key_required: bool = props.idempotency_key_required
        self.cloud_watch_role: bool = props.cloud_watch_role
        self._job_types: dict[str, JobType] = {}
        self._invokers: list[iam.IGrantable] = []
        #: The alarms, dashboard and saved queries (docs/operations.md); set at the end of construction.
        self.monitoring: JobMonitoring | None = None

        self.table: dynamodb.ITable = status_table(
            self, table, encryption_key=self.encryption_key, removal_policy=self.removal_policy
        )

        self._objects = JobBucket(
            self,
            bucket,
            encryption_key=self.encryption_key,
            removal_policy=self.removal_policy,
            job_ttl=self.job_ttl,
        )
        #: The bucket of results too large for the status item, saved files and large payloads.
        self.bucket: s3.IBucket = self._objects.bucket

        self._functions = FunctionFactory(
            self,
            FunctionOptions(
                log_retention=self.log_retention,
                removal_policy=self.removal_policy,
                encryption_key=self.encryption_key,
                tracing=self.tracing,
                powertools_layer=powertools_layer,
                powertools_layer_version=powertools_layer_version,
            ),
        )
        self.powertools_layer: lambda_.ILayerVersion = self._functions.powertools_layer(
            self.runtime, self.architecture
        )
        self._shared = SharedFunctions(
            self,
            self._functions,
            runtime_assets(),
            props,
            table=self.table,
            owns_table=table is None,
            objects=self._objects,
            push=PushOptions(
                job_events=job_events,
                event_bus=event_bus,
                webhook_allowed_hosts=() if webhook_allowed_hosts is None else webhook_allowed_hosts,
                webhook_max_attempts=webhook_max_attempts,
                encryption_key=self.encryption_key,
                removal_policy=self.removal_policy,
            ),
        )
        #: The functions' service name: ``detail.api`` of the job events, the metrics' ``service`` dimension.
        self.service_name: str = service_name(self)
        #: The function that publishes job events (None with ``job_events="none"``).
        self.events_function: lambda_.Function | None = self._shared.push.events_function
        #: The webhook queue, function and signing secret (None without ``webhook_allowed_hosts``).
        self.webhook_queue: sqs.IQueue | None = self._shared.push.webhook_queue
        self.webhook_function: lambda_.Function | None = self._shared.push.webhook_function
        self.webhook_secret: secretsmanager.ISecret | None = self._shared.push.webhook_secret
        #: Stream records the events function gave up on (None with ``job_events="none"``).
        self.events_dead_letter_queue: sqs.IQueue | None = self._shared.push.events_dead_letter_queue
        self.runtime_layer: lambda_.LayerVersion = self._shared.runtime_layer
        self.submit_function: lambda_.Function = self._shared.submit_function
        self.status_function: lambda_.Function = self._shared.status_function
        self.dead_letter_function: lambda_.Function = self._shared.dead_letter_function

        self.access_log_group: logs.LogGroup = self._functions.log_group(self, "AccessLogs")
        self._gateway = JobGateway(
            self,
            GatewayOptions(
                auth=self.auth,
                api_key_required=self.api_key_required,
                tracing=self.tracing,
                throttling_rate_limit=self.throttling_rate_limit,
                throttling_burst_limit=self.throttling_burst_limit,
                cors=props.cors,
                web_acl_arn=props.web_acl_arn,
                cloud_watch_role=self.cloud_watch_role,
            ),
            access_log_group=self.access_log_group,
        )
        self.api: apigateway.RestApi = self._gateway.api
        self.jobs_resource: apigateway.Resource = self._gateway.jobs_resource
        self.usage_plan: apigateway.UsagePlan | None = self._gateway.usage_plan
        if handler is not None and code is not None:
            self.add_job_type(
                DEFAULT_JOB_TYPE,
                handler=handler,
                code=code,
                runtime=runtime,
                architecture=architecture,
                **single_type,
            )
        self._gateway.add_status_routes(self.status_function)
        self.job_resource: apigateway.Resource = self._gateway.job_resource
        #: The ``/jobs`` URL (``POST`` for the type ``jobs``; ``/jobs/{id}`` below it for every job).
        self.url: str = self.api.url_for_path(f"/{JOBS_PATH}")
        #: The WebSocket of live job updates (None unless ``websocket`` is on).
        self.websocket: JobWebSocket | None = None
        if props.websocket is not None:
            self.websocket = self._add_websocket(props)
        self.node.add_validation(_HasJobTypes(self))
        self.monitoring = JobMonitoring(self, "Monitoring", api=self, options=monitoring)

    def _add_websocket(self, props: ApiProps) -> JobWebSocket:
        assert props.websocket is not None
        websocket = JobWebSocket(
            self,
            "WebSocket",
            options=props.websocket,
            table=self.table,
            jobs_url=self.url,
            operators=self.operators,
            encryption_key=self.encryption_key,
            removal_policy=self.removal_policy,
            create=self._shared.create_api_function,
            log_group=self._functions.log_group,
            logging_account=logging_account(self) if self.cloud_watch_role else None,
        )
        websocket.grant_status_table(self._shared.grant_items)
        for function in (self.submit_function, self.status_function):
            function.add_environment(Env.WEBSOCKET_URL, websocket.url)
        # A new job of an owner someone follows is written watched: one GetItem of the owner's watch per POST.
        self.submit_function.add_environment(Env.CONNECTIONS_TABLE, websocket.connections_table.table_name)
        websocket.connections_table.grant(self.submit_function, "dynamodb:GetItem")
        if self.encryption_key is not None:
            self.encryption_key.grant_decrypt(self.submit_function)
        for function in (websocket.connection_function, websocket.push_function):
            self._objects.grant_results_read(function)  # the presigned links of a job's files
        return websocket

    # --------------------------------------------------------------------------------------------- job types

    def add_job_type(
        self,
        name: str,
        *,
        handler: str,
        code: lambda_.Code | str | os.PathLike[str],
        timeout: Duration | None = None,
        invocation_timeout: Duration | None = None,
        memory_size: int | None = None,
        environment: Mapping[str, str] | None = None,
        runtime: lambda_.Runtime | None = None,
        architecture: lambda_.Architecture | None = None,
        max_receive_count: int | None = None,
        visibility_timeout: Duration | None = None,
        batch_size: int | None = None,
        max_concurrency: int | None = None,
        retry_base_delay: Duration | None = None,
        retry_max_delay: Duration | None = None,
        max_payload_bytes: int | None = None,
        worker_policy_statements: Sequence[iam.PolicyStatement] | None = None,
        queue: sqs.IQueue | None = None,
        dead_letter_queue: sqs.IQueue | None = None,
    ) -> JobType:
        """Add a job type, submitted at ``POST /{name}``, with its own queue, dead-letter queue and worker.

        The props are ``JobType``'s (its docstring and the README's per-type table give each one's default).
        ``timeout`` is a job's whole run: up to 15 minutes it is one invocation's limit; above (to 365 days) the
        type is long, each job a Lambda durable execution in invocations of ``invocation_timeout`` (1 second to
        15 minutes, default 15 minutes; refused on a short type).
        ``name`` matches ``[a-z][a-z0-9-]{0,39}`` and is unique in the API; a type named ``jobs`` is submitted
        at ``POST /jobs`` and keeps the single-handler form's logical ids.

        Returns
        -------
        JobType
            The type, with its queues, worker, resolved props and ``grant_submit``.

        Examples
        --------
        >>> reports = jobs.add_job_type("reports", handler="reports.generate", code=code,
        ...                             timeout=Duration.minutes(10))
        >>> imports = jobs.add_job_type("imports", handler="imports.run", code=code, timeout=Duration.hours(6),
        ...                             invocation_timeout=Duration.minutes(10))
        """
        return JobType(
            self,
            name,
            handler=handler,
            code=code,
            timeout=timeout,
            invocation_timeout=invocation_timeout,
            memory_size=memory_size,
            environment=environment,
            runtime=runtime,
            architecture=architecture,
            max_receive_count=max_receive_count,
            visibility_timeout=visibility_timeout,
            batch_size=batch_size,
            max_concurrency=max_concurrency,
            retry_base_delay=retry_base_delay,
            retry_max_delay=retry_max_delay,
            max_payload_bytes=max_payload_bytes,
            worker_policy_statements=worker_policy_statements,
            queue=queue,
            dead_letter_queue=dead_letter_queue,
        )

    def _register(self, job_type: JobType) -> None:
        """Called by a new ``JobType`` once built: list it, and extend the ``grant_invoke`` grants to it."""
        self._job_types[job_type.name] = job_type
        for grantee in self._invokers:
            job_type.grant_submit(grantee)
        if self.monitoring is not None:
            self.monitoring.add_job_type(job_type)

    @property
    def job_types(self) -> Mapping[str, JobType]:
        """Every job type of the API, by name (a read-only view)."""
        from types import MappingProxyType

        return MappingProxyType(self._job_types)

    def _single(self, attribute: str) -> JobType:
        if len(self._job_types) == 1:
            return next(iter(self._job_types.values()))
        if not self._job_types:
            raise AttributeError(
                f"{self.node.path}.{attribute} belongs to a job type, and this API has no job type yet: add one "
                f"with add_job_type(name, ...) and read job_types[name].{attribute}"
            )
        names = ", ".join(repr(name) for name in self._job_types)
        raise AttributeError(
            f"{self.node.path}.{attribute} belongs to a job type, and this API has {len(self._job_types)} job "
            f"types ({names}): read job_types[{next(iter(self._job_types))!r}].{attribute} (or another name)"
        )

    @property
    def queue(self) -> sqs.IQueue:
        """The job queue of the API's one job type (``job_types[name].queue`` with several)."""
        return self._single("queue").queue

    @property
    def dead_letter_queue(self) -> sqs.IQueue:
        """The dead-letter queue of the API's one job type."""
        return self._single("dead_letter_queue").dead_letter_queue

    @property
    def worker_function(self) -> lambda_.Function:
        """The worker of the API's one job type."""
        return self._single("worker_function").worker_function

    @property
    def worker_version(self) -> lambda_.Version | None:
        """The worker version the starter invokes, of the API's one job type when it is long (else None)."""
        return self._single("worker_version").worker_version

    @property
    def starter_function(self) -> lambda_.Function | None:
        """The starter of the API's one job type when it is long (else None)."""
        return self._single("starter_function").starter_function

    handler = _OfSingleType[str]("handler")
    timeout = _OfSingleType[Duration]("timeout")
    invocation_timeout = _OfSingleType[Duration]("invocation_timeout")
    is_long = _OfSingleType[bool]("is_long")
    memory_size = _OfSingleType[int]("memory_size")
    max_receive_count = _OfSingleType[int]("max_receive_count")
    visibility_timeout = _OfSingleType[Duration]("visibility_timeout")
    batch_size = _OfSingleType[int]("batch_size")
    max_concurrency = _OfSingleType["int | None"]("max_concurrency")
    max_payload_bytes = _OfSingleType[int]("max_payload_bytes")
    retry_base_delay = _OfSingleType[Duration]("retry_base_delay")
    retry_max_delay = _OfSingleType[Duration]("retry_max_delay")

    # ---------------------------------------------------------------------------------------------- grants

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` submit jobs of every type (also of types added later), and read and cancel its own.

        Grants ``execute-api:Invoke`` on ``POST /{name}`` of every type, ``GET /jobs`` (list its own) and
        ``GET``/``DELETE /jobs/*``; with a WebSocket, also on its ``$connect`` (to follow its own jobs).

        Examples
        --------
        >>> jobs.grant_invoke(client_role)
        """
        self._invokers.append(grantee)
        if self.websocket is not None:
            self.websocket.grant_connect(grantee)
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["execute-api:Invoke"],
            resource_arns=[
                *(self.api.arn_for_execute_api("POST", f"/{name}") for name in self._job_types),
                self.api.arn_for_execute_api("GET", f"/{JOBS_PATH}"),
                self.api.arn_for_execute_api("GET", f"/{JOBS_PATH}/*"),
                self.api.arn_for_execute_api("DELETE", f"/{JOBS_PATH}/*"),
            ],
        )


@jsii.implements(IValidation)
class _HasJobTypes:
    """Synth fails for an API with no job type: it could not accept a single job."""

    def __init__(self, api: AsyncJobApi) -> None:
        self._api = api

    def validate(self) -> list[str]:
        if self._api.job_types:
            return []
        return [
            f"{self._api.node.path} has no job type: pass handler= and code=, or call add_job_type(name, ...)."
        ]
