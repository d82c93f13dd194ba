"""What one failed TransactWriteItems costs the local backend as its table grows: moto's own vs the serialised one.

A keyed submit's replay is a transaction that fails on purpose (its key exists). moto's implementation copies
every table the transaction names; ``async_job_local.moto_transactions`` copies the items it names. Both run in
this process on one in-process moto, interleaved at each table size, so the ratio is measured in one run.

    .venv/bin/python bench/moto_transactions.py [--sizes 10,1000,3000] [--rounds 30]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from typing import Any

import boto3
from botocore.exceptions import ClientError
from moto import mock_aws

from async_job_local import moto_transactions


def _fill(client: Any, size: int) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for start in range(0, size, 25):
        batch = [
            {
                "PutRequest": {
                    "Item": {"pk": {"S": f"job#{i}"}, "status": {"S": "SUCCEEDED"}, "r": {"S": "x" * 200}}
                }
            }
            for i in range(start, min(size, start + 25))
        ]
        client.batch_write_item(RequestItems={name: batch})
    return name


def _replay(client: Any, table: str) -> float:
    """One keyed-submit replay: a new job and an existing key, cancelled; its wall time in ms."""
    items = [
        {"Put": {"TableName": table, "Item": {"pk": {"S": f"job#{uuid.uuid4()}"}}}},
        {
            "Put": {
                "TableName": table,
                "Item": {"pk": {"S": "job#0"}},
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
    ]
    started = time.perf_counter()
    try:
        client.transact_write_items(TransactItems=items)
    except ClientError as error:
        if error.response["Error"]["Code"] != "TransactionCanceledException":
            raise
    else:
        raise AssertionError("the replay was not cancelled")
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,1000,3000")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    moto_transactions.install()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        for size in (int(s) for s in args.sizes.split(",")):
            table = _fill(client, size)
            times: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(args.rounds):
                for serialised in (False, True):
                    moto_transactions.SERIALISED.active = serialised
                    try:
                        times[serialised].append(_replay(client, table))
                    finally:
                        moto_transactions.SERIALISED.active = False
            moto_ms, ours_ms = (statistics.median(times[flag]) for flag in (False, True))
            print(
                f"items={size} moto_ms={moto_ms:.1f} item_scoped_ms={ours_ms:.1f} "
                f"ratio={moto_ms / ours_ms:.1f}x rounds={args.rounds}"
            )


if __name__ == "__main__":
    main()
