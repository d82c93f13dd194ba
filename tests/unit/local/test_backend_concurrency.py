"""The embedded moto backend under concurrency: every request atomic, long polls holding no one up.

Each test drives a real ``EmbeddedMotoBackend`` over loopback HTTP from many threads, with boto3 clients that
never retry (a retried 500 would hide the race it comes from). moto keeps its state per process, so every test
works on tables and queues of its own, named with a fresh suffix.

The interpreter's thread switch interval is shortened while these tests run: the server's threads then
interleave inside moto far more often than the default 5 ms allows, so an unserialised backend shows its races
within a few hundred requests instead of by luck.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode, urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from async_job_local.backend import EmbeddedMotoBackend

THREADS = 8
#: A bound on "promptly" generous enough for a loaded shared 2-core machine (a wake takes ~15 ms idle).
PROMPT_SECONDS = 1.0


@pytest.fixture(scope="module")
def backend() -> Iterator[EmbeddedMotoBackend]:
    embedded = EmbeddedMotoBackend()
    yield embedded
    embedded.close()


@pytest.fixture(autouse=True)
def _frequent_thread_switches() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(previous)


def _client(backend: EmbeddedMotoBackend, service: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=backend.endpoint_url,
        region_name=backend.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, max_pool_connections=THREADS * 2),
    )


@pytest.fixture
def dynamodb(backend: EmbeddedMotoBackend) -> Any:
    return _client(backend, "dynamodb")


@pytest.fixture
def sqs(backend: EmbeddedMotoBackend) -> Any:
    return _client(backend, "sqs")


@pytest.fixture
def table(dynamodb: Any) -> Iterator[str]:
    name = f"concurrency-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield name
    dynamodb.delete_table(TableName=name)


def _queue(sqs: Any, **attributes: str) -> str:
    url: str = sqs.create_queue(QueueName=f"concurrency-{uuid.uuid4().hex[:8]}", Attributes=attributes)[
        "QueueUrl"
    ]
    return url


def _in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(index)`` in ``count`` threads released together; return their results (re-raising)."""
    start = threading.Barrier(count)

    def run(index: int) -> Any:
        start.wait()
        return work(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def _code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


# ------------------------------------------------------------------------------------------------ DynamoDB


def test_conditional_read_modify_write_increments_never_both_pass(dynamodb: Any, table: str) -> None:
    # GIVEN a counter at 0
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "counter"}, "n": {"N": "0"}})

    # WHEN threads increment it by read-modify-write, each write conditional on the value it read
    def increment(_: int) -> tuple[int, list[str]]:
        won, unexpected = 0, []
        for _attempt in range(30):
            seen = dynamodb.get_item(TableName=table, Key={"pk": {"S": "counter"}}, ConsistentRead=True)
            expected = int(seen["Item"]["n"]["N"])
            try:
                dynamodb.update_item(
                    TableName=table,
                    Key={"pk": {"S": "counter"}},
                    UpdateExpression="SET n = :next",
                    ConditionExpression="n = :expected",
                    ExpressionAttributeValues={
                        ":expected": {"N": str(expected)},
                        ":next": {"N": str(expected + 1)},
                    },
                )
            except ClientError as error:
                if _code(error) != "ConditionalCheckFailedException":
                    unexpected.append(_code(error))
                continue
            won += 1
        return won, unexpected

    results = _in_threads(THREADS, increment)

    # THEN the counter counts every successful update (no two updates passed the same condition), no errors
    final = dynamodb.get_item(TableName=table, Key={"pk": {"S": "counter"}}, ConsistentRead=True)
    assert int(final["Item"]["n"]["N"]) == sum(won for won, _ in results)
    assert [code for _, codes in results for code in codes] == []


def test_attribute_not_exists_claims_have_exactly_one_winner_each(dynamodb: Any, table: str) -> None:
    # GIVEN claims nobody holds yet
    claims = [f"claim-{number}" for number in range(60)]

    # WHEN every thread tries to take every claim with a conditional update
    def take_all(index: int) -> list[str]:
        taken = []  # the claims won, and the codes of unexpected errors
        for claim in claims:
            try:
                dynamodb.update_item(
                    TableName=table,
                    Key={"pk": {"S": claim}},
                    UpdateExpression="SET holder = :me",
                    ConditionExpression="attribute_not_exists(pk)",
                    ExpressionAttributeValues={":me": {"S": f"thread-{index}"}},
                )
            except ClientError as error:
                if _code(error) != "ConditionalCheckFailedException":
                    taken.append(_code(error))
                continue
            taken.append(claim)
        return taken

    taken = [claim for claims_of_thread in _in_threads(THREADS, take_all) for claim in claims_of_thread]

    # THEN each claim was won exactly once, and nothing else happened
    assert sorted(taken) == sorted(claims)


