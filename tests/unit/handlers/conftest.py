"""Fixtures for the handler tests: a moto account with the status table and queues, and the entry points
imported fresh against it (each reads its environment at import, as in Lambda)."""

from __future__ import annotations

import importlib
import json
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambda_handlers import clients
from lambda_handlers.contract import OWNER_INDEX, OWNER_INDEX_ATTRIBUTES
from lambda_handlers.store import JobStore
from tests.unit.handlers import jobs
from tests.unit.handlers.events import ACCOUNT, REGION, FakeLambdaContext

ENTRY_POINTS = (
    "lambda_handlers.submit",
    "lambda_handlers.status",
    "lambda_handlers.worker",
    "lambda_handlers.dead_letter",
)
MAX_RECEIVE_COUNT = 3
MAX_PAYLOAD_BYTES = 8_192
TTL_SECONDS = 3_600
RETRY_AFTER_SECONDS = 5


@dataclass
class Aws:
    """The moto account: clients, the resources' names and a few readers of their real state."""

    dynamodb: Any
    sqs: Any
    table_name: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str
    #: A bucket for results, files and payloads; the functions use it only when a test sets
    #: ``ASYNC_JOB_BUCKET_NAME`` to it (``with_bucket``).
    bucket: str = "jobs-bucket"

    @property
    def store(self) -> JobStore:
        return JobStore(self.table_name, self.dynamodb, ttl_seconds=TTL_SECONDS)

    def item(self, job_id: str) -> dict[str, Any] | None:
        """The job's item in plain values (``{"status": "QUEUED", "attempts": 0, ...}``), or None."""
        raw = self.dynamodb.get_item(
            TableName=self.table_name, Key={"pk": {"S": job_id}}, ConsistentRead=True
        )
        if "Item" not in raw:
            return None
        return {name: _plain(value) for name, value in raw["Item"].items()}

    def item_count(self) -> int:
        return int(self.dynamodb.scan(TableName=self.table_name, Select="COUNT")["Count"])

    def receive(self, queue_url: str | None = None, visibility_timeout: int = 0) -> list[dict[str, Any]]:
        """Receive (without deleting) what is visible on a queue; by default the job queue."""
        return list(
            self.sqs.receive_message(
                QueueUrl=queue_url or self.queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=visibility_timeout,
                AttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
        )

    def queue_depth(self, queue_url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )


def _plain(value: dict[str, Any]) -> Any:
    if "S" in value:
        return value["S"]
    if "N" in value:
        number = float(value["N"])
        return int(number) if number.is_integer() else number
    if "BOOL" in value:
        return value["BOOL"]
    raise AssertionError(f"unexpected attribute value {value}")


@pytest.fixture(autouse=True)
def _quiet_empty_metrics() -> None:
    """What ``lambda_handlers.observability`` does at import, for every test (pytest resets warning filters)."""
    warnings.filterwarnings("ignore", "No application metrics to publish*")


@pytest.fixture(autouse=True)
def _no_default_dimensions() -> Iterator[None]:
    """Forget the worker's default ``jobType`` dimension after each test (Powertools keeps it process-wide)."""
    yield
    observability = sys.modules.get("lambda_handlers.observability")  # importing it here would build it
    if observability is not None:  # without the tests' Powertools settings
        observability.metrics.clear_default_dimensions()


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region, Powertools settings; nothing can reach a real account."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_LAMBDA_FUNCTION_NAME"):
        monkeypatch.delenv(name, raising=False)
    settings = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "async-job-tests",
        "POWERTOOLS_METRICS_NAMESPACE": "AsyncJobsTest",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def boto_clients() -> Iterator[tuple[Any, Any]]:
    """The tests' own DynamoDB and SQS clients, created once (a client takes ~60 ms to build).

    moto intercepts every client created after it is imported, whichever ``mock_aws`` is active when it calls;
    so do the functions' clients (``lambda_handlers.clients``), which likewise live for the whole session.
    """
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    clients.dynamodb.cache_clear()
    clients.sqs.cache_clear()
    yield session.client("dynamodb"), session.client("sqs")
    clients.dynamodb.cache_clear()
    clients.sqs.cache_clear()


