"""Operations built in: the alarms, the dashboard and the saved Logs Insights queries of an ``AsyncJobApi``.

``JobMonitoring`` reads only the public attributes of the API and of its job types; ``add_job_type`` extends
it to a type added later. Every alarm's description says what it means and points at its section of
docs/operations.md (the runbook), which also gives the defaults chosen here, their reasons and what they cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Final

import jsii
from aws_cdk import Duration, IStableListProducer, Lazy, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IValidation

from async_job_construct.validation import PropValueError, check_duration, check_instance, check_int_range
from lambda_handlers.contract import JOB_TYPE_DIMENSION

if TYPE_CHECKING:
    from async_job_construct.async_job_api import AsyncJobApi
    from async_job_construct.job_type import JobType

__all__ = [
    "ACCESS_LOG_QUERIES",
    "FAILURE_RATE_MIN_JOBS",
    "FUNCTION_LOG_QUERIES",
    "JOB_ID_PLACEHOLDER",
    "LONG_TYPE_ALARMS",
    "RUNBOOK",
    "AlarmOverride",
    "JobAlarm",
    "JobMonitoring",
    "MonitoringOptions",
    "oldest_message_age_default",
]

#: Where every alarm description points (a section per alarm: ``docs/operations.md#<anchor>``).
RUNBOOK: Final = "docs/operations.md"
#: The failure-rate alarm stays quiet below this many finished jobs in its period (one failure of two is noise).
FAILURE_RATE_MIN_JOBS: Final = 5
#: What to replace with a job id in the saved journey query.
JOB_ID_PLACEHOLDER: Final = "REPLACE-WITH-JOB-ID"
_SERVICE_DIMENSION: Final = "service"  # Powertools' own dimension: POWERTOOLS_SERVICE_NAME
_ONE_DAY_SECONDS: Final = 86_400
_SEVEN_DAYS_SECONDS: Final = 7 * _ONE_DAY_SECONDS
_MIN_OLDEST_MESSAGE_AGE: Final = Duration.minutes(15)
_UNKNOWN_OLDEST_MESSAGE_AGE: Final = Duration.hours(1)

#: Saved queries on the stage's access log (the JSON fields of ``gateway.ACCESS_LOG_FIELDS``), by name suffix.
ACCESS_LOG_QUERIES: Final[Mapping[str, str]] = {
    "api/5xx-requests": (
        "fields @timestamp, requestId, httpMethod, resourcePath, status, errorType, integrationStatus, "
        "integrationLatency, responseLatency, caller\n"
        "| filter status like /^5/\n"
        "| sort @timestamp desc\n"
        "| limit 100"
    ),
    "api/504-requests": (
        "fields @timestamp, requestId, httpMethod, resourcePath, status, errorType, integrationStatus, "
        "integrationLatency, responseLatency\n"
        "| filter status like /^504$/\n"
        "| sort @timestamp desc\n"
        "| limit 20"
    ),
    "api/slowest-integrations": (
        "fields @timestamp, requestId, httpMethod, resourcePath, status, integrationStatus, integrationLatency, "
        "responseLatency\n"
        "| filter ispresent(integrationLatency) and integrationLatency != '-'\n"
        "| sort integrationLatency desc\n"
        "| limit 25"
    ),
}

#: Saved queries on every function's log group (Powertools JSON lines), by name suffix.
FUNCTION_LOG_QUERIES: Final[Mapping[str, str]] = {
    "jobs/job-journey": (
        "fields @timestamp, function_name, level, message, attempt, error_type, error, @log\n"
        f"| filter job_id = '{JOB_ID_PLACEHOLDER}'\n"
        "| sort @timestamp asc\n"
        "| limit 1000"
    ),
    "jobs/failed-by-error-type": (
        "fields @timestamp, function_name, job_id, coalesce(error_type, 'DeadLettered') as failure\n"
        "| filter message like /^job failed/\n"
        "| stats count(*) as failures, latest(job_id) as last_job_id by failure, function_name\n"
        "| sort failures desc"
    ),
}


class JobAlarm(Enum):
    """The alarms ``JobMonitoring`` creates; the value is the alarm's construct id.

    Examples
    --------
    >>> MonitoringOptions(alarm_overrides={JobAlarm.API_LATENCY: AlarmOverride(threshold=Duration.seconds(5))})
    """

    #: API-wide: records the events function gave up on (its dead-letter queue is not consumed).
    EVENTS_DEAD_LETTER_MESSAGES = "EventsDeadLetterMessages"
    #: API-wide: the percentage of requests answered 5xx.
    API_SERVER_ERROR_RATE = "ApiServerErrorRate"
    #: API-wide: p90 of the stage's Latency.
    API_LATENCY = "ApiLatency"
    #: Per type: jobs the dead-letter consumer marked FAILED (every attempt crashed the worker).
    DEAD_LETTERED_JOBS = "DeadLetteredJobs"
    #: Per type: messages that stay in the dead-letter queue (its consumer is failing).
    DEAD_LETTER_BACKLOG = "DeadLetterBacklog"
    #: Per type: the age of the oldest message of the job queue.
    OLDEST_MESSAGE_AGE = "OldestMessageAge"
    #: Per type: invocation errors of the worker (crashes: timeouts, out of memory, import errors).
    WORKER_ERRORS = "WorkerErrors"
    #: Per type: throttled worker invocations.
    WORKER_THROTTLES = "WorkerThrottles"
    #: Per type: failed / finished jobs, percent (metric math over the app's metrics).
    JOB_FAILURE_RATE = "JobFailureRate"
    #: Per type: ``503`` answers of the submit function (DynamoDB or SQS refused).
    SUBMIT_ERRORS = "SubmitErrors"
    #: Per long type: invocation errors of the starter (jobs not started, or the sweep not run).
    STARTER_ERRORS = "StarterErrors"
    #: Per long type: durable executions of the worker that ended FAILED.
    DURABLE_EXECUTIONS_FAILED = "DurableExecutionsFailed"
    #: Per long type: durable executions of the worker that ran past ``timeout``.
    DURABLE_EXECUTIONS_TIMED_OUT = "DurableExecutionsTimedOut"


class _Unit(Enum):
    COUNT = "count"
    PERCENT = "percent"
    SECONDS = "seconds"
    MILLISECONDS = "milliseconds"


@dataclass(frozen=True)
class _Spec:
    """An alarm's defaults and its runbook entry."""

    per_type: bool
    unit: _Unit
    threshold: float
    comparison: cloudwatch.ComparisonOperator
    period: Duration
    evaluation_periods: int
    datapoints_to_alarm: int
    anchor: str
    meaning: str
    action: str


