"""AWS API calls per job, counted with botocore's event hooks, on the happy path and on each failure path.

Runs the real handlers in-process on moto (SQS, DynamoDB) with real API Gateway and SQS events, and counts every
API call the handlers make (a `before-call` hook on the boto3 session their clients come from; set-up and
inspection calls use another session and are not counted). Target on the happy path: submit 2, worker 2, poll 1.
Last line: `calls submit=<n> worker=<n> poll=<n>`.

    .venv/bin/python bench/aws_calls.py
"""

from __future__ import annotations

import importlib
import io
import json
import os
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench" / "jobs")]

REGION = "us-east-1"
os.environ.update(
    {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "bench",
        "POWERTOOLS_METRICS_NAMESPACE": "Bench",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }
)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from tests.unit.handlers.events import (  # noqa: E402
    FakeLambdaContext,
    get_event,
    job_record,
    post_event,
    record_from_message,
    sqs_event,
)


class CallCounter:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, model: Any, **_: Any) -> None:
        self.calls.append(f"{model.service_model.service_name}:{model.name}")

    def take(self) -> list[str]:
        taken, self.calls = self.calls, []
        return taken


def main() -> None:
    real_stdout = sys.stdout
    sys.stdout = io.StringIO()  # the handlers' JSON logs and EMF metrics; Powertools binds stdout at import
    try:
        rows, happy = run()
    finally:
        sys.stdout = real_stdout
    width = max(len(label) for label, _ in rows)
    for label, calls in rows:
        summary = ", ".join(f"{name} x{n}" if n > 1 else name for name, n in Counter(calls).items())
        print(f"{label:{width}s}  {len(calls)}  {summary}")
    print(f"calls submit={happy[0]} worker={happy[1]} poll={happy[2]}")


def run() -> tuple[list[tuple[str, list[str]]], list[int]]:
    with mock_aws():
        setup = boto3.session.Session(region_name=REGION)
        ddb, sqs = setup.client("dynamodb"), setup.client("sqs")
        table = "jobs"
        ddb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dlq_url = sqs.create_queue(QueueName="jobs-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        queue_url = sqs.create_queue(
            QueueName="jobs",
            Attributes={
                "VisibilityTimeout": "0",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
            },
        )["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        os.environ.update(
            {
                "ASYNC_JOB_TABLE_NAME": table,
                "ASYNC_JOB_QUEUE_URL": queue_url,
                "ASYNC_JOB_MAX_PAYLOAD_BYTES": "262144",
                "ASYNC_JOB_TTL_SECONDS": "3600",
                "ASYNC_JOB_RETRY_AFTER_SECONDS": "5",
                "ASYNC_JOB_IDEMPOTENCY_KEY_REQUIRED": "false",
                "ASYNC_JOB_MAX_RECEIVE_COUNT": "3",
                "ASYNC_JOB_RETRY_BASE_SECONDS": "1",
                "ASYNC_JOB_RETRY_MAX_SECONDS": "1",
            }
        )
        counter = CallCounter()
        boto3.setup_default_session(region_name=REGION)
        boto3.DEFAULT_SESSION.events.register("before-call.*.*", counter)  # type: ignore[union-attr]

        def load(module: str, handler: str | None = None) -> Any:
            if handler:
                os.environ["ASYNC_JOB_HANDLER"] = handler
            sys.modules.pop(module, None)
            return importlib.import_module(module)

        submit, status, dead_letter = (
            load(f"lambda_handlers.{m}") for m in ("submit", "status", "dead_letter")
        )
        context = FakeLambdaContext()

        def post(body: Any) -> dict[str, Any]:
            return submit.handler(post_event(json.dumps(body)), context)  # type: ignore[no-any-return]

        def consume(module: Any, event: dict[str, Any]) -> None:
            """Invoke like Lambda's SQS event source: delete every record not reported as a batch item failure."""
            response = module.handler(event, context)
            calls = counter.take()  # the deletes below are the event source's, not the function's
            failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
            for record in event["Records"]:
                if record["messageId"] not in failed and not record["receiptHandle"].startswith("AQEB"):
                    url = queue_url if record["eventSourceARN"] == queue_arn else dlq_url
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])
            counter.calls = calls

        def receive(url: str) -> dict[str, Any]:
            (message,) = sqs.receive_message(QueueUrl=url, AttributeNames=["All"], MaxNumberOfMessages=1)[
                "Messages"
            ]
            return sqs_event(record_from_message(message, queue_arn if url == queue_url else dlq_arn))

        rows: list[tuple[str, list[str]]] = []

        # Happy path.
        created = post({"n": 1})
        job_id = json.loads(created["body"])["id"]
        rows.append(("submit (202)", counter.take()))
        worker = load("lambda_handlers.worker", "bench_jobs.ok")
        consume(worker, receive(queue_url))
        rows.append(("worker: success", counter.take()))
        status.handler(get_event(job_id), context)
        rows.append(("poll (200)", counter.take()))
        happy = [len(calls) for _, calls in rows]

        # Failure paths.
        consume(worker, sqs_event(job_record(job_id, {"n": 1}, receive_count=2)))
        rows.append(("worker: duplicate delivery of a finished job", counter.take()))
        status.handler(get_event(str(uuid.uuid4())), context)
        rows.append(("poll: unknown id (404)", counter.take()))
        post([1, 2])
        rows.append(("submit: body not an object (400)", counter.take()))

        failing = json.loads(post({"n": 2})["body"])["id"]
        counter.take()
        worker = load("lambda_handlers.worker", "bench_jobs.fail")
        for attempt in (1, 2, 3):
            event = receive(queue_url)
            consume(worker, event)
            label = (
                "worker: failure, retry scheduled"
                if attempt < 3
                else "worker: failure on the last attempt (FAILED)"
            )
            rows.append((f"{label} [attempt {attempt}]", counter.take()))
            if attempt < 3:  # skip the backoff delay: make the message receivable again now
                sqs.change_message_visibility(
                    QueueUrl=queue_url,
                    ReceiptHandle=event["Records"][0]["receiptHandle"],
                    VisibilityTimeout=0,
                )

        crashed = json.loads(post({"n": 3})["body"])["id"]
        counter.take()
        sqs.send_message(
            QueueUrl=dlq_url, MessageBody=json.dumps({"v": 1, "jobId": crashed, "payload": {"n": 3}})
        )
        consume(dead_letter, receive(dlq_url))
        rows.append(("dead-letter consumer: mark FAILED", counter.take()))

        os.environ["ASYNC_JOB_QUEUE_URL"] = queue_url + "-missing"
        submit = load("lambda_handlers.submit")
        post({"n": 4})
        rows.append(("submit: SendMessage fails (503, job removed)", counter.take()))
        assert failing
    return rows, happy


if __name__ == "__main__":
    main()
