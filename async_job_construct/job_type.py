"""``JobType``: one kind of job of an ``AsyncJobApi``, with its own queue, dead-letter queue and worker (and on a
long type, a starter: ``async_job_construct.durable``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from aws_cdk import Annotations, Duration, Token
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from async_job_construct import defaults
from async_job_construct.bundling import code_from_folder
from async_job_construct.durable import DurableWorkerProps, create_durable_resources
from async_job_construct.metadata import mark
from async_job_construct.queues import QueueOptions, resolve_queues, warn_if_retries_outlive_retention
from async_job_construct.validation import (
    PropValueError,
    check_code_asset,
    check_duration,
    check_duration_range,
    check_instance,
    check_int,
    check_int_range,
    check_job_type_name,
    check_python_handler,
    check_python_runtime,
    check_worker_environment,
)
from lambda_handlers.contract import (
    DEFAULT_JOB_TYPE,
    JOBS_PATH,
    MAX_PAYLOAD_BYTES_LIMIT,
    MAX_VISIBILITY_SECONDS,
    Env,
    Role,
)

if TYPE_CHECKING:
    from async_job_construct.async_job_api import AsyncJobApi

__all__ = ["JobType"]

_DEAD_LETTER_BATCH_SIZE = 10


class JobType(Construct):
    """One job type of an ``AsyncJobApi``: ``POST /{name}`` runs its handler on its own queue and worker.

    Create it with ``AsyncJobApi.add_job_type``. The API owns what is shared (REST API, status table, the
    submit, status and dead-letter functions); the type owns its queue, dead-letter queue and worker, and
    exposes them with every prop resolved to its default.

    A ``timeout`` above 15 minutes makes the type *long* (``is_long``): each job runs as one Lambda durable
    execution of ``worker_function`` (through ``worker_version``), in invocations of ``invocation_timeout``,
    started from the queue by ``starter_function`` (docs/long-jobs.md).

    Examples
    --------
    >>> reports = jobs.add_job_type("reports", handler="reports.generate", code=lambda_.Code.from_asset("jobs"))
    >>> reports.grant_submit(reporting_role)
    >>> reports.worker_function.add_to_role_policy(statement)
    >>> imports = jobs.add_job_type("imports", handler="imports.run", code="jobs", timeout=Duration.hours(6))
    >>> imports.is_long, imports.invocation_timeout.to_minutes()
    (True, 15)
    """

    def __init__(
        self,
        api: AsyncJobApi,
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
    ) -> None:
        """Add the job type ``name`` to ``api`` (the same as ``api.add_job_type(name, ...)``).

        Parameters
        ----------
        name
            ``[a-z][a-z0-9-]{0,39}``, unique in the API: the route's path segment and the metrics' ``jobType``.
            A type named ``jobs`` is submitted at ``POST /jobs`` and keeps the single-handler form's logical ids.
        handler
            ``module.function`` inside ``code``, called as ``function(payload, job)``.
        code
            The team's code: a folder (``"jobs"``, a ``str`` or ``Path``), whose ``requirements.txt`` at its root
            is bundled for the worker's runtime and architecture without Docker (docs/dependencies.md), or any
            ``lambda_.Code``, used as it is. The runtime comes as a layer.
        timeout
            One attempt's limit: 1 second to 15 minutes runs each attempt in one worker invocation; above 15
            minutes (to 365 days) makes the type *long*: each job is a Lambda durable execution of this length
            (docs/long-jobs.md). Default: 5 minutes.
        invocation_timeout
            A long type's limit of one worker invocation (1 second to 15 minutes); a job's steps run in as many
            invocations as they need. Refused on a short type, whose ``timeout`` is that limit. Default: 15
            minutes.
        memory_size
            The worker's memory, MiB (128-10240). Default: 1024.
        environment
            Extra worker variables; ``ASYNC_JOB_*``, ``AWS_*``, ``LAMBDA_*``, ``_*``, the Powertools service name,
            metrics and tracing switches are refused. Default: none.
        runtime, architecture
            The worker's (Python 3.11+; 3.13+ for a long type). Default: the API's (Python 3.14, x86_64).
        max_receive_count
            Attempts before the job is ``FAILED`` (1-1000). Default: 3, or the redrive policy's of ``queue``.
        visibility_timeout
            Wait before a crashed attempt is retried (``timeout`` to 12 hours). Default: 6 x ``timeout``. On a long
            type the queue feeds the starter: 60 seconds to 12 hours, default 6 minutes.
        batch_size
            Messages per worker invocation (1-10; above 1 warns), per starter invocation on a long type (no
            warning). Default: 1.
        max_concurrency
            Most concurrent worker invocations (2-1000); on a long type, most running executions (1-1000), more
            wait in the queue. Default: no limit.
        retry_base_delay, retry_max_delay
            The first retry's delay, doubled per attempt with full jitter, and its cap (at most 12 hours).
            Default: 10 seconds and 15 minutes.
        max_payload_bytes
            Largest request body of ``POST /{name}`` (at most 1047552); larger gets ``413``. Default: 262144.
        worker_policy_statements
            What the handler calls. Default: none (``worker_function`` also takes any ``grant_*``).
        queue, dead_letter_queue
            Bring your own queues (``dead_letter_queue`` required with an imported ``queue``); excludes
            ``visibility_timeout``. Default: new SSE, TLS-only queues.

        """
        check_job_type_name(name, api.job_types)
        super().__init__(api, name)
        self.name: str = name
        self.api: AsyncJobApi = api
        self.handler: str = check_python_handler("handler", handler)
        if not isinstance(code, str | os.PathLike):
            check_instance("code", code, lambda_.Code, '"jobs" (a folder) or lambda_.Code.from_asset("jobs")')
        self.timeout: Duration = (
            defaults.DEFAULT_TIMEOUT if timeout is None else check_duration("timeout", timeout)
        )
        #: Whether jobs run as Lambda durable executions (``timeout`` above 15 minutes): then the type has a
        #: starter, and ``worker_function`` is a durable function invoked through ``worker_version``.
        self.is_long: bool = not self.timeout.is_unresolved() and (
            self.timeout.to_milliseconds() > defaults.MAX_INVOCATION_TIMEOUT.to_milliseconds()
        )
        if invocation_timeout is not None:
            invocation_timeout = check_duration("invocation_timeout", invocation_timeout)
            self._refuse_invocation_timeout_if_short(invocation_timeout)
        #: One worker invocation's limit: ``invocation_timeout`` on a long type, ``timeout`` on a short one.
        self.invocation_timeout: Duration = (
            invocation_timeout
            if invocation_timeout is not None
            else defaults.DEFAULT_INVOCATION_TIMEOUT
            if self.is_long
            else self.timeout
        )
        self.memory_size: int = (
            defaults.DEFAULT_MEMORY_SIZE if memory_size is None else check_int("memory_size", memory_size)
        )
        if environment is not None and not isinstance(environment, Mapping):
            check_instance("environment", environment, Mapping, "a dict of variable names to strings")
        self.environment: Mapping[str, str] = dict(environment) if environment is not None else {}
        self.runtime: lambda_.Runtime = api.runtime if runtime is None else runtime
        check_instance("runtime", self.runtime, lambda_.Runtime, "lambda_.Runtime.PYTHON_3_14")
        self.architecture: lambda_.Architecture = api.architecture if architecture is None else architecture
        check_instance("architecture", self.architecture, lambda_.Architecture, "lambda_.Architecture.ARM_64")
        self.batch_size: int = (
            defaults.DEFAULT_BATCH_SIZE if batch_size is None else check_int("batch_size", batch_size)
        )
        self.max_concurrency: int | None = (
            None if max_concurrency is None else check_int("max_concurrency", max_concurrency)
        )
        self.retry_base_delay: Duration = (
            defaults.DEFAULT_RETRY_BASE_DELAY
            if retry_base_delay is None
            else check_duration("retry_base_delay", retry_base_delay)
        )
        self.retry_max_delay: Duration = (
            defaults.DEFAULT_RETRY_MAX_DELAY
            if retry_max_delay is None
            else check_duration("retry_max_delay", retry_max_delay)
        )
        self.max_payload_bytes: int = (
            defaults.DEFAULT_MAX_PAYLOAD_BYTES
            if max_payload_bytes is None
            else check_int("max_payload_bytes", max_payload_bytes)
        )
        if max_receive_count is not None:
            max_receive_count = check_int("max_receive_count", max_receive_count)
        if visibility_timeout is not None:
            visibility_timeout = check_duration("visibility_timeout", visibility_timeout)
        statements = tuple(worker_policy_statements) if worker_policy_statements is not None else ()
        for statement in statements:
            check_instance(
                "worker_policy_statements", statement, iam.PolicyStatement, "iam.PolicyStatement(...)"
            )
        self._validate()
        if isinstance(code, str | os.PathLike):
            code = code_from_folder(code, self.runtime, self.architecture)
        check_code_asset(self.handler, code)
        #: The worker's code asset (a folder given as ``code`` becomes ``lambda_.Code.from_asset``, bundled).
        self.code: lambda_.Code = code

        # The default type's resources keep the logical ids of the single-handler form: they live in the API.
        scope: Construct = api if name == DEFAULT_JOB_TYPE else self
        # What consumes the queue: the worker, or on a long type the starter (a job's run is not an attempt of
        # its message there: the message is consumed once the execution has started).
        consumer_timeout = defaults.STARTER_FUNCTION_TIMEOUT if self.is_long else self.timeout
        queues = resolve_queues(
            scope,
            QueueOptions(encryption_key=api.encryption_key, removal_policy=api.removal_policy),
            timeout=consumer_timeout,
            queue=queue,
            dead_letter_queue=dead_letter_queue,
            max_receive_count=max_receive_count,
            visibility_timeout=visibility_timeout,
            default_max_receive_count=defaults.DEFAULT_MAX_RECEIVE_COUNT,
            consumer="the starter's timeout" if self.is_long else "timeout",
        )
        if queues.created:
            mark(queues.queue, api=api, role=Role.QUEUE, job_type=self._job_type_mark)
            mark(queues.dead_letter_queue, api=api, role=Role.DEAD_LETTER_QUEUE, job_type=self._job_type_mark)
        self.queue: sqs.IQueue = queues.queue
        self.dead_letter_queue: sqs.IQueue = queues.dead_letter_queue
        self.max_receive_count: int = queues.max_receive_count
        self.visibility_timeout: Duration = queues.visibility_timeout
        warn_if_retries_outlive_retention(scope, queues, consumer_timeout, self.retry_max_delay)
        if not self.is_long:
            self._warn_if_batched(scope)

        api._shared.extend_runtime_layer(self.runtime, self.architecture)
        environment = {**self.environment, **api._shared.common_environment, **self._worker_environment()}
        #: A long type's version of ``worker_function``, which the starter invokes (None on a short type).
        self.worker_version: lambda_.Version | None = None
        #: A long type's queue consumer, which starts one execution per job and sweeps (None on a short type).
        self.starter_function: lambda_.Function | None = None
        #: The schedule of the starter's sweep (None on a short type).
        self.starter_schedule: events.Rule | None = None
        if self.is_long:
            durable = create_durable_resources(
                scope,
                api._functions,
                api._shared,
                DurableWorkerProps(
                    job_type=self._job_type_mark,
                    code=code,
                    timeout=self.timeout,
                    invocation_timeout=self.invocation_timeout,
                    memory_size=self.memory_size,
                    runtime=self.runtime,
                    architecture=self.architecture,
                    layers=[api.runtime_layer],
                    environment=environment,
                    queue=self.queue,
                    batch_size=self.batch_size,
                    max_running=self.max_concurrency,
                    max_receive_count=self.max_receive_count,
                ),
            )
            worker = durable.worker
            self.worker_version = durable.version
            self.starter_function = durable.starter
            self.starter_schedule = durable.schedule
            for statement in statements:
                worker.add_to_role_policy(statement)
        else:
            worker = self._short_worker(scope, code, environment, statements)
        #: The function that runs the team's handler: a durable function on a long type.
        self.worker_function: lambda_.Function = worker
        api._shared.wire(self)
        self.submit_method: apigateway.Method = api._gateway.add_submit_route(name, api.submit_function)
        #: The URL to ``POST`` this type's jobs to.
        self.url: str = api.api.url_for_path(f"/{name}")
        api._register(self)

    def _short_worker(
        self,
        scope: Construct,
        code: lambda_.Code,
        environment: Mapping[str, str],
        statements: Sequence[iam.PolicyStatement],
    ) -> lambda_.Function:
        api = self.api
        worker = api._functions.create(
            scope,
            "Worker",
            role=Role.WORKER,
            job_type=self._job_type_mark,
            code=code,
            handler="lambda_handlers.worker.handler",
            timeout=self.timeout,
            memory_size=self.memory_size,
            runtime=self.runtime,
            architecture=self.architecture,
            layers=[api.runtime_layer],
            environment=environment,
        )
        api._shared.grant_worker(worker)
        for statement in statements:
            worker.add_to_role_policy(statement)
        worker.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                batch_size=self.batch_size,
                max_concurrency=self.max_concurrency,
                report_batch_item_failures=True,
            )
        )
        return worker

    @property
    def _job_type_mark(self) -> str:
        return self.name

    def _worker_environment(self) -> dict[str, str]:
        return {
            Env.JOB_TYPE: self.name,
            Env.HANDLER: self.handler,
            Env.MAX_RECEIVE_COUNT: str(self.max_receive_count),
            Env.RETRY_BASE_SECONDS: str(int(self.retry_base_delay.to_seconds())),
            Env.RETRY_MAX_SECONDS: str(int(self.retry_max_delay.to_seconds())),
        }

    def dead_letter_event_source(self) -> event_sources.SqsEventSource:
        """The dead-letter consumer's event source on this type's dead-letter queue."""
        return event_sources.SqsEventSource(
            self.dead_letter_queue, batch_size=_DEAD_LETTER_BATCH_SIZE, report_batch_item_failures=True
        )

    def grant_submit(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` submit jobs of this type, and read and cancel its own jobs (IAM authorization).

        Grants ``execute-api:Invoke`` on ``POST /{name}``, ``GET /jobs`` (list its own) and
        ``GET``/``DELETE /jobs/*``.

        Examples
        --------
        >>> reports.grant_submit(reporting_role)
        """
        api = self.api.api
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["execute-api:Invoke"],
            resource_arns=[
                api.arn_for_execute_api("POST", f"/{self.name}"),
                api.arn_for_execute_api("GET", f"/{JOBS_PATH}"),
                api.arn_for_execute_api("GET", f"/{JOBS_PATH}/*"),
                api.arn_for_execute_api("DELETE", f"/{JOBS_PATH}/*"),
            ],
        )

    # ------------------------------------------------------------------------------------------- validation

    def _refuse_invocation_timeout_if_short(self, invocation_timeout: Duration) -> None:
        if self.is_long:
            return
        if self.timeout.is_unresolved():
            raise PropValueError(
                "invocation_timeout",
                invocation_timeout.to_human_string(),
                "applies only to a long job type, and this type's timeout is a deploy-time token: whether the type "
                "is long (a timeout above 15 minutes) must be known at synth",
                "Pass timeout as a plain Duration (e.g. Duration.hours(6)), or drop invocation_timeout.",
            )
        raise PropValueError(
            "invocation_timeout",
            invocation_timeout.to_human_string(),
            f"applies only to a long job type (timeout above 15 minutes), and this type's timeout is "
            f"{self.timeout.to_human_string()}",
            "Drop invocation_timeout: a short type runs each attempt in one invocation of `timeout`. Or raise "
            "timeout above 15 minutes to run the type's jobs as Lambda durable executions (docs/long-jobs.md).",
        )

    def _validate(self) -> None:
        check_duration_range(
            "timeout",
            self.timeout,
            Duration.seconds(1),
            defaults.MAX_TIMEOUT,
            "Up to 15 minutes a job runs in one invocation; above, as a Lambda durable execution, which runs "
            "for at most 365 days.",
        )
        check_duration_range(
            "invocation_timeout",
            self.invocation_timeout,
            Duration.seconds(1),
            defaults.MAX_INVOCATION_TIMEOUT,
            "Lambda runs one invocation for at most 15 minutes; a long job runs in as many as it needs.",
        )
        check_int_range("memory_size", self.memory_size, 128, 10240)
        if self.is_long:
            check_python_runtime(
                "runtime",
                self.runtime,
                minimum_minor=defaults.LONG_TYPE_MIN_PYTHON,
                why=f" for a long job type (timeout={self.timeout.to_human_string()}): its managed runtime "
                "ships the durable execution SDK",
            )
        else:
            check_python_runtime("runtime", self.runtime)
        check_worker_environment("environment", self.environment)
        check_int_range("batch_size", self.batch_size, 1, 10)
        if self.max_concurrency is not None:
            if self.is_long:
                check_int_range(
                    "max_concurrency",
                    self.max_concurrency,
                    1,
                    1000,
                    "On a long job type it is the most executions running at once (1 to 1000).",
                )
            else:
                check_int_range("max_concurrency", self.max_concurrency, 2, 1000)
        check_int_range("max_payload_bytes", self.max_payload_bytes, 1, MAX_PAYLOAD_BYTES_LIMIT)
        longest = Duration.seconds(MAX_VISIBILITY_SECONDS)
        check_duration_range("retry_base_delay", self.retry_base_delay, Duration.seconds(1), longest)
        check_duration_range(
            "retry_max_delay",
            self.retry_max_delay,
            self.retry_base_delay,
            longest,
            "It caps the doubling retry_base_delay, so it must be at least that; SQS delays at most 12 hours.",
        )

    def _warn_if_batched(self, scope: Construct) -> None:
        if not Token.is_unresolved(self.batch_size) and self.batch_size > 1:
            Annotations.of(scope).add_warning_v2(
                "async-job:batch-size",
                f"batch_size is {self.batch_size}: the jobs of one batch run one after another inside a single "
                f"invocation of timeout={self.timeout.to_human_string()}, so a slow job delays the others and "
                "can make them all time out. Keep batch_size=1 unless jobs are short.",
            )