_GE: Final = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
_GT: Final = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD

_SPECS: Final[Mapping[JobAlarm, _Spec]] = {
    JobAlarm.EVENTS_DEAD_LETTER_MESSAGES: _Spec(
        False, _Unit.COUNT, 1, _GE, Duration.minutes(1), 1, 1, "events-dead-letter-messages",
        "Job events were lost: the events function gave up on table stream records after its retries.",
        "Read the records in the events dead-letter queue, fix the events function, publish them again.",
    ),
    JobAlarm.API_SERVER_ERROR_RATE: _Spec(
        False, _Unit.PERCENT, 5, _GT, Duration.minutes(1), 3, 3, "api-server-error-rate",
        "Too many API requests were answered 5xx (500 function error, 502, 503 refused, 504 timeout).",
        "Run the saved query api/5xx-requests; 504s: api/504-requests and api/slowest-integrations.",
    ),
    JobAlarm.API_LATENCY: _Spec(
        False, _Unit.MILLISECONDS, 2500, _GE, Duration.minutes(1), 5, 5, "api-latency",
        "p90 API latency is high (submit and status should answer in milliseconds; 29 s is a 504).",
        "Run api/slowest-integrations; compare IntegrationLatency with the functions' Duration.",
    ),
    JobAlarm.DEAD_LETTERED_JOBS: _Spec(
        True, _Unit.COUNT, 1, _GE, Duration.minutes(5), 1, 1, "dead-lettered-jobs",
        "Jobs FAILED because every attempt crashed the worker (timeout, out of memory, import error).",
        "Run jobs/failed-by-error-type, then jobs/job-journey on one job id; raise timeout or memory_size.",
    ),
    JobAlarm.DEAD_LETTER_BACKLOG: _Spec(
        True, _Unit.COUNT, 1, _GE, Duration.minutes(5), 3, 3, "dead-letter-backlog",
        "Messages stay in the job dead-letter queue: its consumer (the dead-letter function) is not draining it.",
        "Look at the dead-letter function's errors and logs; fix it and the queue drains by itself.",
    ),
    JobAlarm.OLDEST_MESSAGE_AGE: _Spec(
        True, _Unit.SECONDS, math.nan, _GE, Duration.minutes(1), 5, 5, "oldest-message-age",
        "Jobs have waited in the queue longer than all their attempts and retries should take.",
        "Check worker errors, throttles and concurrency; raise max_concurrency or fix the worker.",
    ),
    JobAlarm.WORKER_ERRORS: _Spec(
        True, _Unit.COUNT, 1, _GE, Duration.minutes(5), 1, 1, "worker-errors",
        "The worker crashed (a handler's exception is not an error here): timeout, out of memory, a bug.",
        "Run jobs/failed-by-error-type and the worker's logs (Task timed out, Runtime exited).",
    ),
    JobAlarm.WORKER_THROTTLES: _Spec(
        True, _Unit.COUNT, 1, _GE, Duration.minutes(5), 3, 3, "worker-throttles",
        "Worker invocations are throttled: jobs wait (SQS keeps and retries them).",
        "Check the account's concurrency and the function's reserved concurrency; lower max_concurrency.",
    ),
    JobAlarm.JOB_FAILURE_RATE: _Spec(
        True, _Unit.PERCENT, 10, _GE, Duration.minutes(15), 1, 1, "job-failure-rate",
        f"Too many of the jobs that ended FAILED (quiet below {FAILURE_RATE_MIN_JOBS} ended jobs a period).",
        "Run jobs/failed-by-error-type: one error type dominating is a bug or a bad dependency.",
    ),
    JobAlarm.SUBMIT_ERRORS: _Spec(
        True, _Unit.COUNT, 5, _GE, Duration.minutes(5), 1, 1, "submit-errors",
        "POST answered 503: DynamoDB, S3 or SQS refused to record or enqueue jobs (nothing was accepted).",
        "Read the submit function's errors (could not record / enqueue); check throttling and KMS.",
    ),
    JobAlarm.STARTER_ERRORS: _Spec(
        True, _Unit.COUNT, 1, _GE, Duration.minutes(5), 1, 1, "starter-errors",
        "The starter of a long type crashed: jobs wait in the queue unstarted, or ended executions go unswept.",
        "Read the starter's logs (Invoke or ListDurableExecutionsByFunction refused, timeouts); fix and redeploy.",
    ),
    JobAlarm.DURABLE_EXECUTIONS_FAILED: _Spec(
        True, _Unit.COUNT, 1, _GE, Duration.minutes(5), 1, 1, "durable-executions-failed",
        "Durable executions of a long type's worker ended FAILED; the sweep ends their jobs FAILED.",
        "Find the execution in the worker's logs (jobs/job-journey on its job id) and read its error.",
    ),
    JobAlarm.DURABLE_EXECUTIONS_TIMED_OUT: _Spec(
        True, _Unit.COUNT, 1, _GE, Duration.minutes(5), 1, 1, "durable-executions-timed-out",
        "Jobs of a long type ran past timeout (the execution timeout); the sweep ends them FAILED.",
        "Raise the type's timeout, or make the handler do less per job (jobs/job-journey on one job id).",
    ),
}  # fmt: skip