def test_failing_transactions_lose_no_concurrent_writes(dynamodb: Any, table: str) -> None:
    # GIVEN a table with some items already (a failed transaction restores a copy of all of them)
    for number in range(50):
        dynamodb.put_item(TableName=table, Item={"pk": {"S": f"old-{number}"}, "payload": {"S": "x" * 200}})

    # WHEN some threads write distinct items while others run transactions that fail on purpose
    writers = THREADS // 2

    def work(index: int) -> tuple[list[str], list[str]]:
        written, failures = [], []
        for number in range(30):
            if index < writers:
                key = f"new-{index}-{number}"
                dynamodb.put_item(TableName=table, Item={"pk": {"S": key}})
                written.append(key)
                continue
            try:
                dynamodb.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": table,
                                "Item": {"pk": {"S": f"never-{index}-{number}"}},
                                "ConditionExpression": "attribute_exists(pk)",
                            }
                        }
                    ]
                )
            except ClientError as error:
                failures.append(_code(error))
            else:
                failures.append("succeeded")
        return written, failures

    results = _in_threads(THREADS, work)

    # THEN every write is there, and every transaction failed as it should
    written = [key for keys, _ in results for key in keys]
    missing = [
        key
        for key in written
        if "Item" not in dynamodb.get_item(TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True)
    ]
    assert missing == [], f"{len(missing)} of {len(written)} writes lost"
    assert {code for _, codes in results for code in codes} == {"TransactionCanceledException"}


# ----------------------------------------------------------------------------------------------------- SQS


def test_concurrent_consumers_each_get_distinct_messages_without_errors(sqs: Any) -> None:
    # GIVEN a queue of many messages, visible to one receiver at a time for longer than the test lasts
    queue = _queue(sqs, VisibilityTimeout="60")
    sent = 100
    for start in range(0, sent, 10):
        sqs.send_message_batch(
            QueueUrl=queue,
            Entries=[{"Id": str(n), "MessageBody": f"message-{n}"} for n in range(start, start + 10)],
        )

    # WHEN consumers receive concurrently until the queue looks empty
    def consume(_: int) -> tuple[list[str], list[str]]:
        bodies: list[str] = []
        errors: list[str] = []
        while True:
            try:
                response = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            except ClientError as error:
                errors.append(_code(error))
                continue
            if not response.get("Messages"):
                return bodies, errors
            bodies.extend(message["Body"] for message in response["Messages"])

    results = _in_threads(THREADS, consume)

    # THEN every message was received exactly once, and no receive failed
    received = [body for bodies, _ in results for body in bodies]
    assert sorted(received) == sorted(f"message-{n}" for n in range(sent))
    assert [code for _, codes in results for code in codes] == []


def test_long_poll_wakes_promptly_after_a_send(sqs: Any) -> None:
    # GIVEN a long poll waiting on an empty queue
    queue = _queue(sqs)
    sender = _client_like(sqs)
    received_at: list[float] = []

    def poll() -> None:
        messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=10).get("Messages", [])
        assert len(messages) == 1
        received_at.append(time.monotonic())

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.5)

    # WHEN a message is sent
    sent_at = time.monotonic()
    sender.send_message(QueueUrl=queue, MessageBody="wake up")
    poller.join(15)

    # THEN the poll returns it promptly, not at the end of its wait
    assert received_at, "the long poll never returned"
    assert received_at[0] - sent_at < PROMPT_SECONDS


def test_a_batch_send_wakes_as_many_waiting_polls_as_it_sent_messages(sqs: Any) -> None:
    # GIVEN three long polls waiting on one empty queue, one message each at most
    queue = _queue(sqs)
    returned: list[tuple[float, int]] = []

    def poll() -> None:
        messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=10).get("Messages", [])
        returned.append((time.monotonic(), len(messages)))

    pollers = [threading.Thread(target=poll) for _ in range(3)]
    for poller in pollers:
        poller.start()
    time.sleep(0.5)

    # WHEN three messages are sent in one batch
    sent_at = time.monotonic()
    _client_like(sqs).send_message_batch(
        QueueUrl=queue, Entries=[{"Id": str(n), "MessageBody": f"message-{n}"} for n in range(3)]
    )
    for poller in pollers:
        poller.join(15)

    # THEN every poll returns promptly with the messages between them
    assert sum(count for _, count in returned) == 3
    assert max(at for at, _ in returned) - sent_at < PROMPT_SECONDS


def test_long_poll_returns_a_message_that_becomes_visible_while_it_waits(sqs: Any) -> None:
    # GIVEN a message received once and put back with a visibility timeout of 1 s
    queue = _queue(sqs)
    sqs.send_message(QueueUrl=queue, MessageBody="again")
    (message,) = sqs.receive_message(QueueUrl=queue)["Messages"]
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=1)

    # WHEN a long poll waits past that moment
    started = time.monotonic()
    messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5).get("Messages", [])

    # THEN it gets the message soon after it became visible
    assert [m["Body"] for m in messages] == ["again"]
    assert time.monotonic() - started < 1 + PROMPT_SECONDS


def test_long_poll_ends_empty_at_its_wait(sqs: Any) -> None:
    # GIVEN an empty queue
    queue = _queue(sqs)

    # WHEN a long poll of 1 s finds nothing
    started = time.monotonic()
    response = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)

    # THEN it answers an empty receive after about its wait
    assert response.get("Messages", []) == []
    assert 0.9 <= time.monotonic() - started < 1 + PROMPT_SECONDS


