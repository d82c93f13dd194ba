"""DELETE /jobs/{id} of a long job type's job: its durable execution is stopped, then the job ends CANCELLED."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from tests.unit.handlers.conftest import Aws
from tests.unit.handlers.events import FakeLambdaContext, body, delete_event, emitted_metrics
from tests.unit.handlers.test_cancel import running_job
from tests.unit.handlers.test_durable_start import execution_arn, lambda_api
from tests.unit.handlers.test_status import given_job

__all__ = ["lambda_api"]  # the stubbed Lambda client fixture, shared with the starter's tests


def running_in_execution(aws: Aws) -> tuple[str, str]:
    """A job RUNNING in a durable execution, as its claim step leaves it; and that execution's ARN."""
    from lambda_handlers.durable_store import DurableJobStore

    job_id = running_job(aws)
    arn = execution_arn(job_id)
    store = DurableJobStore(aws.table_name, aws.dynamodb, ttl_seconds=3600)
    assert store.record_execution(job_id, "run-1", arn)[0].value == "APPLIED"
    return job_id, arn


def expect_stop(lambda_api: Stubber, arn: str) -> None:
    lambda_api.add_response(
        "stop_durable_execution",
        {"StopTimestamp": "2026-12-01T12:00:00Z"},
        {"DurableExecutionArn": arn, "Error": ANY},
    )


def test_stops_the_execution_of_a_running_long_job_and_ends_it_cancelled(
    status: ModuleType, aws: Aws, lambda_api: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a long job running in its durable execution
    job_id, arn = running_in_execution(aws)
    expect_stop(lambda_api, arn)

    # WHEN its owner deletes it
    response = status.handler(delete_event(job_id), FakeLambdaContext())

    # THEN its execution is stopped and the job is CANCELLED at once: 200, nothing left to poll
    lambda_api.assert_no_pending_responses()
    assert response["statusCode"] == 200
    assert body(response)["status"] == "CANCELLED"
    assert "Retry-After" not in response["headers"]
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "CANCELLED"
    assert not {"runId", "leaseUntil", "cancelRequested"} & item.keys()
    assert emitted_metrics(capsys.readouterr().out)["JobsCancelled"] == [1.0]


@pytest.mark.parametrize("code", ["ResourceNotFoundException", "ResourceConflictException"])
def test_an_execution_that_ended_already_is_no_error(
    status: ModuleType, aws: Aws, lambda_api: Stubber, code: str
) -> None:
    job_id, _ = running_in_execution(aws)
    lambda_api.add_client_error("stop_durable_execution", service_error_code=code, http_status_code=409)

    response = status.handler(delete_event(job_id), FakeLambdaContext())

    assert response["statusCode"] == 200
    assert aws.item(job_id)["status"] == "CANCELLED"  # type: ignore[index]


def test_keeps_the_cancel_a_request_when_the_execution_cannot_be_stopped(
    status: ModuleType, aws: Aws, lambda_api: Stubber
) -> None:
    job_id, _ = running_in_execution(aws)
    lambda_api.add_client_error(
        "stop_durable_execution", service_error_code="TooManyRequestsException", http_status_code=429
    )

    response = status.handler(delete_event(job_id), FakeLambdaContext())

    assert response["statusCode"] == 202
    assert body(response)["cancelRequested"] is True
    item: dict[str, Any] | None = aws.item(job_id)
    assert item is not None
    assert (item["status"], item["cancelRequested"]) == ("RUNNING", True)


def test_a_job_that_finished_while_its_execution_was_stopped_is_not_cancelled(
    status: ModuleType, aws: Aws, lambda_api: Stubber
) -> None:
    # GIVEN a long job whose outcome step records SUCCEEDED just as its owner deletes it
    job_id, arn = running_in_execution(aws)

    def finish(**_: Any) -> None:
        assert aws.store.complete(job_id, "run-1", '{"done":true}').value == "APPLIED"

    expect_stop(lambda_api, arn)
    lambda_api.client.meta.events.register("before-parameter-build.lambda.StopDurableExecution", finish)

    response = status.handler(delete_event(job_id), FakeLambdaContext())

    # THEN the result stands: 409, the job is finished
    assert response["statusCode"] == 409
    assert body(response)["jobStatus"] == "SUCCEEDED"
    assert aws.item(job_id)["status"] == "SUCCEEDED"  # type: ignore[index]


def test_neither_a_short_job_nor_a_queued_long_job_calls_the_lambda_api(
    status: ModuleType, aws: Aws, lambda_api: Stubber
) -> None:
    # GIVEN a short type's running job (no execution on its item), and a queued job
    short_id = running_job(aws)
    queued_id = given_job(aws)

    # WHEN their owner deletes them THEN no Lambda call is made (none is stubbed: one would fail the request)
    assert status.handler(delete_event(short_id), FakeLambdaContext())["statusCode"] == 202
    assert status.handler(delete_event(queued_id), FakeLambdaContext())["statusCode"] == 200