#: The alarms only a long job type has (its starter and its durable executions).
LONG_TYPE_ALARMS: Final = frozenset(
    {JobAlarm.STARTER_ERRORS, JobAlarm.DURABLE_EXECUTIONS_FAILED, JobAlarm.DURABLE_EXECUTIONS_TIMED_OUT}
)


@dataclass(frozen=True)
class AlarmOverride:
    """Changes one alarm from its default (docs/operations.md gives each default and its unit).

    Parameters
    ----------
    enabled
        False: no such alarm (API-wide, or for the one job type). Default: true.
    threshold
        In the alarm's unit: a count, a percent (0-100), seconds or milliseconds; a ``Duration`` for the age and
        latency alarms. Default: the alarm's own.
    period, evaluation_periods, datapoints_to_alarm
        The alarm's window: ``datapoints_to_alarm`` of the last ``evaluation_periods`` periods breach. Default:
        the alarm's own.

    Examples
    --------
    >>> AlarmOverride(threshold=3, evaluation_periods=2, datapoints_to_alarm=2)
    >>> AlarmOverride(enabled=False)
    """

    enabled: bool = True
    threshold: float | Duration | None = None
    period: Duration | None = None
    evaluation_periods: int | None = None
    datapoints_to_alarm: int | None = None


@dataclass(frozen=True)
class MonitoringOptions:
    """What ``JobMonitoring`` builds; every feature is on by default (docs/operations.md#cost).

    Parameters
    ----------
    alarms
        The alarms of ``JobAlarm`` (about $0.10 per alarm metric and month). Default: true.
    dashboard
        One CloudWatch dashboard for the API ($3 a month beyond an account's first three). Default: true.
    log_queries
        Saved Logs Insights queries, named ``<service name>/...`` (free to keep; $0.005 per GB scanned when run).
        Default: true.
    alarm_actions
        What every alarm does when it goes to ALARM (``cloudwatch_actions.SnsAction(topic)``, any
        ``IAlarmAction``). Default: none (the alarms only show in the console).
    alarm_topic
        Shorthand for ``alarm_actions=[SnsAction(topic)]`` (added after ``alarm_actions``). Default: none.
    alarm_overrides
        By alarm, for the API and every job type. Default: none.
    job_type_alarm_overrides
        By job type name, then alarm; applied over ``alarm_overrides`` for that type's per-type alarms.
        Default: none.

    Examples
    --------
    >>> MonitoringOptions(alarm_topic=on_call, dashboard=False,
    ...                   job_type_alarm_overrides={"reports": {JobAlarm.WORKER_ERRORS: AlarmOverride(threshold=5)}})
    """

    alarms: bool = True
    dashboard: bool = True
    log_queries: bool = True
    alarm_actions: Sequence[cloudwatch.IAlarmAction] = ()
    alarm_topic: sns.ITopic | None = None
    alarm_overrides: Mapping[JobAlarm, AlarmOverride] = field(default_factory=dict)
    job_type_alarm_overrides: Mapping[str, Mapping[JobAlarm, AlarmOverride]] = field(default_factory=dict)