def test_a_long_poll_does_not_block_other_requests(sqs: Any, dynamodb: Any, table: str) -> None:
    # GIVEN a 5 s long poll on an empty queue
    queue = _queue(sqs)
    poller = threading.Thread(target=lambda: sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5))
    poller.start()
    time.sleep(0.3)

    # WHEN another thread writes an item meanwhile
    started = time.monotonic()
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "during-the-poll"}})
    elapsed = time.monotonic() - started
    sqs.send_message(QueueUrl=queue, MessageBody="end the poll")
    poller.join(10)

    # THEN the write did not wait for the poll
    assert elapsed < PROMPT_SECONDS


def test_a_queue_default_wait_does_not_block_other_requests(sqs: Any, dynamodb: Any, table: str) -> None:
    # GIVEN a receive without WaitTimeSeconds on a queue whose default wait is 2 s
    queue = _queue(sqs, ReceiveMessageWaitTimeSeconds="2")
    started = time.monotonic()
    poller = threading.Thread(target=lambda: sqs.receive_message(QueueUrl=queue))
    poller.start()
    time.sleep(0.3)

    # WHEN another thread writes an item meanwhile
    write_started = time.monotonic()
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "during-the-default-wait"}})
    elapsed = time.monotonic() - write_started
    poller.join(10)

    # THEN the write did not wait, and the receive still waited the queue's default
    assert elapsed < PROMPT_SECONDS
    assert time.monotonic() - started >= 1.9


def test_query_protocol_long_poll_wakes_on_a_send_and_blocks_no_one(
    backend: EmbeddedMotoBackend, sqs: Any, dynamodb: Any, table: str
) -> None:
    # GIVEN a long poll in SQS's older query protocol (a form body with Action=ReceiveMessage)
    queue = _queue(sqs)
    answers: list[tuple[int, str, float]] = []

    def poll() -> None:
        answers.append(_query_protocol_receive(backend, queue, wait_seconds=10))

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.5)

    # WHEN another thread writes an item, then a message is sent
    write_started = time.monotonic()
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "during-the-query-poll"}})
    write_elapsed = time.monotonic() - write_started
    sent_at = time.monotonic()
    sqs.send_message(QueueUrl=queue, MessageBody="query protocol")
    poller.join(15)

    # THEN the write did not wait, and the poll answered the message promptly, in XML
    assert write_elapsed < PROMPT_SECONDS
    assert answers, "the long poll never returned"
    status, body, returned_at = answers[0]
    assert status == 200, body
    assert "<Body>query protocol</Body>" in body
    assert returned_at - sent_at < PROMPT_SECONDS


def _query_protocol_receive(
    backend: EmbeddedMotoBackend, queue: str, wait_seconds: int
) -> tuple[int, str, float]:
    """A raw query-protocol ReceiveMessage: (status, body, when it returned)."""
    endpoint = urlsplit(str(backend.endpoint_url))
    connection = http.client.HTTPConnection(str(endpoint.hostname), endpoint.port, timeout=30)
    form = urlencode(
        {
            "Action": "ReceiveMessage",
            "Version": "2012-11-05",
            "QueueUrl": queue,
            "WaitTimeSeconds": wait_seconds,
        }
    )
    scope = f"testing/20260101/{backend.region}/sqs/aws4_request"
    connection.request(
        "POST",
        "/",
        body=form,
        headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "Authorization": f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=0",
        },
    )
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    return response.status, body, time.monotonic()


def _client_like(client: Any) -> Any:
    """Another client on the same endpoint (its own connection pool)."""
    return boto3.client(
        client.meta.service_model.service_name,
        endpoint_url=client.meta.endpoint_url,
        region_name=client.meta.region_name,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_a_malformed_receive_gets_moto_s_error_at_once(backend: EmbeddedMotoBackend, sqs: Any) -> None:
    # GIVEN JSON-protocol ReceiveMessage requests that are not receives we can wait on
    endpoint = urlsplit(str(backend.endpoint_url))
    scope = f"testing/20260101/{backend.region}/sqs/aws4_request"
    queue = _queue(sqs)
    statuses = []
    started = time.monotonic()
    for body in (b"{not json", b"[1, 2]", json.dumps({"QueueUrl": queue, "WaitTimeSeconds": 99}).encode()):
        # WHEN each is sent
        connection = http.client.HTTPConnection(str(endpoint.hostname), endpoint.port, timeout=10)
        connection.request(
            "POST",
            "/",
            body=body,
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": "AmazonSQS.ReceiveMessage",
                "Authorization": f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=0",
            },
        )
        response = connection.getresponse()
        response.read()
        connection.close()
        statuses.append(response.status)

    # THEN each gets an error answer without waiting, and the backend still serves
    assert all(400 <= status < 600 for status in statuses), statuses
    assert time.monotonic() - started < PROMPT_SECONDS
    assert sqs.get_queue_url(QueueName=queue.rsplit("/", 1)[-1])["QueueUrl"] == queue
