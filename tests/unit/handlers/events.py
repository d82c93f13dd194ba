"""Event factories and fakes for the handler tests: REST proxy events, SQS records, a Lambda context."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from lambda_handlers import messages

REGION = "us-east-1"
ACCOUNT = "123456789012"
DOMAIN = "abc123defg.execute-api.us-east-1.amazonaws.com"
STAGE = "prod"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"


def rest_event(
    method: str = "POST",
    *,
    body: str | bytes | None = None,
    content_type: str | None = "application/json",
    headers: Mapping[str, str] | None = None,
    resource: str = "/jobs",
    path: str = "/jobs",
    path_parameters: Mapping[str, str] | None = None,
    user_arn: str | None = ALICE,
    authorizer: Mapping[str, Any] | None = None,
    identity: Mapping[str, Any] | None = None,
    base64_encoded: bool = False,
    forwarded_proto: str | None = "https",
) -> dict[str, Any]:
    """An API Gateway REST API proxy event (payload format 1.0), shaped like the real thing."""
    all_headers: dict[str, str] = {"Host": DOMAIN, "User-Agent": "pytest"}
    if forwarded_proto is not None:
        all_headers["X-Forwarded-Proto"] = forwarded_proto
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    all_headers.update(headers or {})
    if isinstance(body, bytes):
        body = base64.b64encode(body).decode() if base64_encoded else body.decode("utf-8")
    elif body is not None and base64_encoded:
        body = base64.b64encode(body.encode("utf-8")).decode()
    request_identity: dict[str, Any] = {
        "accountId": ACCOUNT if user_arn else None,
        "apiKeyId": None,
        "caller": None,
        "cognitoIdentityId": None,
        "sourceIp": "203.0.113.7",
        "userAgent": "pytest",
        "userArn": user_arn,
        **(identity or {}),
    }
    context: dict[str, Any] = {
        "accountId": ACCOUNT,
        "apiId": "abc123defg",
        "domainName": DOMAIN,
        "httpMethod": method,
        "identity": request_identity,
        "path": f"/{STAGE}{path}",
        "protocol": "HTTP/1.1",
        "requestId": str(uuid.uuid4()),
        "requestTimeEpoch": int(time.time() * 1000),
        "resourceId": "a1b2c3",
        "resourcePath": resource,
        "stage": STAGE,
    }
    if authorizer is not None:
        context["authorizer"] = dict(authorizer)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {name: [value] for name, value in all_headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": dict(path_parameters) if path_parameters is not None else None,
        "stageVariables": None,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": base64_encoded,
    }


def get_event(job_id: str | None, **kwargs: Any) -> dict[str, Any]:
    """``GET /jobs/{id}``."""
    return rest_event(
        "GET",
        content_type=None,
        resource="/jobs/{id}",
        path=f"/jobs/{job_id}",
        path_parameters=None if job_id is None else {"id": job_id},
        **kwargs,
    )


def list_event(query: Mapping[str, list[str]] | None = None, **kwargs: Any) -> dict[str, Any]:
    """``GET /jobs`` with these query parameters (name -> values), as API Gateway passes them."""
    event = rest_event("GET", content_type=None, resource="/jobs", path="/jobs", **kwargs)
    if query:
        event["multiValueQueryStringParameters"] = {name: list(values) for name, values in query.items()}
        event["queryStringParameters"] = {name: values[-1] for name, values in query.items()}
    return event


def delete_event(job_id: str | None, **kwargs: Any) -> dict[str, Any]:
    """``DELETE /jobs/{id}``."""
    return rest_event(
        "DELETE",
        content_type=None,
        resource="/jobs/{id}",
        path=f"/jobs/{job_id}",
        path_parameters=None if job_id is None else {"id": job_id},
        **kwargs,
    )


def post_event(body: str = "{}", key: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """``POST /jobs``, with an ``Idempotency-Key`` when ``key`` is given."""
    headers = dict(kwargs.pop("headers", None) or {})
    if key is not None:
        headers["Idempotency-Key"] = key
    return rest_event("POST", body=body, headers=headers, **kwargs)


def sqs_record(
    body: str, *, receive_count: int = 1, message_id: str | None = None, queue: str = "Queue"
) -> dict[str, Any]:
    """One record of an SQS event, as Lambda's event source mapping delivers it."""
    now = str(int(time.time() * 1000))
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "AQEB" + uuid.uuid4().hex,
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": now,
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": now,
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}",
        "awsRegion": REGION,
    }


def job_record(job_id: str, payload: Mapping[str, Any] | str, **kwargs: Any) -> dict[str, Any]:
    """A record carrying the job message the submit function would send."""
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return sqs_record(messages.encode(job_id, text), **kwargs)


def record_from_message(message: Mapping[str, Any], queue_arn: str) -> dict[str, Any]:
    """The Lambda record for a message received from (moto's) SQS with ``AttributeNames=["All"]``."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


class FakeLambdaContext:
    """The Lambda ``context``: the attributes Powertools reads, and a deadline that really counts down."""

    function_name = "async-job-test"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:async-job-test"
    log_group_name = "/aws/lambda/async-job-test"
    log_stream_name = "2026/11/23/[$LATEST]0123456789abcdef"

    def __init__(self, remaining_ms: int = 60_000) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.set_remaining(remaining_ms)

    def set_remaining(self, remaining_ms: int) -> None:
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def body(response: Mapping[str, Any]) -> Any:
    """The JSON body of a proxy response."""
    return json.loads(response["body"])


def emitted_metrics(stdout: str) -> dict[str, list[float]]:
    """Metric name -> values, from the CloudWatch EMF documents Powertools printed."""
    found: dict[str, list[float]] = {}
    for line in stdout.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                found.setdefault(metric["Name"], []).extend(value if isinstance(value, list) else [value])
    return found


def emitted_series(stdout: str) -> list[tuple[str, dict[str, str], float]]:
    """(metric name, its dimensions by name, value) for each metric in the CloudWatch EMF documents printed."""
    found: list[tuple[str, dict[str, str], float]] = []
    for line in stdout.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            names = [name for dimension_set in directive["Dimensions"] for name in dimension_set]
            dimensions = {name: document[name] for name in names}
            for metric in directive["Metrics"]:
                values = document[metric["Name"]]
                for value in values if isinstance(values, list) else [values]:
                    found.append((metric["Name"], dimensions, value))
    return found