@jsii.implements(IStableListProducer)
class _LogGroupNames:
    """The names of log groups known at synth: a query definition created first covers functions added later."""

    def __init__(self, groups: list[logs.ILogGroup]) -> None:
        self._groups = groups

    def produce(self) -> list[str]:
        return [group.log_group_name for group in self._groups]


@dataclass(frozen=True)
class _Resolved:
    threshold: float
    period: Duration
    evaluation_periods: int
    datapoints_to_alarm: int


class JobMonitoring(Construct):
    """The alarms, dashboard and saved queries of one ``AsyncJobApi`` (docs/operations.md is the runbook).

    Parameters
    ----------
    api
        The API watched: its stage, access log, functions and every job type so far.
    options
        What to build. Default: ``MonitoringOptions()`` (alarms, dashboard and queries, no alarm action).

    Examples
    --------
    >>> monitoring = JobMonitoring(stack, "JobsMonitoring", api=jobs,
    ...                            options=MonitoringOptions(alarm_topic=on_call))
    >>> monitoring.add_job_type(jobs.add_job_type("pdf", handler="pdf.make", code=code))
    >>> monitoring.job_type_alarms["pdf"][JobAlarm.WORKER_ERRORS]
    """

    def __init__(
        self, scope: Construct, id: str, *, api: AsyncJobApi, options: MonitoringOptions | None = None
    ) -> None:
        super().__init__(scope, id)
        options = MonitoringOptions() if options is None else options
        check_instance("monitoring", options, MonitoringOptions, "MonitoringOptions(alarm_topic=topic)")
        self.api: AsyncJobApi = api
        self.options: MonitoringOptions = options
        self._validate_options()
        actions = list(options.alarm_actions)
        if options.alarm_topic is not None:
            actions.append(cloudwatch_actions.SnsAction(options.alarm_topic))
        #: What every alarm does on ALARM.
        self.alarm_actions: tuple[cloudwatch.IAlarmAction, ...] = tuple(actions)
        #: The API-wide alarms, by kind (those enabled).
        self.api_alarms: dict[JobAlarm, cloudwatch.Alarm] = {}
        #: The per-type alarms, by job type name, then kind.
        self.job_type_alarms: dict[str, dict[JobAlarm, cloudwatch.Alarm]] = {}
        #: The dashboard (None with ``dashboard=False``); CloudFormation names it.
        self.dashboard: cloudwatch.Dashboard | None = None
        #: The saved queries, by name suffix (``api/5xx-requests``, ``jobs/job-journey``...).
        self.query_definitions: dict[str, logs.CfnQueryDefinition] = {}
        self._function_log_groups: list[logs.ILogGroup] = []
        self._types: Construct | None = None
        self.node.add_validation(_KnownJobTypes(self))

        if options.dashboard:
            self.dashboard = cloudwatch.Dashboard(self, "Dashboard")
            self._api_widgets()
        if options.alarms:
            self._api_alarms()
        if options.log_queries:
            self._queries()
        for job_type in api.job_types.values():
            self.add_job_type(job_type)

    @property
    def alarms(self) -> list[cloudwatch.Alarm]:
        """Every alarm created, API-wide first."""
        return [*self.api_alarms.values(), *(a for by in self.job_type_alarms.values() for a in by.values())]

    # ---------------------------------------------------------------------------------------------- job types

    def add_job_type(self, job_type: JobType) -> None:
        """Watch ``job_type`` too: its alarms, its dashboard rows, its worker's logs in the saved queries.

        ``JobMonitoring`` calls it for the API's types at creation; call it for each type added afterwards.

        Examples
        --------
        >>> monitoring.add_job_type(jobs.add_job_type("pdf", handler="pdf.make", code=code))
        """
        if job_type.name in self.job_type_alarms:
            raise PropValueError(
                "job_type",
                repr(job_type.name),
                "is watched already",
                "Call add_job_type once per job type (JobMonitoring watches the API's types at creation).",
            )
        self.job_type_alarms[job_type.name] = {}
        if self.options.alarms:
            self._job_type_alarms(job_type)
        if self.dashboard is not None:
            self._job_type_widgets(job_type)
        for function in (job_type.worker_function, job_type.starter_function):
            if function is not None and function.log_group not in self._function_log_groups:
                self._function_log_groups.append(function.log_group)

    # ----------------------------------------------------------------------------------------------- metrics

    def _app_metric(self, name: str, job_type: str, statistic: str, period: Duration) -> cloudwatch.Metric:
        """One of the functions' EMF metrics: namespace, ``service`` and ``jobType`` as Powertools writes them."""
        return cloudwatch.Metric(
            namespace=self.api.metrics_namespace,
            metric_name=name,
            dimensions_map={_SERVICE_DIMENSION: self.api.service_name, JOB_TYPE_DIMENSION: job_type},
            statistic=statistic,
            period=period,
        )

    def _failure_rate(self, job_type: str, period: Duration) -> cloudwatch.MathExpression:
        done = "(FILL(succeeded, 0) + FILL(failed, 0) + FILL(deadLettered, 0))"
        return cloudwatch.MathExpression(
            expression=(
                f"IF({done} >= {FAILURE_RATE_MIN_JOBS}, "
                f"100 * (FILL(failed, 0) + FILL(deadLettered, 0)) / {done}, 0)"
            ),
            using_metrics={
                "succeeded": self._app_metric("JobsSucceeded", job_type, "Sum", period),
                "failed": self._app_metric("JobsFailed", job_type, "Sum", period),
                "deadLettered": self._app_metric("JobsDeadLettered", job_type, "Sum", period),
            },
            period=period,
            label="Failed jobs (%)",
        )

    # ------------------------------------------------------------------------------------------------ alarms

    def _api_alarms(self) -> None:
        stage = self.api.api.deployment_stage
        dead_letters = _events_dead_letter_queue(self.api)
        if dead_letters is not None:
            self._alarm(
                self,
                JobAlarm.EVENTS_DEAD_LETTER_MESSAGES,
                None,
                lambda period: dead_letters.metric_approximate_number_of_messages_visible(
                    statistic="Maximum", period=period
                ),
            )
        self._alarm(
            self,
            JobAlarm.API_SERVER_ERROR_RATE,
            None,
            lambda period: cloudwatch.MathExpression(
                expression="100 * errors",
                using_metrics={"errors": stage.metric_server_error(statistic="Average", period=period)},
                period=period,
                label="5xx (%)",
            ),
        )
        self._alarm(
            self,
            JobAlarm.API_LATENCY,
            None,
            lambda period: stage.metric_latency(statistic="p90", period=period),
        )

    def _job_type_alarms(self, job_type: JobType) -> None:
        if self._types is None:
            self._types = Construct(self, "JobTypes")
        scope = Construct(self._types, job_type.name)
        name = job_type.name
        worker = job_type.worker_function
        self._alarm(
            scope,
            JobAlarm.DEAD_LETTERED_JOBS,
            job_type,
            lambda period: self._app_metric("JobsDeadLettered", name, "Sum", period),
        )
        self._alarm(
            scope,
            JobAlarm.DEAD_LETTER_BACKLOG,
            job_type,
            lambda period: job_type.dead_letter_queue.metric_approximate_number_of_messages_visible(
                statistic="Minimum", period=period
            ),
        )
        self._alarm(
            scope,
            JobAlarm.OLDEST_MESSAGE_AGE,
            job_type,
            lambda period: job_type.queue.metric_approximate_age_of_oldest_message(
                statistic="Maximum", period=period
            ),
        )
        self._alarm(
            scope,
            JobAlarm.WORKER_ERRORS,
            job_type,
            lambda period: worker.metric_errors(statistic="Sum", period=period),
        )
        self._alarm(
            scope,
            JobAlarm.WORKER_THROTTLES,
            job_type,
            lambda period: worker.metric_throttles(statistic="Sum", period=period),
        )
        self._alarm(
            scope, JobAlarm.JOB_FAILURE_RATE, job_type, lambda period: self._failure_rate(name, period)
        )
        self._alarm(
            scope,
            JobAlarm.SUBMIT_ERRORS,
            job_type,
            lambda period: self._app_metric("SubmitErrors", name, "Sum", period),
        )
        starter = job_type.starter_function
        if starter is not None:
            self._alarm(
                scope,
                JobAlarm.STARTER_ERRORS,
                job_type,
                lambda period: starter.metric_errors(statistic="Sum", period=period),
            )
            self._alarm(
                scope,
                JobAlarm.DURABLE_EXECUTIONS_FAILED,
                job_type,
                lambda period: worker.metric("DurableExecutionFailed", statistic="Sum", period=period),
            )
            self._alarm(
                scope,
                JobAlarm.DURABLE_EXECUTIONS_TIMED_OUT,
                job_type,
                lambda period: worker.metric("DurableExecutionTimedOut", statistic="Sum", period=period),
            )

    def _alarm(
        self,
        scope: Construct,
        kind: JobAlarm,
        job_type: JobType | None,
        metric: Callable[[Duration], cloudwatch.IMetric],
    ) -> None:
        spec = _SPECS[kind]
        override = self.options.alarm_overrides.get(kind, AlarmOverride())
        if job_type is not None:
            override = _merge(
                override, self.options.job_type_alarm_overrides.get(job_type.name, {}).get(kind)
            )
        if not override.enabled:
            return
        resolved = _resolve(kind, spec, override, job_type)
        where = self.api.node.path if job_type is None else f"{self.api.node.path}, job type {job_type.name}"
        comparison = ">=" if spec.comparison == _GE else ">"
        window = (
            f"{resolved.datapoints_to_alarm} of {resolved.evaluation_periods} periods of "
            f"{resolved.period.to_human_string()}"
        )
        description = (
            f"{where}: {spec.meaning} [{comparison} {resolved.threshold:g} {spec.unit.value}, {window}] "
            f"What to do: {spec.action} Runbook: {RUNBOOK}#{spec.anchor}"
        )
        alarm = cloudwatch.Alarm(
            scope,
            kind.value,
            metric=metric(resolved.period),
            threshold=resolved.threshold,
            comparison_operator=spec.comparison,
            evaluation_periods=resolved.evaluation_periods,
            datapoints_to_alarm=resolved.datapoints_to_alarm,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        if self.alarm_actions:
            alarm.add_alarm_action(*self.alarm_actions)
        if job_type is None:
            self.api_alarms[kind] = alarm
        else:
            self.job_type_alarms[job_type.name][kind] = alarm

    # --------------------------------------------------------------------------------------------- dashboard

    def _api_widgets(self) -> None:
        assert self.dashboard is not None
        stage = self.api.api.deployment_stage
        five = Duration.minutes(5)
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    f"# {self.api.node.path}\nJobs by type, queues, workers and the REST API. Alarms and the saved "
                    f"queries (Logs Insights, `{self.api.service_name}/...`): see {RUNBOOK}."
                ),
                width=24,
                height=2,
            )
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="API requests, 4xx, 5xx",
                left=[
                    stage.metric_count(statistic="Sum", period=five, label="Requests"),
                    stage.metric_client_error(statistic="Sum", period=five, label="4xx"),
                    stage.metric_server_error(statistic="Sum", period=five, label="5xx"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="API latency (ms)",
                left=[
                    stage.metric_latency(statistic=statistic, period=five, label=f"Latency {statistic}")
                    for statistic in ("p50", "p90", "p99")
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="API integration latency (ms)",
                left=[
                    stage.metric_integration_latency(
                        statistic=statistic, period=five, label=f"IntegrationLatency {statistic}"
                    )
                    for statistic in ("p50", "p90", "p99")
                ],
                width=8,
            ),
        )

    def _job_type_widgets(self, job_type: JobType) -> None:
        assert self.dashboard is not None
        name = job_type.name
        five = Duration.minutes(5)
        worker = job_type.worker_function
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=f"{name}: jobs",
                left=[
                    self._app_metric(metric, name, "Sum", five)
                    for metric in (
                        "JobsSubmitted",
                        "JobsSucceeded",
                        "JobsFailed",
                        "JobsCancelled",
                        "JobsDeadLettered",
                        "JobsRetried",
                    )
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title=f"{name}: job duration (ms)",
                left=[
                    self._app_metric("JobDuration", name, statistic, five).with_(
                        label=f"JobDuration {statistic}"
                    )
                    for statistic in ("p50", "p90", "p99")
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title=f"{name}: queue",
                left=[
                    job_type.queue.metric_approximate_number_of_messages_visible(
                        statistic="Maximum", period=five, label="Visible"
                    ),
                    job_type.queue.metric_approximate_number_of_messages_not_visible(
                        statistic="Maximum", period=five, label="In flight or delayed"
                    ),
                    job_type.dead_letter_queue.metric_approximate_number_of_messages_visible(
                        statistic="Maximum", period=five, label="Dead-letter queue"
                    ),
                ],
                right=[
                    job_type.queue.metric_approximate_age_of_oldest_message(
                        statistic="Maximum", period=five, label="Oldest message (s)"
                    )
                ],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=f"{name}: worker concurrency",
                left=[worker.metric("ConcurrentExecutions", statistic="Maximum", period=five)],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title=f"{name}: worker errors and throttles",
                left=[
                    worker.metric_errors(statistic="Sum", period=five, label="Errors"),
                    worker.metric_throttles(statistic="Sum", period=five, label="Throttles"),
                ],
                right=[worker.metric_duration(statistic="p90", period=five, label="Duration p90 (ms)")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title=f"{name}: failure rate (%) and submit errors",
                left=[self._failure_rate(name, Duration.minutes(15))],
                right=[
                    self._app_metric("SubmitErrors", name, "Sum", five),
                    self._app_metric("JobsRejected", name, "Sum", five),
                ],
                width=8,
            ),
        )
        starter = job_type.starter_function
        if starter is not None:
            self.dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title=f"{name}: durable executions",
                    left=[
                        worker.metric(
                            f"DurableExecution{outcome}", statistic="Sum", period=five, label=outcome
                        )
                        for outcome in ("Started", "Succeeded", "Failed", "TimedOut", "Stopped")
                    ],
                    right=[
                        worker.metric(
                            "ApproximateRunningDurableExecutions",
                            statistic="Maximum",
                            period=five,
                            label="Running",
                        )
                    ],
                    width=16,
                ),
                cloudwatch.GraphWidget(
                    title=f"{name}: starter errors",
                    left=[starter.metric_errors(statistic="Sum", period=five, label="Errors")],
                    width=8,
                ),
            )

    # ----------------------------------------------------------------------------------------------- queries

    def _queries(self) -> None:
        api = self.api
        for function in (
            api.submit_function,
            api.status_function,
            api.dead_letter_function,
            api.events_function,
            api.webhook_function,
            *(
                ()
                if api.websocket is None
                else (api.websocket.connection_function, api.websocket.push_function)
            ),
        ):
            if function is not None:
                self._function_log_groups.append(function.log_group)
        for suffix, query in ACCESS_LOG_QUERIES.items():
            self._query(suffix, query, [api.access_log_group.log_group_name])
        names = Lazy.list(_LogGroupNames(self._function_log_groups))
        for suffix, query in FUNCTION_LOG_QUERIES.items():
            self._query(suffix, query, names)

    def _query(self, suffix: str, query: str, log_group_names: Sequence[str]) -> None:
        id = "Query-" + suffix.replace("/", "-")
        self.query_definitions[suffix] = logs.CfnQueryDefinition(
            self,
            id,
            name=f"{self.api.service_name}/{suffix}",
            query_string=query,
            log_group_names=list(log_group_names),
        )

    # -------------------------------------------------------------------------------------------- validation

    def _validate_options(self) -> None:
        options = self.options
        for prop in ("alarms", "dashboard", "log_queries"):
            if not isinstance(getattr(options, prop), bool):
                raise PropValueError(
                    f"monitoring.{prop}",
                    repr(getattr(options, prop)),
                    "must be a bool",
                    "Pass True or False.",
                )
        for action in options.alarm_actions:
            if not hasattr(action, "bind"):
                raise PropValueError(
                    "monitoring.alarm_actions",
                    repr(action),
                    "must hold cloudwatch.IAlarmAction values",
                    "Pass e.g. [cloudwatch_actions.SnsAction(topic)], or the topic as alarm_topic.",
                )
        if options.alarm_topic is not None and not hasattr(options.alarm_topic, "topic_arn"):
            raise PropValueError(
                "monitoring.alarm_topic",
                repr(options.alarm_topic),
                "must be an sns.ITopic",
                "Pass sns.Topic(...).",
            )
        for kind, override in options.alarm_overrides.items():
            _check_override("monitoring.alarm_overrides", kind, override)
        for name, overrides in options.job_type_alarm_overrides.items():
            prop = f"monitoring.job_type_alarm_overrides[{name!r}]"
            for kind, override in overrides.items():
                _check_override(prop, kind, override)
                if not _SPECS[kind].per_type:
                    per_type = ", ".join(k.name for k, spec in _SPECS.items() if spec.per_type)
                    raise PropValueError(
                        prop,
                        kind.name,
                        "is an API-wide alarm, not a job type's",
                        f"Set it in alarm_overrides; per type are {per_type}.",
                    )


