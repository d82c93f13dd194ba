"""JobMonitoring: alarms, dashboard and saved queries of an AsyncJobApi; overrides, opt-outs, bad values.

One synthesis for the module: a stack with three APIs (all defaults; two types with an SNS topic, overrides and a
type added later; everything but alarms off and no job events). The failing cases build but never synthesize.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match, Template

from async_job_construct import AsyncJobApi, PropValueError
from async_job_construct.monitoring import (
    ACCESS_LOG_QUERIES,
    FUNCTION_LOG_QUERIES,
    LONG_TYPE_ALARMS,
    RUNBOOK,
    AlarmOverride,
    JobAlarm,
    JobMonitoring,
    MonitoringOptions,
)
from tests.unit.construct.helpers import TEAM_CODE

API_WIDE = {JobAlarm.EVENTS_DEAD_LETTER_MESSAGES, JobAlarm.API_SERVER_ERROR_RATE, JobAlarm.API_LATENCY}
#: A short type's alarms (a long type has LONG_TYPE_ALARMS too: tests/unit/construct/test_long_job_type.py).
PER_TYPE = set(JobAlarm) - API_WIDE - LONG_TYPE_ALARMS


#: The API's built-in monitoring switched off, so that each test's own JobMonitoring is the only one.
OFF = MonitoringOptions(alarms=False, dashboard=False, log_queries=False)


class Synthesized:
    def __init__(self) -> None:
        app = cdk.App()
        self.stack = cdk.Stack(app, "Stack")
        # All defaults: the single-type form, job events on.
        self.jobs = AsyncJobApi(
            self.stack, "Jobs", handler="reports.generate", code=TEAM_CODE, monitoring=OFF
        )
        self.jobs_monitoring = JobMonitoring(self.stack, "JobsMonitoring", api=self.jobs)
        # Two types, an SNS topic and another action, overrides, and a third type added after the monitoring.
        self.topic = sns.Topic(self.stack, "OnCall", enforce_ssl=True)
        self.other_topic = sns.Topic(self.stack, "Other", enforce_ssl=True)
        self.media = AsyncJobApi(self.stack, "Media", monitoring=OFF)
        self.media.add_job_type("reports", handler="reports.generate", code=TEAM_CODE)
        self.media.add_job_type(
            "thumbnails", handler="thumbs.make", code=TEAM_CODE, timeout=cdk.Duration.minutes(1)
        )
        self.media_monitoring = JobMonitoring(
            self.stack,
            "MediaMonitoring",
            api=self.media,
            options=MonitoringOptions(
                alarm_actions=[cloudwatch_actions.SnsAction(self.other_topic)],
                alarm_topic=self.topic,
                alarm_overrides={
                    JobAlarm.API_LATENCY: AlarmOverride(threshold=cdk.Duration.seconds(5)),
                    JobAlarm.WORKER_ERRORS: AlarmOverride(threshold=2),
                },
                job_type_alarm_overrides={
                    "thumbnails": {
                        JobAlarm.WORKER_ERRORS: AlarmOverride(
                            period=cdk.Duration.minutes(10), evaluation_periods=3, datapoints_to_alarm=2
                        ),
                        JobAlarm.SUBMIT_ERRORS: AlarmOverride(enabled=False),
                        JobAlarm.OLDEST_MESSAGE_AGE: AlarmOverride(threshold=cdk.Duration.minutes(30)),
                    },
                    "late": {JobAlarm.JOB_FAILURE_RATE: AlarmOverride(threshold=25)},
                },
            ),
        )
        self.late = self.media.add_job_type("late", handler="late.run", code=TEAM_CODE)
        self.media_monitoring.add_job_type(self.late)
        # Alarms only, no job events: no events dead-letter queue to watch.
        self.quiet = AsyncJobApi(
            self.stack, "Quiet", handler="m.f", code=TEAM_CODE, job_events="none", monitoring=OFF
        )
        self.quiet_monitoring = JobMonitoring(
            self.stack,
            "QuietMonitoring",
            api=self.quiet,
            options=MonitoringOptions(dashboard=False, log_queries=False),
        )
        self.template = Template.from_stack(self.stack)
        self.body: dict[str, Any] = dict(self.template.to_json())

    def logical_id(self, construct: Any) -> str:
        element = construct if isinstance(construct, cdk.CfnElement) else construct.node.default_child
        return self.stack.resolve(self.stack.get_logical_id(element))  # type: ignore[no-any-return]

    def properties(self, construct: Any) -> dict[str, Any]:
        return self.body["Resources"][self.logical_id(construct)]["Properties"]  # type: ignore[no-any-return]

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.body["Resources"].items() if r["Type"] == resource_type}

    def ref(self, construct: Any) -> dict[str, str]:
        return {"Ref": self.logical_id(construct)}


@pytest.fixture(scope="module")
def synth() -> Synthesized:
    return Synthesized()


def _dimensions(alarm: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in alarm["Dimensions"]}


# ------------------------------------------------------------------------------------------------- alarms


def test_defaults_make_three_api_alarms_and_seven_per_job_type(synth: Synthesized) -> None:
    monitoring = synth.jobs_monitoring
    assert set(monitoring.api_alarms) == API_WIDE
    assert set(monitoring.job_type_alarms) == {"jobs"}
    assert set(monitoring.job_type_alarms["jobs"]) == PER_TYPE
    assert len(monitoring.alarms) == 10


def test_alarm_counts_of_every_api_in_the_template(synth: Synthesized) -> None:
    # Jobs 3 + 7; Media 3 + 3 x 7 - 1 (submit errors of thumbnails off); Quiet 2 (no events) + 7.
    assert len(synth.of_type("AWS::CloudWatch::Alarm")) == 10 + 23 + 9
    assert len(synth.media_monitoring.alarms) == 23
    assert set(synth.quiet_monitoring.api_alarms) == API_WIDE - {JobAlarm.EVENTS_DEAD_LETTER_MESSAGES}


def test_every_alarm_treats_missing_data_as_not_breaching_and_points_at_its_runbook_section(
    synth: Synthesized,
) -> None:
    for alarm in synth.of_type("AWS::CloudWatch::Alarm").values():
        properties = alarm["Properties"]
        assert properties["TreatMissingData"] == "notBreaching"
        assert f"Runbook: {RUNBOOK}#" in properties["AlarmDescription"]
        assert "What to do:" in properties["AlarmDescription"]
        assert "AlarmName" not in properties  # CloudFormation names them


def test_the_runbook_has_a_section_for_every_alarm_anchor(synth: Synthesized) -> None:
    runbook = (Path(__file__).resolve().parents[3] / RUNBOOK).read_text()
    for alarm in synth.of_type("AWS::CloudWatch::Alarm").values():
        anchor = alarm["Properties"]["AlarmDescription"].rsplit("#", 1)[1]
        assert f'<a id="{anchor}"></a>' in runbook, anchor


@pytest.mark.parametrize(
    ("kind", "namespace", "metric", "statistic", "period", "evaluation", "datapoints", "threshold", "operator"),
    [
        (JobAlarm.DEAD_LETTERED_JOBS, "AsyncJobs", "JobsDeadLettered", "Sum", 300, 1, 1, 1, "GreaterThanOrEqualToThreshold"),
        (JobAlarm.DEAD_LETTER_BACKLOG, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Minimum", 300, 3, 3, 1, "GreaterThanOrEqualToThreshold"),
        (JobAlarm.OLDEST_MESSAGE_AGE, "AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum", 60, 5, 5, 2700, "GreaterThanOrEqualToThreshold"),
        (JobAlarm.WORKER_ERRORS, "AWS/Lambda", "Errors", "Sum", 300, 1, 1, 1, "GreaterThanOrEqualToThreshold"),
        (JobAlarm.WORKER_THROTTLES, "AWS/Lambda", "Throttles", "Sum", 300, 3, 3, 1, "GreaterThanOrEqualToThreshold"),
        (JobAlarm.SUBMIT_ERRORS, "AsyncJobs", "SubmitErrors", "Sum", 300, 1, 1, 5, "GreaterThanOrEqualToThreshold"),
    ],
)  # fmt: skip
def test_per_type_alarm_defaults(
    synth: Synthesized,
    kind: JobAlarm,
    namespace: str,
    metric: str,
    statistic: str,
    period: int,
    evaluation: int,
    datapoints: int,
    threshold: float,
    operator: str,
) -> None:
    alarm = synth.properties(synth.jobs_monitoring.job_type_alarms["jobs"][kind])
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"], alarm["Period"]) == (
        namespace,
        metric,
        statistic,
        period,
    )
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"], alarm["Threshold"]) == (
        evaluation,
        datapoints,
        threshold,
    )
    assert alarm["ComparisonOperator"] == operator
    assert "AlarmActions" not in alarm  # no action by default


def test_queue_alarms_watch_the_types_own_queues(synth: Synthesized) -> None:
    alarms = synth.jobs_monitoring.job_type_alarms["jobs"]
    backlog = synth.properties(alarms[JobAlarm.DEAD_LETTER_BACKLOG])
    age = synth.properties(alarms[JobAlarm.OLDEST_MESSAGE_AGE])
    assert _dimensions(backlog)["QueueName"] == {
        "Fn::GetAtt": [synth.logical_id(synth.jobs.dead_letter_queue), "QueueName"]
    }
    assert _dimensions(age)["QueueName"] == {"Fn::GetAtt": [synth.logical_id(synth.jobs.queue), "QueueName"]}
    errors = synth.properties(alarms[JobAlarm.WORKER_ERRORS])
    assert _dimensions(errors) == {"FunctionName": synth.ref(synth.jobs.worker_function)}


def test_app_metric_alarms_use_the_service_and_job_type_dimensions(synth: Synthesized) -> None:
    alarm = synth.properties(synth.jobs_monitoring.job_type_alarms["jobs"][JobAlarm.DEAD_LETTERED_JOBS])
    assert alarm["Namespace"] == synth.jobs.metrics_namespace
    assert _dimensions(alarm) == {"service": synth.jobs.service_name, "jobType": "jobs"}


def test_failure_rate_is_metric_math_over_succeeded_failed_and_dead_lettered(synth: Synthesized) -> None:
    alarm = synth.properties(synth.jobs_monitoring.job_type_alarms["jobs"][JobAlarm.JOB_FAILURE_RATE])
    queries = {q["Id"]: q for q in alarm["Metrics"]}
    expression = next(q for q in alarm["Metrics"] if "Expression" in q)
    assert expression["Expression"] == (
        "IF((FILL(succeeded, 0) + FILL(failed, 0) + FILL(deadLettered, 0)) >= 5, "
        "100 * (FILL(failed, 0) + FILL(deadLettered, 0)) / "
        "(FILL(succeeded, 0) + FILL(failed, 0) + FILL(deadLettered, 0)), 0)"
    )
    assert expression["ReturnData"] is True
    names = {
        id: (q["MetricStat"]["Metric"]["MetricName"], q["MetricStat"]["Stat"], q["MetricStat"]["Period"])
        for id, q in queries.items()
        if "MetricStat" in q
    }
    assert names == {
        "succeeded": ("JobsSucceeded", "Sum", 900),
        "failed": ("JobsFailed", "Sum", 900),
        "deadLettered": ("JobsDeadLettered", "Sum", 900),
    }
    dimensions = {d["Name"]: d["Value"] for d in queries["failed"]["MetricStat"]["Metric"]["Dimensions"]}
    assert dimensions == {"service": synth.jobs.service_name, "jobType": "jobs"}
    assert (alarm["Threshold"], alarm["EvaluationPeriods"]) == (10, 1)


def test_api_alarms_watch_the_stage_with_api_name_and_stage_dimensions(synth: Synthesized) -> None:
    alarms = synth.jobs_monitoring.api_alarms
    latency = synth.properties(alarms[JobAlarm.API_LATENCY])
    assert (latency["Namespace"], latency["MetricName"], latency["ExtendedStatistic"]) == (
        "AWS/ApiGateway",
        "Latency",
        "p90",
    )
    assert set(_dimensions(latency)) == {"ApiName", "Stage"}
    assert (latency["Threshold"], latency["EvaluationPeriods"], latency["Period"]) == (2500, 5, 60)
    rate = synth.properties(alarms[JobAlarm.API_SERVER_ERROR_RATE])
    math_query = next(q for q in rate["Metrics"] if "Expression" in q)
    assert math_query["Expression"] == "100 * errors"
    stat = next(q for q in rate["Metrics"] if "MetricStat" in q)["MetricStat"]
    assert (stat["Metric"]["MetricName"], stat["Stat"], stat["Period"]) == ("5XXError", "Average", 60)
    assert (rate["Threshold"], rate["ComparisonOperator"], rate["EvaluationPeriods"]) == (
        5,
        "GreaterThanThreshold",
        3,
    )


def test_events_dead_letter_alarm_watches_the_events_dead_letter_queue(synth: Synthesized) -> None:
    alarm = synth.properties(synth.jobs_monitoring.api_alarms[JobAlarm.EVENTS_DEAD_LETTER_MESSAGES])
    queue = synth.jobs._shared.push.events_dead_letter_queue
    assert _dimensions(alarm)["QueueName"] == {"Fn::GetAtt": [synth.logical_id(queue), "QueueName"]}
    assert (alarm["MetricName"], alarm["Statistic"], alarm["Threshold"], alarm["Period"]) == (
        "ApproximateNumberOfMessagesVisible",
        "Maximum",
        1,
        60,
    )


def test_every_alarm_notifies_the_topic_and_the_other_actions(synth: Synthesized) -> None:
    for alarm in synth.media_monitoring.alarms:
        assert synth.properties(alarm)["AlarmActions"] == [
            synth.ref(synth.other_topic),
            synth.ref(synth.topic),
        ]


def test_api_wide_overrides_apply_to_every_type_and_durations_convert_to_the_unit(synth: Synthesized) -> None:
    monitoring = synth.media_monitoring
    assert synth.properties(monitoring.api_alarms[JobAlarm.API_LATENCY])["Threshold"] == 5000
    assert synth.properties(monitoring.job_type_alarms["reports"][JobAlarm.WORKER_ERRORS])["Threshold"] == 2
    assert synth.properties(monitoring.job_type_alarms["late"][JobAlarm.WORKER_ERRORS])["Threshold"] == 2


def test_job_type_overrides_win_over_api_wide_ones_setting_by_setting(synth: Synthesized) -> None:
    thumbs = synth.media_monitoring.job_type_alarms["thumbnails"]
    errors = synth.properties(thumbs[JobAlarm.WORKER_ERRORS])
    assert (
        errors["Threshold"],
        errors["Period"],
        errors["EvaluationPeriods"],
        errors["DatapointsToAlarm"],
    ) == (
        2,
        600,
        3,
        2,
    )
    assert "[>= 2 count, 2 of 3 periods of 10 minutes]" in errors["AlarmDescription"]
    assert JobAlarm.SUBMIT_ERRORS not in thumbs
    assert synth.properties(thumbs[JobAlarm.OLDEST_MESSAGE_AGE])["Threshold"] == 1800


def test_oldest_message_age_default_covers_every_attempt_and_retry_delay(synth: Synthesized) -> None:
    # reports: 3 x 5 min + 2 x 15 min = 45 min; late: the same; thumbnails overridden above.
    late = synth.properties(synth.media_monitoring.job_type_alarms["late"][JobAlarm.OLDEST_MESSAGE_AGE])
    assert late["Threshold"] == 2700


def test_a_type_added_later_gets_its_alarms_and_override(synth: Synthesized) -> None:
    late = synth.media_monitoring.job_type_alarms["late"]
    assert set(late) == PER_TYPE
    assert synth.properties(late[JobAlarm.JOB_FAILURE_RATE])["Threshold"] == 25
    errors = synth.properties(late[JobAlarm.WORKER_ERRORS])
    assert _dimensions(errors) == {"FunctionName": synth.ref(synth.late.worker_function)}


# ----------------------------------------------------------------------------------------------- dashboard


def _dashboard_body(synth: Synthesized, monitoring: JobMonitoring) -> str:
    assert monitoring.dashboard is not None
    body = synth.properties(monitoring.dashboard)["DashboardBody"]
    return json.dumps(body)


def test_one_dashboard_per_api_named_by_cloudformation(synth: Synthesized) -> None:
    dashboards = synth.of_type("AWS::CloudWatch::Dashboard")
    assert len(dashboards) == 2  # Quiet opted out
    assert all("DashboardName" not in d["Properties"] for d in dashboards.values())
    assert synth.quiet_monitoring.dashboard is None


@pytest.mark.parametrize(
    "needle",
    [
        "JobsSubmitted",
        "JobsSucceeded",
        "JobsFailed",
        "JobsCancelled",
        "JobsDeadLettered",
        "JobDuration",
        "JobDuration p50",
        "JobDuration p90",
        "JobDuration p99",
        "Latency p99",
        "IntegrationLatency p90",
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
        "ConcurrentExecutions",
        "Errors",
        "Throttles",
        "4XXError",
        "5XXError",
        '\\"Count\\"',
        "IntegrationLatency",
        '\\"Latency\\"',
        "SubmitErrors",
    ],
)
def test_dashboard_shows_each_metric(synth: Synthesized, needle: str) -> None:
    assert needle in _dashboard_body(synth, synth.jobs_monitoring)


def test_dashboard_has_rows_for_a_type_added_later(synth: Synthesized) -> None:
    body = _dashboard_body(synth, synth.media_monitoring)
    for name in ("reports", "thumbnails", "late"):
        assert f"{name}: jobs" in body
        assert f"{name}: worker concurrency" in body


# ------------------------------------------------------------------------------------------------- queries


def _queries(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        json.dumps(r["Properties"]["Name"]): r["Properties"]
        for r in synth.of_type("AWS::Logs::QueryDefinition").values()
    }


def test_five_saved_queries_per_api_named_after_its_service(synth: Synthesized) -> None:
    monitoring = synth.jobs_monitoring
    assert set(monitoring.query_definitions) == {*ACCESS_LOG_QUERIES, *FUNCTION_LOG_QUERIES}
    assert len(synth.of_type("AWS::Logs::QueryDefinition")) == 2 * 5  # Quiet opted out
    for suffix, definition in monitoring.query_definitions.items():
        assert synth.properties(definition)["Name"] == f"{synth.jobs.service_name}/{suffix}"


def test_access_log_queries_read_the_access_log_group(synth: Synthesized) -> None:
    for suffix, query in ACCESS_LOG_QUERIES.items():
        properties = synth.properties(synth.jobs_monitoring.query_definitions[suffix])
        assert properties["QueryString"] == query
        assert properties["LogGroupNames"] == [synth.ref(synth.jobs.access_log_group)]


def test_function_log_queries_read_every_function_including_workers_added_later(synth: Synthesized) -> None:
    api = synth.media
    expected = [
        synth.ref(function.log_group)
        for function in (
            api.submit_function,
            api.status_function,
            api.dead_letter_function,
            api.events_function,
            *(job_type.worker_function for job_type in api.job_types.values()),
        )
        if function is not None
    ]
    for suffix, query in FUNCTION_LOG_QUERIES.items():
        properties = synth.properties(synth.media_monitoring.query_definitions[suffix])
        assert properties["QueryString"] == query
        assert properties["LogGroupNames"] == expected


def test_the_504_query_looks_for_status_504_newest_first(synth: Synthesized) -> None:
    synth.template.has_resource_properties(
        "AWS::Logs::QueryDefinition",
        {
            "QueryString": Match.string_like_regexp(
                r"filter status like /\^504\$/[\s\S]*sort @timestamp desc"
            ),
            "Name": f"{synth.jobs.service_name}/api/504-requests",
        },
    )


# ------------------------------------------------------------------------------------------------- failures


@pytest.fixture(scope="module")
def bare_api() -> AsyncJobApi:
    """An API to hang failing monitorings on (built, never synthesized)."""
    stack = cdk.Stack(cdk.App(), "Failing")
    return AsyncJobApi(stack, "Api", handler="m.f", code=TEAM_CODE, monitoring=OFF)


_counter = iter(range(1000))


def _monitor(api: AsyncJobApi, **options: Any) -> JobMonitoring:
    return JobMonitoring(api, f"Monitoring{next(_counter)}", api=api, options=MonitoringOptions(**options))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"alarms": "yes"}, r"monitoring\.alarms must be a bool \(given 'yes'\)"),
        (
            {"alarm_actions": ["arn:aws:sns:x"]},
            r"monitoring\.alarm_actions must hold cloudwatch\.IAlarmAction",
        ),
        ({"alarm_topic": "arn:aws:sns:x"}, r"monitoring\.alarm_topic must be an sns\.ITopic"),
        ({"alarm_overrides": {"WORKER_ERRORS": AlarmOverride(threshold=1)}}, r"must be keyed by JobAlarm"),
        ({"alarm_overrides": {JobAlarm.WORKER_ERRORS: 3}}, r"WORKER_ERRORS\] must be a AlarmOverride"),
        (
            {"alarm_overrides": {JobAlarm.WORKER_ERRORS: AlarmOverride(threshold=-1)}},
            r"WORKER_ERRORS\]\.threshold must be at least 0 \(count\) \(given -1\)",
        ),
        (
            {"alarm_overrides": {JobAlarm.JOB_FAILURE_RATE: AlarmOverride(threshold=150)}},
            r"threshold must be at least 0 and at most 100 \(percent\) \(given 150\)",
        ),
        (
            {"alarm_overrides": {JobAlarm.WORKER_ERRORS: AlarmOverride(threshold=cdk.Duration.minutes(1))}},
            r"threshold must be a number \(count\), not a Duration",
        ),
        (
            {"alarm_overrides": {JobAlarm.WORKER_ERRORS: AlarmOverride(threshold="5")}},  # type: ignore[arg-type]
            r"threshold must be a number \(given '5'\)",
        ),
        (
            {"alarm_overrides": {JobAlarm.API_LATENCY: AlarmOverride(period=cdk.Duration.seconds(30))}},
            r"period must be a whole number of minutes from 1 minute to 1 day",
        ),
        (
            {"alarm_overrides": {JobAlarm.API_LATENCY: AlarmOverride(period=300)}},  # type: ignore[arg-type]
            r"period must be an aws_cdk\.Duration .*Duration\.seconds\(300\)",
        ),
        (
            {"alarm_overrides": {JobAlarm.API_LATENCY: AlarmOverride(evaluation_periods=0)}},
            r"evaluation_periods must be a whole number between 1 and 1440 inclusive \(given 0\)",
        ),
        (
            {"alarm_overrides": {JobAlarm.WORKER_ERRORS: AlarmOverride(datapoints_to_alarm=2)}},
            r"alarm WORKER_ERRORS of job type 'jobs': datapoints_to_alarm must be a whole number between 1 and 1 "
            r"inclusive \(given 2\)",
        ),
        (
            {
                "alarm_overrides": {
                    JobAlarm.API_LATENCY: AlarmOverride(
                        period=cdk.Duration.minutes(30), evaluation_periods=49
                    )
                }
            },
            r"evaluation_periods x period must be at most 24 hours .*\(given 49 x 30 minutes\)",
        ),
        (
            {"job_type_alarm_overrides": {"jobs": {JobAlarm.API_LATENCY: AlarmOverride(threshold=1)}}},
            r"job_type_alarm_overrides\['jobs'\] is an API-wide alarm, not a job type's \(given API_LATENCY\)",
        ),
    ],
)
def test_fails_if_an_option_is_bad(bare_api: AsyncJobApi, options: dict[str, Any], match: str) -> None:
    with pytest.raises(PropValueError, match=match):
        _monitor(bare_api, **options)


def test_fails_if_options_are_not_monitoring_options(bare_api: AsyncJobApi) -> None:
    with pytest.raises(PropValueError, match=r"monitoring must be a MonitoringOptions"):
        JobMonitoring(bare_api, "NotOptions", api=bare_api, options={"alarms": True})  # type: ignore[arg-type]


def test_fails_if_a_job_type_is_added_twice(bare_api: AsyncJobApi) -> None:
    monitoring = _monitor(bare_api, dashboard=False, log_queries=False)
    with pytest.raises(PropValueError, match=r"job_type is watched already \(given 'jobs'\)"):
        monitoring.add_job_type(bare_api.job_types["jobs"])


def test_fails_at_synth_if_an_override_names_a_job_type_never_watched(bare_api: AsyncJobApi) -> None:
    monitoring = _monitor(
        bare_api,
        dashboard=False,
        log_queries=False,
        job_type_alarm_overrides={"repots": {JobAlarm.WORKER_ERRORS: AlarmOverride(threshold=3)}},
    )
    errors = monitoring.node.validate()
    assert len(errors) == 1
    assert "names job type 'repots', which it does not watch (watched: jobs)" in errors[0]


def test_opting_out_of_everything_builds_nothing(bare_api: AsyncJobApi) -> None:
    monitoring = _monitor(bare_api, alarms=False, dashboard=False, log_queries=False)
    assert (monitoring.alarms, monitoring.dashboard, monitoring.query_definitions) == ([], None, {})
    assert [c.node.id for c in monitoring.node.children] == []


def test_an_alarm_action_is_any_ialarmaction(bare_api: AsyncJobApi) -> None:
    action = cloudwatch_actions.SnsAction(sns.Topic(bare_api, "Topic"))
    monitoring = _monitor(bare_api, dashboard=False, log_queries=False, alarm_actions=[action])
    assert monitoring.alarm_actions == (action,)
    assert isinstance(monitoring.alarms[0], cloudwatch.Alarm)


# ------------------------------------------------------------------------------------------------ scanners


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A stack of an API with every monitoring feature and an SNS action, judged as tests/security judges."""
    from tests.security.test_scanners import REPORT_CONTEXT, synth_with_nag

    outdir = tmp_path_factory.mktemp("monitored")
    app = cdk.App(outdir=str(outdir), context=REPORT_CONTEXT)
    stack = cdk.Stack(app, "Monitored")
    topic = sns.Topic(stack, "OnCall", enforce_ssl=True, master_key=None)
    AsyncJobApi(
        stack,
        "Jobs",
        handler="reports.generate",
        code=TEAM_CODE,
        monitoring=MonitoringOptions(alarm_topic=topic),
    )
    return synth_with_nag(app, "Monitored", outdir)


