"""POST /jobs: validation, the item and the message really written, and no job accepted half-way."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from lambda_handlers import clients
from lambda_handlers.models import MAX_PENDING_SECONDS
from tests.unit.handlers.conftest import MAX_PAYLOAD_BYTES, RETRY_AFTER_SECONDS, TTL_SECONDS, Aws
from tests.unit.handlers.events import (
    ALICE,
    DOMAIN,
    STAGE,
    FakeLambdaContext,
    body,
    emitted_metrics,
    rest_event,
)

UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def assert_problem(response: dict[str, Any], status: int, slug: str) -> dict[str, Any]:
    assert response["statusCode"] == status
    assert response["headers"]["Content-Type"] == "application/problem+json"
    problem: dict[str, Any] = body(response)
    assert problem["type"] == f"urn:async-job:problem:{slug}"
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    assert "Traceback" not in response["body"]
    return problem


def assert_nothing_accepted(aws: Aws) -> None:
    assert aws.item_count() == 0
    assert aws.queue_depth(aws.queue_url) == 0


def test_accepts_a_job_records_it_queued_and_enqueues_the_exact_payload(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a JSON object with odd spacing and non-ASCII text, which must travel byte for byte
    payload_text = '{ "report" : "Q3 — Zürich",\n  "rows": [1, 2.50, 3e2] }'
    before = int(time.time())

    # WHEN it is posted
    response = submit.handler(rest_event(body=payload_text), lambda_context)

    # THEN the answer is 202 with the job's URL, a poll interval and the job itself
    assert response["statusCode"] == 202
    job = body(response)
    job_id = job["id"]
    assert response["headers"]["Location"] == f"https://{DOMAIN}/{STAGE}/jobs/{job_id}"
    assert response["headers"]["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response["headers"]["Content-Type"] == "application/json"
    assert job == {
        "id": job_id,
        "type": "jobs",
        "status": "QUEUED",
        "createdAt": job["createdAt"],
        "updatedAt": job["createdAt"],
        "attempts": 0,
        "progress": None,
        "links": {"self": response["headers"]["Location"]},
    }
    # AND the table holds the job, QUEUED, owned by the caller, expiring after the TTL
    item = aws.item(job_id)
    assert item is not None
    assert item["status"] == "QUEUED"
    assert item["owner"] == ALICE
    assert item["attempts"] == 0
    assert item["createdAt"] == item["updatedAt"] == job["createdAt"]
    assert before + MAX_PENDING_SECONDS + TTL_SECONDS <= item["expiresAt"]
    assert item["expiresAt"] <= int(time.time()) + MAX_PENDING_SECONDS + TTL_SECONDS
    assert item["payloadSha256"] == hashlib.sha256(payload_text.encode()).hexdigest()
    assert not {"runId", "leaseUntil", "result", "errorType"} & item.keys()
    # AND the queue holds exactly one message, whose body embeds the payload as sent
    (message,) = aws.receive()
    assert message["Body"] == f'{{"v":1,"jobId":"{job_id}","payload":{payload_text}}}'
    assert json.loads(message["Body"])["payload"] == json.loads(payload_text)
    # AND the submission is counted
    assert emitted_metrics(capsys.readouterr().out)["JobsSubmitted"] == [1.0]


def test_makes_exactly_two_aws_calls(submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext) -> None:
    # GIVEN the function's own clients, watched
    calls: list[str] = []

    def watch(model: Any, **_: Any) -> None:
        calls.append(model.name)

    watched = (clients.dynamodb(), clients.sqs())
    for client in watched:
        client.meta.events.register("before-call", watch)

    # WHEN a job is accepted
    try:
        response = submit.handler(rest_event(body="{}"), lambda_context)
    finally:
        for client in watched:
            client.meta.events.unregister("before-call", watch)

    # THEN it took one PutItem and one SendMessage
    assert response["statusCode"] == 202
    assert calls == ["PutItem", "SendMessage"]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-Proto": "http"},
        {"x-forwarded-proto": "http"},
    ],
)
def test_location_uses_the_forwarded_scheme(
    submit: ModuleType, lambda_context: FakeLambdaContext, headers: dict[str, str]
) -> None:
    # GIVEN a request that reached the gateway over plain HTTP (any header case)
    event = rest_event(body="{}", forwarded_proto=None, headers=headers)

    # WHEN it is posted
    response = submit.handler(event, lambda_context)

    # THEN the job's URL uses that scheme
    assert response["headers"]["Location"].startswith(f"http://{DOMAIN}/{STAGE}/jobs/")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        'Application/JSON;charset="UTF-8"',
        "application/vnd.reports+json",
    ],
)
def test_accepts_json_media_types(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, content_type: str
) -> None:
    # GIVEN / WHEN a JSON body under a JSON media type, sent with a lowercase header name
    event = rest_event(body='{"n": 1}', content_type=None, headers={"content-type": content_type})
    response = submit.handler(event, lambda_context)

    # THEN it is accepted
    assert response["statusCode"] == 202
    assert aws.item_count() == 1


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/xml", "application/json; charset=latin-1"]
)
def test_rejects_other_media_types_with_415(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, content_type: str | None
) -> None:
    # GIVEN / WHEN a JSON body declared as something else (or not declared)
    response = submit.handler(rest_event(body="{}", content_type=content_type), lambda_context)

    # THEN 415, and nothing is recorded or enqueued
    assert_problem(response, 415, "unsupported-media-type")
    assert_nothing_accepted(aws)


@pytest.mark.parametrize("text", [None, "", "   \n\t "])
def test_rejects_an_empty_body(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, text: str | None
) -> None:
    response = submit.handler(rest_event(body=text), lambda_context)

    assert_problem(response, 400, "empty-body")
    assert_nothing_accepted(aws)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1',
        "{'a': 1}",
        '{"a": NaN}',
        '{"a": Infinity}',
        '{"a": -Infinity}',
        '\ufeff{"a": 1}',
        "[" * 5_000,
        '{"n": ' + "9" * 5_000 + "}",
    ],
    ids=["truncated", "single-quotes", "nan", "infinity", "minus-infinity", "bom", "deep", "huge-int"],
)
def test_rejects_invalid_json(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, text: str
) -> None:
    response = submit.handler(rest_event(body=text), lambda_context)

    assert_problem(response, 400, "invalid-json")
    assert_nothing_accepted(aws)


def test_rejects_a_body_that_is_not_utf8(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN Latin-1 bytes, passed through base64 as API Gateway does for binary media types
    event = rest_event(body='{"city": "Zürich"}'.encode("latin-1"), base64_encoded=True)

    response = submit.handler(event, lambda_context)

    assert "UTF-8" in assert_problem(response, 400, "invalid-json")["detail"]
    assert_nothing_accepted(aws)


def test_accepts_a_base64_encoded_body(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a JSON body delivered base64-encoded
    payload_text = '{"city": "Zürich"}'
    event = rest_event(body=payload_text, base64_encoded=True)

    # WHEN it is posted
    response = submit.handler(event, lambda_context)

    # THEN the decoded text is what is enqueued
    assert response["statusCode"] == 202
    (message,) = aws.receive()
    assert json.loads(message["Body"])["payload"] == {"city": "Zürich"}
    assert message["Body"].endswith(f'"payload":{payload_text}}}')


def test_rejects_base64_that_is_not_base64(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    event = rest_event(body="{}")
    event["isBase64Encoded"] = True

    assert_problem(submit.handler(event, lambda_context), 400, "invalid-json")
    assert_nothing_accepted(aws)


@pytest.mark.parametrize(
    ("text", "kind"),
    [("[1, 2]", "array"), ("42", "scalar"), ('"report"', "scalar"), ("null", "scalar"), ("true", "scalar")],
)
def test_rejects_a_body_that_is_not_an_object(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, text: str, kind: str
) -> None:
    response = submit.handler(rest_event(body=text), lambda_context)

    assert kind in assert_problem(response, 400, "body-not-object")["detail"]
    assert_nothing_accepted(aws)


def test_accepts_duplicate_keys(submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext) -> None:
    response = submit.handler(rest_event(body='{"a": 1, "a": 2}'), lambda_context)

    assert response["statusCode"] == 202
    assert aws.item_count() == 1


def _body_of_size(size: int) -> str:
    # Two-byte characters: the limit counts UTF-8 bytes, not characters.
    filler = size - len('{"s":""}')
    text = '{"s":"' + "é" * (filler // 2) + "x" * (filler % 2) + '"}'
    assert len(text.encode()) == size
    return text


def test_accepts_a_body_of_exactly_the_limit(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    response = submit.handler(rest_event(body=_body_of_size(MAX_PAYLOAD_BYTES)), lambda_context)

    assert response["statusCode"] == 202
    (message,) = aws.receive()
    assert len(json.loads(message["Body"])["payload"]["s"].encode()) == MAX_PAYLOAD_BYTES - 8


@pytest.mark.parametrize("base64_encoded", [False, True])
def test_rejects_a_body_one_byte_over_the_limit(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, base64_encoded: bool
) -> None:
    event = rest_event(body=_body_of_size(MAX_PAYLOAD_BYTES + 1), base64_encoded=base64_encoded)

    problem = assert_problem(submit.handler(event, lambda_context), 413, "payload-too-large")

    assert str(MAX_PAYLOAD_BYTES) in problem["detail"]
    assert problem["maxBytes"] == MAX_PAYLOAD_BYTES
    assert_nothing_accepted(aws)


def test_escapes_the_characters_sqs_rejects(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN valid JSON holding U+FFFF, which SQS refuses in a message body
    response = submit.handler(rest_event(body='{"s": "a\uffffb"}'), lambda_context)

    # THEN the job is accepted and the payload arrives with the same value
    assert response["statusCode"] == 202
    (message,) = aws.receive()
    assert json.loads(message["Body"])["payload"] == {"s": "a\uffffb"}


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_answers_405_to_other_methods(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, method: str
) -> None:
    response = submit.handler(rest_event(method, body="{}"), lambda_context)

    assert_problem(response, 405, "method-not-allowed")
    assert response["headers"]["Allow"] == "POST"
    assert_nothing_accepted(aws)


def test_answers_503_and_keeps_no_job_when_the_message_cannot_be_sent(
    aws: Aws,
    entry_points: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: FakeLambdaContext,
) -> None:
    # GIVEN a submit function whose queue does not exist
    monkeypatch.setenv("ASYNC_JOB_QUEUE_URL", aws.queue_url.replace("Jobs-Queue", "No-Such-Queue"))
    submit = entry_points("lambda_handlers.submit")

    # WHEN a valid job is posted
    response = submit.handler(rest_event(body="{}"), lambda_context)

    # THEN 503 with Retry-After, and the recorded item was removed again: no job the caller does not know of
    assert_problem(response, 503, "service-unavailable")
    assert response["headers"]["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert_nothing_accepted(aws)


def test_answers_503_and_sends_nothing_when_the_job_cannot_be_recorded(
    aws: Aws,
    entry_points: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: FakeLambdaContext,
) -> None:
    # GIVEN a submit function whose table does not exist
    monkeypatch.setenv("ASYNC_JOB_TABLE_NAME", "No-Such-Table")
    submit = entry_points("lambda_handlers.submit")

    # WHEN a valid job is posted
    response = submit.handler(rest_event(body="{}"), lambda_context)

    # THEN 503 with Retry-After, and no message was sent
    assert_problem(response, 503, "service-unavailable")
    assert response["headers"]["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert_nothing_accepted(aws)


def test_answers_500_without_details_on_an_unexpected_error(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN an event no API Gateway would send (headers as a list)
    event = rest_event(body="{}")
    event["headers"] = ["Content-Type: application/json"]

    # WHEN it is handled
    response = submit.handler(event, lambda_context)

    # THEN a generic 500 problem; the stack trace goes to the log only
    problem = assert_problem(response, 500, "internal-error")
    assert "AttributeError" not in json.dumps(problem)
    (logged,) = [record for record in caplog.records if record.levelname == "ERROR"]
    assert logged.exc_info is not None
    assert logged.exc_info[0] is AttributeError
    assert_nothing_accepted(aws)


@pytest.mark.parametrize(
    ("overrides", "owner"),
    [
        ({"authorizer": {"principalId": "team-a", "claims": {"sub": "sub-1"}}}, "team-a"),
        ({"authorizer": {"claims": {"sub": "sub-1"}}}, "sub-1"),
        ({}, ALICE),
        ({"user_arn": None, "identity": {"cognitoIdentityId": "eu-west-1:abc"}}, "eu-west-1:abc"),
        ({"user_arn": None, "identity": {"caller": "AIDAEXAMPLE"}}, "AIDAEXAMPLE"),
        ({"user_arn": None, "identity": {"apiKeyId": "key-1"}}, "key-1"),
        ({"user_arn": None}, "anonymous"),
    ],
)
def test_records_the_callers_identity_as_owner(
    submit: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, overrides: dict[str, Any], owner: str
) -> None:
    response = submit.handler(rest_event(body="{}", **overrides), lambda_context)

    item = aws.item(body(response)["id"])
    assert item is not None
    assert item["owner"] == owner