def _events_dead_letter_queue(api: AsyncJobApi) -> sqs.IQueue | None:
    """The events function's dead-letter queue (None with ``job_events="none"``)."""
    return api.events_dead_letter_queue


def _merge(base: AlarmOverride, over: AlarmOverride | None) -> AlarmOverride:
    """``over``'s settings where it has them, else ``base``'s (``enabled`` is ``over``'s when given)."""
    if over is None:
        return base
    return AlarmOverride(
        enabled=over.enabled,
        threshold=base.threshold if over.threshold is None else over.threshold,
        period=base.period if over.period is None else over.period,
        evaluation_periods=base.evaluation_periods
        if over.evaluation_periods is None
        else over.evaluation_periods,
        datapoints_to_alarm=(
            base.datapoints_to_alarm if over.datapoints_to_alarm is None else over.datapoints_to_alarm
        ),
    )


def oldest_message_age_default(job_type: JobType) -> Duration:
    """The default threshold of ``OLDEST_MESSAGE_AGE``: every attempt and every retry delay, at least 15 minutes.

    A message keeps its age across its retries, so a job that is retried as designed may be as old as
    ``max_receive_count x timeout + (max_receive_count - 1) x retry_max_delay``. On a long type the starter
    consumes the message once the job's execution has started: ``max_receive_count x visibility_timeout``, plus
    ``timeout`` when ``max_concurrency`` caps the running executions (a job waits for a slot).

    Examples
    --------
    >>> oldest_message_age_default(jobs.job_types["jobs"]).to_minutes()  # 3 x 5 min + 2 x 15 min
    45
    """
    timeout, retry_max = job_type.timeout, job_type.retry_max_delay
    if (
        timeout.is_unresolved()
        or retry_max.is_unresolved()
        or Token.is_unresolved(job_type.max_receive_count)
    ):
        return _UNKNOWN_OLDEST_MESSAGE_AGE
    attempts = job_type.max_receive_count
    if job_type.is_long:
        # The message is the starter's: consumed once the execution starts, retried after its visibility
        # timeout; under a running-executions cap a job also waits for a slot, about one whole run.
        seconds = attempts * job_type.visibility_timeout.to_seconds()
        if job_type.max_concurrency is not None:
            seconds += timeout.to_seconds()
    else:
        seconds = attempts * timeout.to_seconds() + (attempts - 1) * retry_max.to_seconds()
    return Duration.seconds(max(seconds, _MIN_OLDEST_MESSAGE_AGE.to_seconds()))


