"""Where the local tables, queues, buckets, secrets and event buses live: moto embedded in this process (default)
or another endpoint.

The functions run in child processes and reach the backend through ``AWS_ENDPOINT_URL``, as they would reach
DynamoDB and SQS from Lambda; the runtime itself (the SQS pollers) is a client like any other.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Mapping
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

__all__ = [
    "Backend",
    "EmbeddedMotoBackend",
    "EndpointBackend",
    "LocalQueue",
    "bucket_name",
    "local_name",
    "secret_value_request",
]

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
#: ``GenerateSecretString`` options that Secrets Manager's ``GetRandomPassword`` takes as they are.
_PASSWORD_OPTIONS: Final = (
    "PasswordLength",
    "ExcludeCharacters",
    "ExcludeNumbers",
    "ExcludePunctuation",
    "ExcludeUppercase",
    "ExcludeLowercase",
    "IncludeSpace",
    "RequireEachIncludedType",
)


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
        stream = _stream_specification(properties)
        if stream is not None:
            request["StreamSpecification"] = stream
        try:
            dynamodb.create_table(**request)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceInUseException":
                raise
            if stream is not None and self.stream_arn(name) is None:  # made before its template had a stream
                dynamodb.update_table(TableName=name, StreamSpecification=stream)
            return
        dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
        ttl = properties.get("TimeToLiveSpecification")
        if isinstance(ttl, Mapping) and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )

    def stream_arn(self, table_name: str) -> str | None:
        """The ARN of the table's latest stream (its ``StreamArn`` attribute), or None when it has none."""
        table = self.client("dynamodb").describe_table(TableName=table_name)["Table"]
        if not table.get("StreamSpecification", {}).get("StreamEnabled"):
            return None
        arn = table.get("LatestStreamArn")
        return str(arn) if arn else None

    def ensure_bucket(self, name: str) -> None:
        """Create the bucket ``name`` unless this account has it (its other properties are not applied)."""
        s3 = self.client("s3")
        request: dict[str, Any] = {"Bucket": name}
        if self.region != "us-east-1":
            request["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            s3.create_bucket(**request)
        except ClientError as error:
            if error.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
                raise

    def ensure_secret(self, name: str, properties: Mapping[str, Any]) -> str:
        """Create the secret ``name`` from its template ``properties`` unless it exists; return its ARN.

        ``SecretString`` is stored as it is; ``GenerateSecretString`` is generated by Secrets Manager's
        ``GetRandomPassword`` with the same options (see ``secret_value_request``). An existing secret keeps its
        value.
        """
        secrets = self.client("secretsmanager")
        try:
            return str(secrets.describe_secret(SecretId=name)["ARN"])
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
        template, key, options = secret_value_request(properties)
        if key is None:
            value = template
        else:
            password = secrets.get_random_password(**options)["RandomPassword"]
            document = json.loads(template) if template else {}
            value = json.dumps({**document, key: password}) if template else password
        arn = secrets.create_secret(Name=name, SecretString=value)["ARN"]
        return str(arn)

    def ensure_event_bus(self, name: str) -> str:
        """Create the event bus ``name`` unless it exists (``default`` always does); return its ARN."""
        events = self.client("events")
        if name != "default":
            try:
                events.create_event_bus(Name=name)
            except ClientError as error:
                if error.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                    raise
        return str(events.describe_event_bus(Name=name)["Arn"])

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


def _stream_specification(properties: Mapping[str, Any]) -> dict[str, Any] | None:
    stream = properties.get("StreamSpecification")
    if not isinstance(stream, Mapping) or "StreamViewType" not in stream:
        return None
    return {"StreamEnabled": True, "StreamViewType": str(stream["StreamViewType"])}


def secret_value_request(properties: Mapping[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    """How to make an ``AWS::SecretsManager::Secret``'s value: (template, key, ``GetRandomPassword`` options).

    With ``SecretString``: that string, key None. With ``GenerateSecretString``: its ``SecretStringTemplate``
    (or ``""``), the ``GenerateStringKey`` the password goes in (``""``: the password is the value) and its
    options (CloudFormation's default length, 32, when it sets none). Neither: a generated password.

    Example
    -------
    >>> secret_value_request({"GenerateSecretString": {"PasswordLength": 40, "ExcludePunctuation": True}})
    ('', '', {'PasswordLength': 40, 'ExcludePunctuation': True})
    >>> secret_value_request({"SecretString": "s3cret"})
    ('s3cret', None, {})
    """
    if isinstance(properties.get("SecretString"), str):
        return str(properties["SecretString"]), None, {}
    generate = properties.get("GenerateSecretString")
    generate = generate if isinstance(generate, Mapping) else {}
    options = {key: generate[key] for key in _PASSWORD_OPTIONS if key in generate}
    options.setdefault("PasswordLength", 32)
    options["PasswordLength"] = int(options["PasswordLength"])
    template = generate.get("SecretStringTemplate")
    key = generate.get("GenerateStringKey")
    if isinstance(template, str) and isinstance(key, str):
        return template, key, options
    return "", "", options


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


def bucket_name(*parts: str) -> str:
    """An S3 bucket name for a local bucket: lowercase, DNS-compatible, 3-63 characters, unique per ``parts``.

    The parts (``stack``, ``logical id``) are lowercased, other characters than letters, digits and ``-`` become
    ``-``, and a hash of the parts as given keeps two that differ only in case (or in what was replaced) apart.

    Example
    -------
    >>> bucket_name("Stack", "MediaResultsBucket12AB34CD")
    'stack-mediaresultsbucket12ab34cd-082aa2e9'
    """
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()[:8]
    base = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower())
    base = re.sub(r"-{2,}", "-", base).strip("-")[: 63 - len(digest) - 1].rstrip("-")
    return f"{base}-{digest}" if base else f"bucket-{digest}"


class EmbeddedMotoBackend(Backend):
    """moto (DynamoDB, SQS, S3, Secrets Manager, EventBridge ...) served on ``127.0.0.1:<free port>`` by threads of this process.

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
