"""Props the construct cannot build are refused at synth time, naming the prop, the value and the fix."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Annotations, Match

from async_job_construct import AsyncJobApi, PropValueError
from tests.unit.construct.helpers import TEAM_CODE


def build(**overrides: Any) -> AsyncJobApi:
    stack = cdk.Stack(cdk.App(), "Stack")
    return AsyncJobApi(stack, "Jobs", **{"handler": "reports.generate", "code": TEAM_CODE, **overrides})


@pytest.mark.parametrize(
    "handler", ["reports", "reports.", "1reports.run", "reports.generate()", "a-b.c", ""]
)
def test_fails_if_handler_is_not_module_dot_function(handler: str) -> None:
    with pytest.raises(
        PropValueError, match=r"^handler must name a Python function .*given '.*'.*Pass e\.g\."
    ):
        build(handler=handler)


@pytest.mark.parametrize("timeout", [cdk.Duration.minutes(16), cdk.Duration.millis(500)])
def test_fails_if_timeout_is_outside_what_lambda_allows(timeout: cdk.Duration) -> None:
    with pytest.raises(
        PropValueError, match=r"^timeout must be between 1 second and 15 minutes .*at most 15"
    ):
        build(timeout=timeout)


def test_fails_if_visibility_timeout_is_shorter_than_timeout() -> None:
    with pytest.raises(
        PropValueError,
        match=r"^visibility_timeout must be between 10 minutes and 12 hours inclusive \(given 5 minutes\)\. "
        r"It must cover one attempt",
    ):
        build(timeout=cdk.Duration.minutes(10), visibility_timeout=cdk.Duration.minutes(5))


def test_fails_if_visibility_timeout_is_over_twelve_hours() -> None:
    with pytest.raises(PropValueError, match=r"^visibility_timeout .*given 13 hours"):
        build(visibility_timeout=cdk.Duration.hours(13))


@pytest.mark.parametrize(
    ("prop", "value", "expected"),
    [
        ("max_receive_count", 0, r"^max_receive_count must be a whole number between 1 and 1000 .*given 0"),
        ("batch_size", 11, r"^batch_size must be a whole number between 1 and 10 inclusive \(given 11\)"),
        ("max_concurrency", 1, r"^max_concurrency must be a whole number between 2 and 1000 .*given 1"),
        ("memory_size", 64, r"^memory_size must be a whole number between 128 and 10240 .*given 64"),
        ("max_payload_bytes", 2 * 1024 * 1024, r"^max_payload_bytes .*between 1 and 1047552 .*given 2097152"),
        ("max_payload_bytes", 0, r"^max_payload_bytes .*given 0"),
        (
            "job_ttl",
            cdk.Duration.minutes(30),
            r"^job_ttl must be between 1 hour and 365 days .*given 30 minutes",
        ),
        (
            "poll_interval",
            cdk.Duration.hours(2),
            r"^poll_interval must be between 1 second and 1 hour .*given 2 hours",
        ),
    ],
)
def test_fails_if_a_number_is_out_of_range(prop: str, value: object, expected: str) -> None:
    with pytest.raises(PropValueError, match=expected):
        build(**{prop: value})


def test_fails_if_retry_max_delay_is_below_the_base_delay() -> None:
    with pytest.raises(
        PropValueError,
        match=r"^retry_max_delay must be between 1 minute and 12 hours inclusive \(given 30 seconds\)\. It caps",
    ):
        build(retry_base_delay=cdk.Duration.minutes(1), retry_max_delay=cdk.Duration.seconds(30))


def test_fails_if_retry_base_delay_is_zero() -> None:
    with pytest.raises(PropValueError, match=r"^retry_base_delay must be between 1 second and 12 hours"):
        build(retry_base_delay=cdk.Duration.seconds(0))


def test_fails_if_runtime_is_not_python_3_11_or_later() -> None:
    with pytest.raises(
        PropValueError, match=r"^runtime must be a Python runtime of version 3\.11.*given python3\.10"
    ):
        build(runtime=lambda_.Runtime.PYTHON_3_10)
    with pytest.raises(PropValueError, match=r"^runtime .*given nodejs"):
        build(runtime=lambda_.Runtime.NODEJS_22_X)


@pytest.mark.parametrize("name", ["ASYNC_JOB_HANDLER", "AWS_REGION", "_HANDLER", "LAMBDA_TASK_ROOT"])
def test_fails_if_environment_sets_a_reserved_name(name: str) -> None:
    with pytest.raises(
        PropValueError, match=rf"^environment must not set a reserved variable .*given '{name}'.*Rename"
    ):
        build(environment={name: "x"})


def test_fails_if_visibility_timeout_is_given_with_own_queue() -> None:
    stack = cdk.Stack(cdk.App(), "Stack")
    queue = sqs.Queue(
        stack, "Q", dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=3, queue=sqs.Queue(stack, "D"))
    )
    with pytest.raises(
        PropValueError, match=r"^visibility_timeout .*Set the visibility timeout on your queue"
    ):
        AsyncJobApi(
            stack,
            "Jobs",
            handler="m.f",
            code=TEAM_CODE,
            queue=queue,
            visibility_timeout=cdk.Duration.hours(1),
        )


def test_fails_if_own_queue_has_no_dead_letter_queue() -> None:
    stack = cdk.Stack(cdk.App(), "Stack")
    queue = sqs.Queue.from_queue_arn(stack, "Q", "arn:aws:sqs:us-east-1:111111111111:jobs")
    with pytest.raises(
        PropValueError, match=r"^queue has no dead-letter queue .*given Stack/Q.*Pass dead_letter_queue="
    ):
        AsyncJobApi(stack, "Jobs", handler="m.f", code=TEAM_CODE, queue=queue)


def test_fails_if_dead_letter_queue_is_given_without_queue() -> None:
    stack = cdk.Stack(cdk.App(), "Stack")
    with pytest.raises(PropValueError, match=r"^dead_letter_queue is only used together with `queue`"):
        AsyncJobApi(stack, "Jobs", handler="m.f", code=TEAM_CODE, dead_letter_queue=sqs.Queue(stack, "D"))


def test_prop_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        build(batch_size=0)


def test_tokens_are_not_validated_at_synth() -> None:
    jobs = build(max_concurrency=cdk.Token.as_number(cdk.Aws.ACCOUNT_ID))
    assert cdk.Token.is_unresolved(jobs.max_concurrency)


def test_unwise_values_warn() -> None:
    stack = cdk.Stack(cdk.App(), "Stack")
    AsyncJobApi(stack, "Batchy", handler="m.f", code=TEAM_CODE, batch_size=5)
    AsyncJobApi(
        stack,
        "Tight",
        handler="m.f",
        code=TEAM_CODE,
        timeout=cdk.Duration.minutes(10),
        visibility_timeout=cdk.Duration.minutes(15),
    )
    AsyncJobApi(
        stack,
        "Patient",
        handler="m.f",
        code=TEAM_CODE,
        max_receive_count=30,
        retry_max_delay=cdk.Duration.hours(12),
    )
    AsyncJobApi(stack, "Quiet", handler="m.f", code=TEAM_CODE)
    annotations = Annotations.from_stack(stack)
    annotations.has_warning(
        "/Stack/Patient",
        Match.string_like_regexp(
            r"max_receive_count \(30\) x the longest attempt .* is .*longer than SQS keeps a message \(14 days\)"
        ),
    )
    annotations.has_warning(
        "/Stack/Batchy", Match.string_like_regexp("batch_size is 5: the jobs of one batch run")
    )
    annotations.has_warning(
        "/Stack/Tight", Match.string_like_regexp("visibility_timeout is 15 minutes, less than 6 x")
    )
    annotations.has_no_warning("/Stack/Quiet", Match.any_value())