def _threshold_value(kind: JobAlarm, spec: _Spec, threshold: float | Duration) -> float:
    if not isinstance(threshold, Duration):
        return float(threshold)
    if spec.unit is _Unit.SECONDS:
        return threshold.to_seconds()
    return threshold.to_milliseconds()


def _resolve(kind: JobAlarm, spec: _Spec, override: AlarmOverride, job_type: JobType | None) -> _Resolved:
    if override.threshold is not None:
        threshold = _threshold_value(kind, spec, override.threshold)
    elif kind is JobAlarm.OLDEST_MESSAGE_AGE:
        assert job_type is not None
        threshold = oldest_message_age_default(job_type).to_seconds()
    else:
        threshold = spec.threshold
    period = spec.period if override.period is None else override.period
    evaluation = (
        spec.evaluation_periods if override.evaluation_periods is None else override.evaluation_periods
    )
    datapoints = (
        min(spec.datapoints_to_alarm, evaluation)
        if override.datapoints_to_alarm is None
        else override.datapoints_to_alarm
    )
    prop = f"alarm {kind.name}" if job_type is None else f"alarm {kind.name} of job type {job_type.name!r}"
    check_int_range(
        f"{prop}: datapoints_to_alarm",
        datapoints,
        1,
        evaluation,
        "It counts breaching periods among the last evaluation_periods, so it is at most that.",
    )
    limit = _SEVEN_DAYS_SECONDS if period.to_seconds() >= 3600 else _ONE_DAY_SECONDS
    if evaluation * period.to_seconds() > limit:
        raise PropValueError(
            f"{prop}: evaluation_periods x period",
            f"{evaluation} x {period.to_human_string()}",
            f"must be at most {limit // 3600} hours (CloudWatch's evaluation range for this period)",
            "Use fewer evaluation periods or a shorter period.",
        )
    return _Resolved(threshold, period, evaluation, datapoints)