@pytest.fixture
def aws(
    aws_environment: None, boto_clients: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Aws]:
    """A fresh moto account with the status table (``pk`` S, TTL on ``expiresAt``, the owner index), the queue and its DLQ
    (redrive after 3 receives); the ``ASYNC_JOB_*`` variables point at them."""
    jobs.reset()
    dynamodb, sqs = boto_clients
    with mock_aws():
        table_name = "Jobs-Table"
        dynamodb.create_table(
            TableName=table_name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "owner", "createdAt")
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": OWNER_INDEX,
                    "KeySchema": [
                        {"AttributeName": "owner", "KeyType": "HASH"},
                        {"AttributeName": "createdAt", "KeyType": "RANGE"},
                    ],
                    "Projection": {
                        "ProjectionType": "INCLUDE",
                        "NonKeyAttributes": list(OWNER_INDEX_ATTRIBUTES),
                    },
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.update_time_to_live(
            TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"}
        )
        boto3.client("s3", region_name=REGION).create_bucket(Bucket="jobs-bucket")
        dlq_url = sqs.create_queue(QueueName="Jobs-DeadLetterQueue")["QueueUrl"]
        dlq_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:Jobs-DeadLetterQueue"
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
        queue_url = sqs.create_queue(
            QueueName="Jobs-Queue",
            Attributes={"RedrivePolicy": json.dumps(redrive), "VisibilityTimeout": "30"},
        )["QueueUrl"]
        queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:Jobs-Queue"
        variables = {
            "ASYNC_JOB_TABLE_NAME": table_name,
            "ASYNC_JOB_QUEUE_URL": queue_url,
            "ASYNC_JOB_MAX_PAYLOAD_BYTES": str(MAX_PAYLOAD_BYTES),
            "ASYNC_JOB_TTL_SECONDS": str(TTL_SECONDS),
            "ASYNC_JOB_RETRY_AFTER_SECONDS": str(RETRY_AFTER_SECONDS),
            "ASYNC_JOB_HANDLER": "tests.unit.handlers.jobs.succeed",
            "ASYNC_JOB_MAX_RECEIVE_COUNT": str(MAX_RECEIVE_COUNT),
        }
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("ASYNC_JOB_OPERATORS", raising=False)
        yield Aws(dynamodb, sqs, table_name, queue_url, queue_arn, dlq_url, dlq_arn)
    jobs.reset()


def fresh_import(name: str) -> ModuleType:
    """Import an entry point anew, so it reads the current environment (as a cold start does)."""
    sys.modules.pop(name, None)
    return importlib.import_module(name)


@pytest.fixture
def entry_points() -> Iterator[Callable[[str], ModuleType]]:
    """``fresh_import``; the entry points are forgotten afterwards (they hold this test's settings)."""
    yield fresh_import
    for name in ENTRY_POINTS:
        sys.modules.pop(name, None)


@pytest.fixture
def submit(aws: Aws, entry_points: Callable[[str], ModuleType]) -> ModuleType:
    return entry_points("lambda_handlers.submit")


@pytest.fixture
def status(aws: Aws, entry_points: Callable[[str], ModuleType]) -> ModuleType:
    return entry_points("lambda_handlers.status")


@pytest.fixture
def dead_letter(aws: Aws, entry_points: Callable[[str], ModuleType]) -> ModuleType:
    return entry_points("lambda_handlers.dead_letter")


@pytest.fixture
def load_worker(
    aws: Aws, entry_points: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., ModuleType]:
    """``load_worker("crash")``: the worker running ``tests.unit.handlers.jobs.crash``."""

    def load(job: str = "succeed", *, handler: str | None = None) -> ModuleType:
        monkeypatch.setenv("ASYNC_JOB_HANDLER", handler or f"tests.unit.handlers.jobs.{job}")
        return entry_points("lambda_handlers.worker")

    return load


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    """A Lambda context with 60 s left; ``set_remaining`` changes that."""
    return FakeLambdaContext()
