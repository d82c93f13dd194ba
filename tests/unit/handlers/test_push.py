"""Job events from the table's stream, webhooks queued, signed and delivered, and the callback URL policy."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import boto3
import pytest
import standardwebhooks

from lambda_handlers.job_events import changed_job, detail_of
from lambda_handlers.models import Job, JobStatus, utc_now
from lambda_handlers.webhook_delivery import (
    CallbackPolicy,
    InvalidCallbackError,
    signature,
    signing_key,
    standard_secret,
)
from tests.unit.handlers.conftest import Aws
from tests.unit.handlers.events import ALICE, FakeLambdaContext, body, get_event, post_event, sqs_record
from tests.unit.handlers.test_submit import assert_problem


def a_job(status: JobStatus = JobStatus.QUEUED, **changes: Any) -> Job:
    job = Job.new(str(uuid.uuid4()), owner=ALICE, payload_sha256="0" * 64, now=utc_now(), ttl_seconds=3600)
    return dataclasses.replace(job, status=status, **changes)


def stream_record(
    new: Job | None, old: Job | None, sequence: str = "100", name: str = "MODIFY"
) -> dict[str, Any]:
    images: dict[str, Any] = {"SequenceNumber": sequence, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if new is not None:
        images["NewImage"] = new.to_item()
    if old is not None:
        images["OldImage"] = old.to_item()
    return {"eventName": name, "eventSource": "aws:dynamodb", "dynamodb": images}


# ----------------------------------------------------------------------------------------------- what an event is


def test_a_change_of_status_is_an_event_and_other_writes_are_not() -> None:
    running = a_job(JobStatus.RUNNING, attempts=1)
    done = dataclasses.replace(running, status=JobStatus.SUCCEEDED, result="{}")
    progressed = dataclasses.replace(running, progress_percent=40.0)

    assert changed_job(stream_record(done, running)) == (done, JobStatus.RUNNING)
    assert changed_job(stream_record(running, None, name="INSERT"))[1] is None  # type: ignore[index]
    assert changed_job(stream_record(progressed, running)) is None
    assert changed_job(stream_record(None, done, name="REMOVE")) is None
    key_item = {"eventName": "INSERT", "dynamodb": {"NewImage": {"pk": {"S": "idem#x"}, "jobId": {"S": "j"}}}}
    assert changed_job(key_item) is None


def test_the_detail_of_a_failed_job_carries_its_error_and_duration() -> None:
    failed = a_job(JobStatus.FAILED, error_type="ValueError", error_message="bad account", attempts=3)
    failed = dataclasses.replace(
        failed, updated_at="2099-01-01T00:00:01.500Z", created_at="2099-01-01T00:00:00.000Z"
    )

    detail = detail_of(failed, JobStatus.RUNNING, "Shop-Jobs")

    assert detail["error"] == {"type": "ValueError", "message": "bad account"}
    assert (detail["status"], detail["previousStatus"], detail["durationMs"]) == ("FAILED", "RUNNING", 1500)
    assert (detail["api"], detail["owner"], detail["attempts"], detail["version"]) == (
        "Shop-Jobs",
        ALICE,
        3,
        1,
    )


# ----------------------------------------------------------------------------------------------- the events function


@pytest.fixture
def bus_queue(aws: Aws) -> str:
    """A rule on the default bus sending every async-job event to a queue; its URL."""
    events = boto3.client("events")
    url = aws.sqs.create_queue(QueueName="Seen-Events")["QueueUrl"]
    arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all-jobs", EventPattern=json.dumps({"source": ["async-job"]}))
    events.put_targets(Rule="all-jobs", Targets=[{"Id": "q", "Arn": arn}])
    return str(url)


def load_events(
    entry_points: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch, **environment: str
) -> ModuleType:
    monkeypatch.setenv("ASYNC_JOB_EVENT_BUS", "default")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return entry_points("lambda_handlers.events")


def seen(aws: Aws, url: str) -> list[dict[str, Any]]:
    messages = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


def test_publishes_one_event_per_change_of_status(
    aws: Aws, bus_queue: str, entry_points: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    events = load_events(entry_points, monkeypatch)
    running = a_job(JobStatus.RUNNING, attempts=1)
    done = dataclasses.replace(running, status=JobStatus.SUCCEEDED)
    other = a_job(JobStatus.RUNNING)
    cancelled = dataclasses.replace(other, status=JobStatus.CANCELLED)
    progress = dataclasses.replace(other, progress_percent=10.0)

    response = events.handler(
        {
            "Records": [
                stream_record(done, running, "1"),
                stream_record(progress, other, "2"),
                stream_record(cancelled, other, "3"),
            ]
        },
        FakeLambdaContext(),
    )

    assert response == {"batchItemFailures": []}
    published = {event["detail"]["jobId"]: event for event in seen(aws, bus_queue)}
    assert set(published) == {done.job_id, cancelled.job_id}
    assert published[done.job_id]["detail-type"] == "Job Succeeded"
    assert published[cancelled.job_id]["detail-type"] == "Job Cancelled"
    assert published[done.job_id]["source"] == "async-job"


def test_a_refused_put_is_retried_from_its_record(
    aws: Aws, entry_points: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    events = load_events(entry_points, monkeypatch, ASYNC_JOB_EVENT_BUS="no-such-bus")
    running = a_job(JobStatus.RUNNING)

    response = events.handler(
        {"Records": [stream_record(dataclasses.replace(running, status=JobStatus.FAILED), running, "7")]},
        FakeLambdaContext(),
    )

    assert response == {"batchItemFailures": [{"itemIdentifier": "7"}]}


def test_a_finished_job_with_a_callback_url_gets_one_webhook_message(
    aws: Aws, entry_points: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = aws.sqs.create_queue(QueueName="Webhooks")["QueueUrl"]
    events = load_events(entry_points, monkeypatch, ASYNC_JOB_WEBHOOK_QUEUE_URL=queue)
    hooked = a_job(
        JobStatus.RUNNING, webhook=json.dumps({"url": "https://h.example.com/", "status": "PENDING"})
    )
    plain = a_job(JobStatus.RUNNING)

    events.handler(
        {
            "Records": [
                stream_record(dataclasses.replace(hooked, status=JobStatus.SUCCEEDED), hooked, "1"),
                stream_record(dataclasses.replace(plain, status=JobStatus.SUCCEEDED), plain, "2"),
            ]
        },
        FakeLambdaContext(),
    )

    (message,) = aws.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(message["Body"])["jobId"] == hooked.job_id


# ---------------------------------------------------------------------------------------------- the callback policy


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.com/jobs", True),
        ("https://a.b.partner.io/x?y=1", True),
        ("https://partner.io/x", False),  # *.partner.io is its subdomains only
        ("https://evilpartner.io/x", False),
        ("http://hooks.example.com/jobs", False),  # https only when deployed
        ("https://user:pw@hooks.example.com/", False),
        ("https://hooks.example.com/#frag", False),
        ("https://hooks.example.com.evil.com/", False),
        ("https://hooks.example.com/" + "a" * 2100, False),
        ("ftp://hooks.example.com/", False),
        ("https://[::1]/", False),
    ],
)
def test_only_https_urls_of_allowed_hosts_are_taken(url: str, allowed: bool) -> None:
    policy = CallbackPolicy(("hooks.example.com", "*.partner.io"))
    if allowed:
        assert policy.check(url) == url
    else:
        with pytest.raises(InvalidCallbackError):
            policy.check(url)


def test_a_host_that_resolves_to_a_private_address_is_refused_unless_local() -> None:
    deployed = CallbackPolicy(("10.0.0.8", "localhost"))
    local = CallbackPolicy(("127.0.0.1",), local=True)

    for host in ("10.0.0.8", "localhost"):
        with pytest.raises(InvalidCallbackError, match="not public"):
            deployed.address(host, 443)
    assert local.address("127.0.0.1", 80) == "127.0.0.1"
    assert local.check("http://127.0.0.1:8080/hook")
    with pytest.raises(InvalidCallbackError):
        CallbackPolicy(()).check("https://hooks.example.com/")


def test_our_signature_verifies_with_the_standard_webhooks_package() -> None:
    secret_value = "Zq8Xb2LkP0aVtR7mN3cW9yHs4DfJe6Uo"
    body = b'{"type":"job.succeeded","data":{"jobId":"j"}}'

    header = signature(signing_key(secret_value), "msg_1", 1_700_000_000, body)

    verifier = standardwebhooks.Webhook(standard_secret(secret_value))
    headers = {"webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": header}
    assert verifier.sign("msg_1", _at(1_700_000_000), body.decode()) == header
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        verifier.verify(body + b" ", headers)


def _at(seconds: int) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


# --------------------------------------------------------------------------------------- submit and deliver


def test_a_callback_url_is_refused_by_an_api_that_allows_no_host(
    aws: Aws, entry_points: Callable[[str], ModuleType], lambda_context: FakeLambdaContext
) -> None:
    submit = entry_points("lambda_handlers.submit")

    response = submit.handler(
        post_event("{}", headers={"Callback-Url": "https://x.example.com/"}), lambda_context
    )

    assert_problem(response, 400, "invalid-callback-url")
    assert aws.item_count() == 0


class Receiver:
    """A receiver on 127.0.0.1 answering ``status`` to every POST, keeping what it got."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.got: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.got.append(({k.lower(): v for k, v in self.headers.items()}, data))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def webhook_world(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Allowed host 127.0.0.1 under the local runtime, a signing secret, a webhook queue: (secret value, queue)."""
    secret_value = "s" * 32
    arn = boto3.client("secretsmanager").create_secret(Name="hooks", SecretString=secret_value)["ARN"]
    queue = aws.sqs.create_queue(QueueName="Webhooks")["QueueUrl"]
    for name, value in {
        "ASYNC_JOB_WEBHOOK_ALLOWED_HOSTS": '["127.0.0.1"]',
        "ASYNC_JOB_LOCAL_RUNTIME": "1",
        "ASYNC_JOB_WEBHOOK_SECRET_ARN": arn,
        "ASYNC_JOB_WEBHOOK_MAX_ATTEMPTS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    return secret_value, str(queue)


def submitted_with_callback(
    aws: Aws, entry_points: Callable[[str], ModuleType], url: str, lambda_context: FakeLambdaContext
) -> str:
    submit = entry_points("lambda_handlers.submit")
    response = submit.handler(post_event('{"n": 1}', headers={"Callback-Url": url}), lambda_context)
    assert response["statusCode"] == 202, response["body"]
    job_id = str(body(response)["id"])
    aws.dynamodb.update_item(
        TableName=aws.table_name,
        Key={"pk": {"S": job_id}},
        UpdateExpression="SET #s = :done",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":done": {"S": "SUCCEEDED"}},
    )
    return job_id


