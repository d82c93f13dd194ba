"""Props the construct cannot build are refused at synth time, naming the prop, the value and the fix."""

from __future__ import annotations

import datetime
from pathlib import Path
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


@pytest.mark.parametrize("timeout", [cdk.Duration.days(366), cdk.Duration.millis(500)])
def test_fails_if_timeout_is_outside_what_lambda_allows(timeout: cdk.Duration) -> None:
    with pytest.raises(
        PropValueError, match=r"^timeout must be between 1 second and 365 days .*at most 365 days"
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
        ("max_payload_bytes", 6 * 1024 * 1024, r"^max_payload_bytes .*between 1 and 5242880 .*given 6291456"),
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


# ------------------------------------------------------------------------------------- wrong prop types


@pytest.mark.parametrize(
    ("prop", "value", "expected"),
    [
        (
            "timeout",
            300,
            r"^timeout must be an aws_cdk\.Duration \(given 300 of type int\)\. .*Duration\.seconds\(300\)",
        ),
        (
            "timeout",
            datetime.timedelta(minutes=5),
            r"^timeout must be an aws_cdk\.Duration \(given datetime\.timedelta\(seconds=300\) of type timedelta\)\. "
            r"Pass Duration\.seconds\(300\)",
        ),
        (
            "visibility_timeout",
            1800,
            r"^visibility_timeout must be an aws_cdk\.Duration \(given 1800 of type int\)",
        ),
        (
            "retry_base_delay",
            "10s",
            r"^retry_base_delay must be an aws_cdk\.Duration \(given '10s' of type str\)",
        ),
        ("job_ttl", 7, r"^job_ttl must be an aws_cdk\.Duration \(given 7 of type int\)"),
        (
            "batch_size",
            "1",
            r"^batch_size must be an int \(given '1' of type str\)\. Pass a whole number, e\.g\. batch_size=1",
        ),
        ("memory_size", 1024.5, r"^memory_size must be a whole number \(given 1024\.5 of type float\)"),
        ("max_receive_count", True, r"^max_receive_count must be an int \(given True of type bool\)"),
        (
            "code",
            42,
            r"^code must be a Code \(given 42 of type int\)\. Pass \"jobs\" \(a folder\) or lambda_\.Code\.from_asset",
        ),
        (
            "code",
            "no-such-folder",
            r"^code must be a folder when given as a path .*\(given 'no-such-folder'\)\. Pass the folder",
        ),
        ("runtime", "python3.14", r"^runtime must be a Runtime \(given 'python3\.14' of type str\)"),
    ],
)
def test_fails_if_a_prop_has_the_wrong_type(prop: str, value: object, expected: str) -> None:
    with pytest.raises(PropValueError, match=expected):
        build(**{prop: value})


def test_fails_if_an_environment_value_is_not_a_string() -> None:
    with pytest.raises(
        PropValueError,
        match=r"^environment must map variable names to strings \(given 'LIMIT': 10 of type int\)",
    ):
        build(environment={"LIMIT": 10})


# ---------------------------------------------------------------------------------- local code folders


def _folder(tmp_path: Path, *files: str) -> lambda_.Code:
    for name in files:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("def generate(payload, job):\n    return payload\n")
    return lambda_.Code.from_asset(str(tmp_path))


@pytest.mark.parametrize(
    ("handler", "files"),
    [
        ("reports.generate", ["reports.py"]),
        ("reports.generate", ["reports/__init__.py"]),
        ("pkg.jobs.run", ["pkg/__init__.py", "pkg/jobs.py"]),
        ("pkg.jobs.run", ["pkg/jobs/__init__.py"]),
    ],
)
def test_a_handler_whose_module_is_in_the_folder_is_accepted(
    tmp_path: Path, handler: str, files: list[str]
) -> None:
    build(handler=handler, code=_folder(tmp_path, *files))


@pytest.mark.parametrize(
    ("handler", "files"), [("reports.generate", ["report.py"]), ("pkg.jobs.run", ["jobs.py"])]
)
def test_fails_if_the_handler_module_is_not_in_the_code_folder(
    tmp_path: Path, handler: str, files: list[str]
) -> None:
    module = handler.rpartition(".")[0]
    with pytest.raises(
        PropValueError, match=rf"^handler names module '{module}', which is not in the code folder"
    ):
        build(handler=handler, code=_folder(tmp_path, *files))


@pytest.mark.parametrize("shadow", ["lambda_handlers/__init__.py", "lambda_handlers.py"])
def test_fails_if_the_code_folder_shadows_the_runtime_package(tmp_path: Path, shadow: str) -> None:
    with pytest.raises(
        PropValueError,
        match=r"^code must not contain a top-level 'lambda_handlers' package: Lambda puts your code before the "
        r"runtime layer.*Rename your package",
    ):
        build(code=_folder(tmp_path, "reports.py", shadow))
