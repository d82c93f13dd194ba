"""The idempotency key store: a job and the ``Idempotency-Key`` item that created it, written and undone together.

A key item (``lambda_handlers.idempotency.IdempotencyRecord``) points at its job and keeps its payload's digest
(``docs/design.md``, "Idempotency, cancellation and retries"). Both are written in one TransactWriteItems, and
undone in one, so that neither is left without the other.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from lambda_handlers.conditions import ALIVE, KEY_FREE, UNTOUCHED
from lambda_handlers.idempotency import IdempotencyRecord
from lambda_handlers.models import Job, JobStatus, epoch_seconds, utc_now
from lambda_handlers.status_table import (
    JobExistsError,
    KeyInUseError,
    StatusTable,
    cancellation_reasons,
    item_key,
    store_error,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

__all__ = ["IdempotencyKeyStore"]

#: Pauses before trying a transaction again that collided with a concurrent one on the same key.
_CONFLICT_PAUSES_SECONDS: Final = (0.05, 0.2)


class IdempotencyKeyStore(StatusTable):
    """A job and its idempotency key item: recorded together, undone together, a re-send recorded once.

    Examples
    --------
    >>> keys = IdempotencyKeyStore("Jobs-Table")
    >>> keys.create_keyed(job, IdempotencyRecord(key_id, job.job_id, digest, job.expires_at)) is None
    True
    """

    def create_keyed(
        self,
        job: Job,
        key: IdempotencyRecord,
        *,
        replacing: str | None = None,
        now: dt.datetime | None = None,
    ) -> IdempotencyRecord | None:
        """Record a new job and the idempotency key that created it, both or neither (one TransactWriteItems).

        The key item is written only where there is none for this caller and key, or only one past its expiry
        (its job has expired too); with ``replacing``, also over one that points at that job id (whose job is
        gone). A transaction that collides with a concurrent one on the same key is tried again, briefly.

        Returns
        -------
        IdempotencyRecord or None
            None: both were recorded. A record: the key is in use, here is what it holds; nothing was written.

        Raises
        ------
        JobExistsError
            An item with the job's id exists.
        KeyInUseError
            A concurrent request kept writing the same key.
        JobStoreError
            DynamoDB failed.

        Examples
        --------
        >>> found = store.create_keyed(job, IdempotencyRecord(key_id, job.job_id, digest, job.expires_at))
        >>> found is None  # recorded; else found.job_id is the job this key created before
        True
        """
        now = now or utc_now()
        condition = KEY_FREE
        values: dict[str, AttributeValueTypeDef] = {":nowSec": {"N": str(epoch_seconds(now))}}
        if replacing is not None:
            condition = f"({KEY_FREE} OR jobId = :gone)"
            values[":gone"] = {"S": replacing}
        pauses = iter(_CONFLICT_PAUSES_SECONDS)
        while True:
            try:
                self.client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self.table_name,
                                "Item": job.to_item(),
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                        {
                            "Put": {
                                "TableName": self.table_name,
                                "Item": key.to_item(),
                                "ConditionExpression": condition,
                                "ExpressionAttributeValues": values,
                                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                            }
                        },
                    ]
                )
            except ClientError as error:
                job_reason, key_reason = cancellation_reasons(error, 2)
                if key_reason.get("Code") == "ConditionalCheckFailed" and key_reason.get("Item"):
                    return IdempotencyRecord.from_item(key_reason["Item"])
                if job_reason.get("Code") == "ConditionalCheckFailed":
                    raise JobExistsError(f"a job with id {job.job_id} exists already") from error
                if "TransactionConflict" in (job_reason.get("Code"), key_reason.get("Code")):
                    pause = next(pauses, None)
                    if pause is None:
                        raise KeyInUseError(
                            f"TransactWriteItems of job {job.job_id} kept colliding on its idempotency key"
                        ) from error
                    time.sleep(pause)
                    continue
                raise store_error("TransactWriteItems", job.job_id, error) from error
            except BotoCoreError as error:
                raise store_error("TransactWriteItems", job.job_id, error) from error
            return None

    def forget_keyed(self, job_id: str, key_id: str) -> bool:
        """Undo ``create_keyed`` (both items, or neither): the job, if no worker touched it and no replay of its
        request enqueued it again (``confirm_enqueued``), and its key item.

        Returns
        -------
        bool
            Whether both were deleted (False: the job is gone, was claimed, or a replay enqueued it; or the key
            points elsewhere).

        Raises
        ------
        JobStoreError
            DynamoDB failed.

        Examples
        --------
        >>> store.forget_keyed(job_id, key_id)
        True
        """
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self.table_name,
                            "Key": item_key(job_id),
                            "ConditionExpression": f"{UNTOUCHED} AND attribute_not_exists(enqueueConfirmed)",
                            "ExpressionAttributeNames": {"#s": "status"},
                            "ExpressionAttributeValues": {
                                ":queued": {"S": JobStatus.QUEUED.value},
                                ":zero": {"N": "0"},
                            },
                        }
                    },
                    {
                        "Delete": {
                            "TableName": self.table_name,
                            "Key": item_key(key_id),
                            "ConditionExpression": "jobId = :job",
                            "ExpressionAttributeValues": {":job": {"S": job_id}},
                        }
                    },
                ]
            )
        except ClientError as error:
            reasons = cancellation_reasons(error, 2)
            if any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons):
                return False
            raise store_error("TransactWriteItems (forget)", job_id, error) from error
        except BotoCoreError as error:
            raise store_error("TransactWriteItems (forget)", job_id, error) from error
        return True

    def confirm_enqueued(self, job_id: str, now: dt.datetime | None = None) -> bool:
        """Record that a replay of the job's request sent its message again (``enqueueConfirmed``).

        From then on the first request's undo (``forget_keyed``) leaves the job alone, and later replays do not
        send another message.

        Returns
        -------
        bool
            Whether it was recorded (False: the job is gone, e.g. the first request's undo deleted it).

        Raises
        ------
        JobStoreError
            DynamoDB failed.

        Examples
        --------
        >>> store.confirm_enqueued(job_id)
        True
        """
        written = self.update(
            "confirm enqueued", job_id, "SET enqueueConfirmed = :true", ALIVE, {":true": {"BOOL": True}}, now
        )
        return written.applied
