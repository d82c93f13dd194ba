"""boto3 clients, each created on first use and then reused by every invocation of the execution environment.

Only the clients a function calls are ever created (the status function never builds an SQS client), and only
low-level clients: a DynamoDB *resource* costs noticeably more to build than the client.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

__all__ = [
    "delay_record",
    "dynamodb",
    "events",
    "lambda_",
    "management_api",
    "queue_url",
    "s3",
    "secrets",
    "sqs",
]


def _config() -> Config:
    from botocore.config import Config

    # Short timeouts and the standard retry mode: the API functions answer within API Gateway's 29 s (their own
    # timeout is 10 s) with a 503 rather than hang on one slow connection.
    return Config(
        connect_timeout=2,
        read_timeout=5,
        retries={"mode": "standard", "max_attempts": 3},
        user_agent_extra="async-job-construct",
    )


@cache
def dynamodb() -> DynamoDBClient:
    """The DynamoDB client of this execution environment.

    Examples
    --------
    >>> dynamodb().get_item(TableName=table, Key={"pk": {"S": job_id}}, ConsistentRead=True)
    """
    import boto3

    return boto3.client("dynamodb", config=_config())


@cache
def sqs() -> SQSClient:
    """The SQS client of this execution environment.

    Examples
    --------
    >>> sqs().send_message(QueueUrl=queue_url, MessageBody=body)
    """
    import boto3

    return boto3.client("sqs", config=_config())


@cache
def s3() -> Any:
    """The S3 client of this execution environment (path-style addressing on a custom endpoint, such as the
    local runtime's, whose host has no bucket subdomains; virtual-hosted on AWS).

    Examples
    --------
    >>> s3().put_object(Bucket=bucket, Key=key, Body=data)
    """
    import os

    import boto3
    from botocore.config import Config

    custom_endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
    # Presigned URLs carry the region's endpoint and SigV4 (the default client may sign with an older scheme).
    config = _config().merge(
        Config(signature_version="s3v4", s3={"addressing_style": "path" if custom_endpoint else "auto"})
    )
    return boto3.client("s3", config=config)


@cache
def events() -> Any:
    """The EventBridge client of this execution environment (the stream consumer's ``PutEvents``)."""
    import boto3

    return boto3.client("events", config=_config())


@cache
def secrets() -> Any:
    """The Secrets Manager client of this execution environment (the webhook signing secret)."""
    import boto3

    return boto3.client("secretsmanager", config=_config())


@cache
def management_api(endpoint: str) -> Any:
    """The API Gateway management API client of a WebSocket stage (``https://{api}.execute-api.{region}.
    amazonaws.com/{stage}``): ``post_to_connection`` of the push function."""
    import boto3

    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint, config=_config())


@cache
def lambda_() -> Any:
    """The Lambda client of this execution environment: the starter's ``Invoke`` and durable-execution listing,
    the status function's ``StopDurableExecution``. ``AWS_ENDPOINT_URL_LAMBDA`` (or ``AWS_ENDPOINT_URL``) points it
    at another endpoint, as it does the durable SDK's own client (the local runtime's durable service).

    Examples
    --------
    >>> lambda_().invoke(FunctionName=version_arn, InvocationType="Event", DurableExecutionName=job_id, Payload=body)
    """
    import boto3

    return boto3.client("lambda", config=_config())


def queue_url(queue_arn: object) -> str:
    """The URL of the queue with ARN ``arn:aws:sqs:<region>:<account>:<name>``, on the SQS client's endpoint (the
    event source gives a record's queue by ARN; ``ChangeMessageVisibility`` takes its URL).

    Examples
    --------
    >>> queue_url("arn:aws:sqs:eu-west-1:123456789012:Jobs-Queue")
    'https://sqs.eu-west-1.amazonaws.com/123456789012/Jobs-Queue'
    """
    parts = queue_arn.split(":") if isinstance(queue_arn, str) else []
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not parts[4] or not parts[5]:
        raise ValueError(f"not an SQS queue ARN: {queue_arn!r}")
    return f"{sqs().meta.endpoint_url}/{parts[4]}/{parts[5]}"


def delay_record(record: dict[str, Any], seconds: int) -> None:
    """Make an SQS event record's message visible again only after ``seconds`` (``ChangeMessageVisibility``), so
    that the event source delivers it again then (report the record in ``batchItemFailures`` too).

    Raises
    ------
    Exception
        Whatever the call raised (the message then keeps its visibility timeout).

    Examples
    --------
    >>> delay_record(record, 60)
    """
    sqs().change_message_visibility(
        QueueUrl=queue_url(record.get("eventSourceARN")),
        ReceiptHandle=str(record.get("receiptHandle")),
        VisibilityTimeout=seconds,
    )
