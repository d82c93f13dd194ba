"""The serialised backend's TransactWriteItems answers and writes exactly what moto's own does.

Each case runs the same calls twice on fresh tables in one in-process moto: once through moto's implementation,
once through ``async_job_local.moto_transactions`` (the calling thread marked as serialised, as
``SerialisedMotoApp`` marks it). The answers (or errors, with their cancellation reasons) and the tables'
contents afterwards must be equal. A third run on the embedded backend over HTTP checks that it is the one
serving there, and that a failed transaction next to a large table leaves that table alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from async_job_local import moto_transactions
from async_job_local.backend import EmbeddedMotoBackend

REGION = "us-east-1"


@pytest.fixture
def client() -> Iterator[Any]:
    """In-process moto, per test: a ``mock_aws`` left active would also catch the embedded backend's clients."""
    moto_transactions.install()
    with mock_aws():
        yield boto3.client("dynamodb", region_name=REGION)


def _table(client: Any) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.put_item(TableName=name, Item={"pk": {"S": "job#1"}, "status": {"S": "QUEUED"}, "n": {"N": "1"}})
    client.put_item(TableName=name, Item={"pk": {"S": "key#a"}, "jobId": {"S": "1"}})
    return name


def _outcome(
    client: Any, actions: Callable[[str], list[dict[str, Any]]], serialised: bool
) -> tuple[Any, Any]:
    table = _table(client)
    moto_transactions.SERIALISED.active = serialised
    try:
        client.transact_write_items(TransactItems=actions(table))
        answer: Any = "ok"
    except ClientError as error:
        answer = (error.response["Error"]["Code"], error.response.get("CancellationReasons"))
    finally:
        moto_transactions.SERIALISED.active = False
    items = sorted(client.scan(TableName=table)["Items"], key=lambda item: item["pk"]["S"])
    return answer, items


def _put(table: str, pk: str, condition: str | None = None, **extra: Any) -> dict[str, Any]:
    action: dict[str, Any] = {"TableName": table, "Item": {"pk": {"S": pk}, "status": {"S": "NEW"}}, **extra}
    if condition:
        action["ConditionExpression"] = condition
    return {"Put": action}


CASES: dict[str, Callable[[str], list[dict[str, Any]]]] = {
    "all pass": lambda t: [
        _put(t, "job#2", "attribute_not_exists(pk)"),
        _put(t, "key#b", "attribute_not_exists(pk)"),
    ],
    "replay of a key (ALL_OLD)": lambda t: [
        _put(t, "job#2", "attribute_not_exists(pk)"),
        _put(t, "key#a", "attribute_not_exists(pk)", ReturnValuesOnConditionCheckFailure="ALL_OLD"),
    ],
    "failure without ALL_OLD": lambda t: [_put(t, "key#a", "attribute_not_exists(pk)"), _put(t, "job#2")],
    "update then failing check": lambda t: [
        {
            "Update": {
                "TableName": t,
                "Key": {"pk": {"S": "job#1"}},
                "UpdateExpression": "SET #s = :s ADD n :one",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {":s": {"S": "RUNNING"}, ":one": {"N": "1"}},
            }
        },
        {
            "ConditionCheck": {
                "TableName": t,
                "Key": {"pk": {"S": "key#a"}},
                "ConditionExpression": "jobId = :other",
                "ExpressionAttributeValues": {":other": {"S": "2"}},
            }
        },
    ],
    "delete and update pass": lambda t: [
        {
            "Delete": {
                "TableName": t,
                "Key": {"pk": {"S": "key#a"}},
                "ConditionExpression": "attribute_exists(pk)",
            }
        },
        {
            "Update": {
                "TableName": t,
                "Key": {"pk": {"S": "job#1"}},
                "UpdateExpression": "REMOVE n",
                "ConditionExpression": "#s = :q",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {":q": {"S": "QUEUED"}},
            }
        },
    ],
    "delete of a missing item, then a failure": lambda t: [
        {"Delete": {"TableName": t, "Key": {"pk": {"S": "job#9"}}}},
        {
            "Delete": {
                "TableName": t,
                "Key": {"pk": {"S": "job#1"}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
    ],
    "two actions on one item": lambda t: [_put(t, "job#2"), _put(t, "job#2")],
}


@pytest.mark.parametrize("case", CASES)
def test_same_answer_and_table_as_moto(client: Any, case: str) -> None:
    moto_answer = _outcome(client, CASES[case], serialised=False)
    ours = _outcome(client, CASES[case], serialised=True)
    assert ours == moto_answer


def test_a_cancelled_transaction_writes_nothing(client: Any) -> None:
    answer, items = _outcome(client, CASES["update then failing check"], serialised=True)
    assert answer[0] == "TransactionCanceledException"
    assert [reason["Code"] for reason in answer[1]] == ["None", "ConditionalCheckFailed"]
    job = next(item for item in items if item["pk"]["S"] == "job#1")
    assert job == {"pk": {"S": "job#1"}, "status": {"S": "QUEUED"}, "n": {"N": "1"}}


def test_the_embedded_backend_keeps_a_large_table_through_failed_transactions() -> None:
    backend = EmbeddedMotoBackend()
    try:
        dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=backend.endpoint_url,
            region_name=backend.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        table = _table(dynamodb)
        for start in range(0, 500, 25):
            dynamodb.batch_write_item(
                RequestItems={
                    table: [
                        {"PutRequest": {"Item": {"pk": {"S": f"x#{i}"}}}} for i in range(start, start + 25)
                    ]
                }
            )
        for _ in range(20):
            with pytest.raises(ClientError) as failed:
                dynamodb.transact_write_items(TransactItems=CASES["replay of a key (ALL_OLD)"](table))
            reasons = failed.value.response["CancellationReasons"]
            assert reasons[1]["Item"]["jobId"] == {"S": "1"}
        assert dynamodb.scan(TableName=table, Select="COUNT")["Count"] == 502
        assert "job#2" not in {item["pk"]["S"] for item in dynamodb.scan(TableName=table)["Items"]}
        # moto's state is per process: leave nothing behind for the session's later runtimes
        dynamodb.delete_table(TableName=table)
    finally:
        backend.close()
