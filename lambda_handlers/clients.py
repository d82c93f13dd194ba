"""boto3 clients, each created on first use and then reused by every invocation of the execution environment.

Only the clients a function calls are ever created (the status function never builds an SQS client), and only
low-level clients: a DynamoDB *resource* costs noticeably more to build than the client.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

__all__ = ["dynamodb", "sqs"]


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