def _check_override(prop: str, kind: object, override: object) -> None:
    if not isinstance(kind, JobAlarm):
        raise PropValueError(
            prop,
            repr(kind),
            "must be keyed by JobAlarm",
            f"Use one of {', '.join(f'JobAlarm.{k.name}' for k in JobAlarm)}.",
        )
    prop = f"{prop}[JobAlarm.{kind.name}]"
    check_instance(
        prop, override, AlarmOverride, "AlarmOverride(threshold=...) or AlarmOverride(enabled=False)"
    )
    assert isinstance(override, AlarmOverride)
    spec = _SPECS[kind]
    if not isinstance(override.enabled, bool):
        raise PropValueError(
            f"{prop}.enabled", repr(override.enabled), "must be a bool", "Pass True or False."
        )
    threshold = override.threshold
    if threshold is not None:
        if isinstance(threshold, Duration):
            if spec.unit not in (_Unit.SECONDS, _Unit.MILLISECONDS):
                raise PropValueError(
                    f"{prop}.threshold",
                    threshold.to_human_string(),
                    f"must be a number ({spec.unit.value}), not a Duration",
                    "Pass a number in the alarm's unit (docs/operations.md lists each).",
                )
            value = _threshold_value(kind, spec, threshold)
        elif isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise PropValueError(
                f"{prop}.threshold",
                repr(threshold),
                "must be a number",
                f"Pass a number of {spec.unit.value}.",
            )
        else:
            value = float(threshold)
        if not Token.is_unresolved(value) and (
            math.isnan(value) or value < 0 or (spec.unit is _Unit.PERCENT and value > 100)
        ):
            high = " and at most 100" if spec.unit is _Unit.PERCENT else ""
            raise PropValueError(
                f"{prop}.threshold",
                f"{value:g}",
                f"must be at least 0{high} ({spec.unit.value})",
                "Pass a threshold in range, or AlarmOverride(enabled=False) for no alarm.",
            )
    if override.period is not None:
        period = check_duration(f"{prop}.period", override.period)
        seconds = period.to_seconds()
        if not period.is_unresolved() and (seconds < 60 or seconds % 60 or seconds > _ONE_DAY_SECONDS):
            raise PropValueError(
                f"{prop}.period",
                period.to_human_string(),
                "must be a whole number of minutes from 1 minute to 1 day (standard-resolution alarms)",
                "Pass e.g. Duration.minutes(5).",
            )
    if override.evaluation_periods is not None:
        check_int_range(f"{prop}.evaluation_periods", override.evaluation_periods, 1, 1440)
    if override.datapoints_to_alarm is not None:
        check_int_range(f"{prop}.datapoints_to_alarm", override.datapoints_to_alarm, 1, 1440)


@jsii.implements(IValidation)
class _KnownJobTypes:
    """Synth fails for an override of a job type the monitoring never watched (a typo would silently do nothing)."""

    def __init__(self, monitoring: JobMonitoring) -> None:
        self._monitoring = monitoring

    def validate(self) -> list[str]:
        watched = self._monitoring.job_type_alarms
        return [
            f"{self._monitoring.node.path}: monitoring.job_type_alarm_overrides names job type {name!r}, which "
            f"it does not watch (watched: {', '.join(sorted(watched)) or 'none'}). Fix the name, or call "
            "add_job_type for a type added after the monitoring."
            for name in self._monitoring.options.job_type_alarm_overrides
            if name not in watched
        ]
