"""Where the local tables and queues live: moto embedded in this process (default) or another endpoint.

The functions run in child processes and reach the backend through ``AWS_ENDPOINT_URL``, as they would reach
DynamoDB and SQS from Lambda; the runtime itself (the SQS pollers) is a client like any other.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

__all__ = ["Backend", "EmbeddedMotoBackend", "EndpointBackend", "LocalQueue", "local_name"]

FAKE_CREDENTIALS: Final[Mapping[str, str]] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
DEFAULT_REGION: Final = "us-east-1"
#: SQS queue attributes that CloudFormation's AWS::SQS::Queue properties set directly.
_QUEUE_ATTRIBUTES: Final = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)
_TABLE_INDEX_KEYS: Final = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")


class LocalQueue:
    """A queue created for the local runtime: its URL and ARN."""

    def __init__(self, url: str, arn: str) -> None:
        self.url = url
        self.arn = arn

    @property
    def name(self) -> str:
        """The queue's name (the last part of its ARN)."""
        return self.arn.rsplit(":", 1)[-1]


class Backend:
    """DynamoDB and SQS for the local runtime.

    Subclasses set ``endpoint_url`` (None: AWS's own endpoints), ``region`` and ``credentials``.
    """

    endpoint_url: str | None
    region: str
    credentials: Mapping[str, str]

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session = boto3.session.Session(
            aws_access_key_id=self.credentials.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=self.credentials.get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=self.credentials.get("AWS_SESSION_TOKEN"),
            region_name=self.region,
        )

    def client(self, service: str) -> Any:
        """A new boto3 client of ``service`` on this backend (clients are cheap to share between threads)."""
        with self._lock:  # creating clients from one session is not thread-safe
            return self._session.client(
                service,  # type: ignore[call-overload]
                endpoint_url=self.endpoint_url,
                config=Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=32),
            )

    def child_environment(self) -> dict[str, str]:
        """What a function's process needs to reach this backend (region, credentials, endpoint)."""
        env = {"AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region, **self.credentials}
        if self.endpoint_url is not None:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
        return env

    def describe(self) -> str:
        """One line for the console."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the backend (stop an embedded server)."""

    # ----------------------------------------------------------------------------------------- resources

    def ensure_table(self, name: str, properties: Mapping[str, Any]) -> None:
        """Create the table ``name`` from its template ``properties`` unless it exists."""
        dynamodb = self.client("dynamodb")
        request: dict[str, Any] = {
            "TableName": name,
            "KeySchema": properties["KeySchema"],
            "AttributeDefinitions": properties["AttributeDefinitions"],
        }
        provisioned = properties.get("BillingMode", "PROVISIONED") == "PROVISIONED"
        if provisioned:
            request["ProvisionedThroughput"] = properties.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
        else:
            request["BillingMode"] = "PAY_PER_REQUEST"
        index_keys = _TABLE_INDEX_KEYS if provisioned else _TABLE_INDEX_KEYS[:-1]
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if key in properties:
                request[key] = [{k: index[k] for k in index_keys if k in index} for index in properties[key]]
        try:
            dynamodb.create_table(**request)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceInUseException":
                raise
            return
        dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
        ttl = properties.get("TimeToLiveSpecification")
        if isinstance(ttl, Mapping) and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )

    def ensure_queue(
        self, name: str, properties: Mapping[str, Any], dead_letter_arn: str | None
    ) -> LocalQueue:
        """Create the queue ``name`` from its template ``properties`` (or update the one there)."""
        sqs = self.client("sqs")
        attributes = {key: _attribute(properties[key]) for key in _QUEUE_ATTRIBUTES if key in properties}
        if properties.get("FifoQueue"):
            attributes["FifoQueue"] = "true"
        redrive = properties.get("RedrivePolicy")
        if isinstance(redrive, Mapping) and dead_letter_arn is not None:
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": int(redrive["maxReceiveCount"])}
            )
        try:
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("QueueAlreadyExists", "QueueNameExists"):
                raise
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            settable = {k: v for k, v in attributes.items() if k != "FifoQueue"}
            if settable:
                sqs.set_queue_attributes(QueueUrl=url, Attributes=settable)
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return LocalQueue(url=url, arn=arn)


def _attribute(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def local_name(*parts: str, limit: int = 80, suffix: str = "") -> str:
    """A physical name for a local resource: ``Stack-LogicalId``, shortened with a hash past ``limit``."""
    name = "-".join(parts)
    if len(name) + len(suffix) > limit:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[: limit - len(suffix) - 9]}-{digest}"
    return name + suffix


class EmbeddedMotoBackend(Backend):
    """moto's DynamoDB and SQS served on ``127.0.0.1:<free port>`` by threads of this process.

    Every request runs atomically, one at a time (moto is not thread-safe), except that an SQS long poll waits
    outside the lock: see ``async_job_local.serialised_moto``. Requests are answered with ``TCP_NODELAY`` and
    without moto's per-request log lines. moto's state lives in this process: the jobs are gone once it ends.

    Example
    -------
    >>> backend = EmbeddedMotoBackend()
    >>> backend.client("sqs").list_queues()
    """

    def __init__(self, region: str = DEFAULT_REGION) -> None:
        # moto is imported only here: a runtime pointed at another endpoint never loads it.
        from async_job_local.moto_server import MotoServer

        self.region = region
        self.credentials = dict(FAKE_CREDENTIALS)
        self._server = MotoServer()
        self.endpoint_url = self._server.url
        super().__init__()

    def describe(self) -> str:
        return f"moto, embedded ({self.endpoint_url}, region {self.region})"

    def close(self) -> None:
        self._server.close()


class EndpointBackend(Backend):
    """An endpoint of your own: a moto server (``endpoint_url``), or AWS itself (``endpoint_url=None``).

    With ``endpoint_url=None`` the usual boto3 configuration applies (``AWS_PROFILE``, ``AWS_ENDPOINT_URL``,
    ``AWS_REGION`` ...) and the functions get this configuration's credentials, the way Lambda passes its
    role's credentials in environment variables. Tables and queues are created if missing and left in place.
    """

    def __init__(self, endpoint_url: str | None, region: str | None = None) -> None:
        session = boto3.session.Session(region_name=region)
        self.region = session.region_name or DEFAULT_REGION
        self.endpoint_url = endpoint_url
        credentials = session.get_credentials()
        if credentials is None:
            if endpoint_url is None:
                raise RuntimeError("no AWS credentials found (set AWS_PROFILE, or pass --endpoint-url)")
            self.credentials = dict(FAKE_CREDENTIALS)
        else:
            frozen = credentials.get_frozen_credentials()
            self.credentials = {
                "AWS_ACCESS_KEY_ID": str(frozen.access_key),
                "AWS_SECRET_ACCESS_KEY": str(frozen.secret_key),
            }
            if frozen.token:
                self.credentials["AWS_SESSION_TOKEN"] = frozen.token
        super().__init__()

    def child_environment(self) -> dict[str, str]:
        env = super().child_environment()
        if self.endpoint_url is None:  # keep any AWS_ENDPOINT_URL_* of the caller's configuration
            env.update({k: v for k, v in os.environ.items() if k.startswith("AWS_ENDPOINT_URL")})
        return env

    def describe(self) -> str:
        where = self.endpoint_url or "AWS (the usual boto3 configuration)"
        return f"{where}, region {self.region}"