def _monitoring_resources(template: Path) -> dict[str, dict[str, Any]]:
    body = json.loads(template.read_text())
    kinds = {"AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard", "AWS::Logs::QueryDefinition"}
    return {k: r for k, r in body["Resources"].items() if r["Type"] in kinds}


def test_scanners_find_nothing_in_the_monitoring(scanned: Any, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    assert len(_monitoring_resources(scanned.template)) == 10 + 1 + 5
    # cdk-nag: no finding on a monitoring resource (the topic is the test's own).
    assert [v for v in scanned.nag_violations if any("/Monitoring/" in p for p in v["paths"])] == []
    lint = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(scanned.template)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (lint.returncode, lint.stdout) == (0, ""), lint.stdout + lint.stderr
    checkov = Path(__file__).resolve().parents[3] / ".tools" / "checkov" / "bin" / "checkov"
    if not checkov.exists():
        pytest.skip("checkov is missing: run scripts/setup")
    result = subprocess.run(
        [
            str(checkov),
            "-f",
            str(scanned.template),
            "--framework",
            "cloudformation",
            "--skip-download",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    ours = set(_monitoring_resources(scanned.template))
    failed = [
        (f["check_id"], f["resource"])
        for f in report["results"]["failed_checks"]
        if f["resource"].split(".", 1)[-1] in ours
    ]
    assert failed == []


def test_every_api_has_its_monitoring_by_default_and_types_added_later_join_it() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "Defaults", env=cdk.Environment(account="111111111111", region="us-east-1"))
    api = AsyncJobApi(stack, "Jobs", handler="reports.generate", code=TEAM_CODE)
    api.add_job_type("thumbnails", handler="thumbs.make", code=TEAM_CODE)

    template = Template.from_stack(stack)

    assert isinstance(api.monitoring, JobMonitoring)
    assert set(api.monitoring.job_type_alarms) == {"jobs", "thumbnails"}
    template.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    template.resource_count_is("AWS::Logs::QueryDefinition", 5)
    assert len(template.find_resources("AWS::CloudWatch::Alarm")) == len(api.monitoring.alarms)