def webhook_message(job_id: str, receive_count: int = 1) -> dict[str, Any]:
    record = sqs_record(json.dumps({"jobId": job_id, "detail": {"jobId": job_id, "status": "SUCCEEDED"}}))
    record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    return record


def test_a_webhook_is_delivered_signed_and_its_delivery_shows_on_the_job(
    aws: Aws,
    webhook_world: tuple[str, str],
    entry_points: Callable[[str], ModuleType],
    lambda_context: FakeLambdaContext,
) -> None:
    receiver = Receiver(204)
    job_id = submitted_with_callback(aws, entry_points, receiver.url, lambda_context)
    webhooks = entry_points("lambda_handlers.webhooks")

    response = webhooks.handler({"Records": [webhook_message(job_id)]}, lambda_context)
    again = webhooks.handler({"Records": [webhook_message(job_id)]}, lambda_context)  # a duplicate message

    assert response == again == {"batchItemFailures": []}
    ((headers, data),) = receiver.got  # delivered once
    verified = standardwebhooks.Webhook(standard_secret(webhook_world[0])).verify(data, headers)
    assert verified["data"]["jobId"] == job_id
    state = body(entry_points("lambda_handlers.status").handler(get_event(job_id), lambda_context))["webhook"]
    assert (state["status"], state["attempts"], state["lastStatusCode"]) == ("DELIVERED", 1, 204)


def test_a_refused_webhook_is_retried_then_given_up(
    aws: Aws,
    webhook_world: tuple[str, str],
    entry_points: Callable[[str], ModuleType],
    lambda_context: FakeLambdaContext,
) -> None:
    receiver = Receiver(500)
    job_id = submitted_with_callback(aws, entry_points, receiver.url, lambda_context)
    webhooks = entry_points("lambda_handlers.webhooks")

    first = webhooks.handler({"Records": [webhook_message(job_id, 1)]}, lambda_context)
    pending = json.loads(aws.item(job_id)["webhook"])  # type: ignore[index]
    last = webhooks.handler({"Records": [webhook_message(job_id, 2)]}, lambda_context)
    given_up = json.loads(aws.item(job_id)["webhook"])  # type: ignore[index]

    assert first["batchItemFailures"]  # comes back after its backoff
    assert (pending["status"], pending["attempts"], pending["lastStatusCode"]) == ("PENDING", 1, 500)
    assert last == {"batchItemFailures": []}
    assert (given_up["status"], given_up["attempts"]) == ("FAILED", 2)
    assert len(receiver.got) == 2
    assert [webhooks.backoff(n) for n in (1, 2, 3, 8, 20)] == [30, 60, 120, 3600, 3600]
