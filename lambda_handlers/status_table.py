"""The status table's access layer: its errors, its reads, and the one conditional UpdateItem every write uses.

``StatusTable.update`` is the primitive: a conditional UpdateItem that returns the job as written, or, when the
condition fails, the job as DynamoDB found it (``ReturnValuesOnConditionCheckFailure``), so that the caller can
decide again on it without another read. The job store (``lambda_handlers.store``) and the idempotency key
store (``lambda_handlers.key_store``) build on it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from lambda_handlers import clients
from lambda_handlers.models import Job, epoch_millis, epoch_seconds, format_timestamp, utc_now

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "JobExistsError",
    "JobStoreError",
    "KeyInUseError",
    "StatusTable",
    "Update",
]

#: How long a finished job stays readable when the store is built without ``ttl_seconds`` (the construct's
#: default ``job_ttl``).
DEFAULT_TTL_SECONDS: Final = 7 * 86_400
#: DynamoDB error codes that say "try again" (throttling, a server fault, a colliding transaction); any other
#: refusal (a validation error, a missing table, denied access) repeats on every try.
_TRANSIENT_CODES: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "TransactionConflictException",
        "TransactionInProgressException",
        "LimitExceededException",
    }
)


_CONDITION_FAILED: Final = "ConditionalCheckFailedException"
_TRANSACTION_CANCELLED: Final = "TransactionCanceledException"
#: The attribute names the expressions write as placeholders.
_NAMES: Final = {"#s": "status", "#o": "owner", "#r": "result"}


class JobStoreError(Exception):
    """DynamoDB could not be reached or refused a request for another reason than its condition.

    Attributes
    ----------
    transient
        Whether the same request may succeed if tried again (a throttle, a server fault, no connection);
        False for a refusal that repeats (a validation error such as an item over 400 KB, a missing table).
    """

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class JobExistsError(JobStoreError):
    """``create`` found an item with the same id already (a job id is never reused)."""


class KeyInUseError(JobStoreError):
    """``create_keyed`` kept colliding with a concurrent request that writes the same idempotency key."""


@dataclass(frozen=True, slots=True)
class Update:
    """The result of ``StatusTable.update``.

    Attributes
    ----------
    applied
        Whether the condition held and the write was made.
    job
        Applied: the job as written (None with ``return_new=False``). Not applied: the job as found (None:
        absent, or past its expiry).
    """

    applied: bool
    job: Job | None = None


class StatusTable:
    """The status table: reads, and the conditional update every write of a job is made with.

    Parameters
    ----------
    table_name
        The table (name or ARN).
    client
        A DynamoDB client; None uses the execution environment's shared one (``clients.dynamodb()``),
        created on first use.
    ttl_seconds
        How long a finished job stays readable: every write that ends a job sets its ``expiresAt`` this far
        from now (``ASYNC_JOB_TTL_SECONDS``; default 7 days).

    Examples
    --------
    >>> StatusTable("Jobs-Table").get(job_id).status
    <JobStatus.QUEUED: 'QUEUED'>
    """

    def __init__(
        self, table_name: str, client: DynamoDBClient | None = None, *, ttl_seconds: int = DEFAULT_TTL_SECONDS
    ) -> None:
        self.table_name = table_name
        self.ttl_seconds = ttl_seconds
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        """The DynamoDB client in use."""
        return self._client if self._client is not None else clients.dynamodb()

    def get(self, job_id: str, now: dt.datetime | None = None) -> Job | None:
        """Read a job (GetItem, strongly consistent).

        Returns
        -------
        Job or None
            None when there is no such item, or it is past its ``expiresAt`` at ``now``.

        Raises
        ------
        JobStoreError
            DynamoDB failed.
        ItemError
            The item is malformed.

        Examples
        --------
        >>> store.get(job_id).status
        <JobStatus.QUEUED: 'QUEUED'>
        """
        now = now or utc_now()
        try:
            response = self.client.get_item(
                TableName=self.table_name, Key=item_key(job_id), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as error:
            raise store_error("GetItem", job_id, error) from error
        item = response.get("Item")
        if item is None:
            return None
        job = Job.from_item(item)
        return None if job.is_expired(now) else job

    def update(
        self,
        operation: str,
        job_id: str,
        update: str,
        condition: str,
        values: dict[str, AttributeValueTypeDef],
        now: dt.datetime | None = None,
        *,
        return_new: bool = True,
    ) -> Update:
        """One conditional UpdateItem; the job as written, or, when the condition failed, the job as found.

        The time placeholders (``:now``,
        ``:nowSec``, ``:nowMs``, and ``:expires``: ``ttl_seconds`` from now) and the attribute names (``#s``
        status, ``#o`` owner, ``#r`` result) are filled in where the expressions use them.

        Parameters
        ----------
        operation
            What the write is, for the error message.
        return_new
            False: the job as written is not returned (a large result need not travel back).

        Raises
        ------
        JobStoreError
            DynamoDB failed for another reason than the condition.

        Examples
        --------
        >>> table.update("confirm", job_id, "SET enqueueConfirmed = :true", ALIVE, {":true": {"BOOL": True}})
        Update(applied=True, job=Job(...))
        """
        now = now or utc_now()
        clock: dict[str, AttributeValueTypeDef] = {
            ":now": {"S": format_timestamp(now)},
            ":nowSec": {"N": str(epoch_seconds(now))},
            ":nowMs": {"N": str(epoch_millis(now))},
            ":expires": {"N": str(epoch_seconds(now) + self.ttl_seconds)},
        }
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key=item_key(job_id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=_used(_NAMES, update, condition),
                ExpressionAttributeValues=_used({**clock, **values}, update, condition),
                ReturnValues="ALL_NEW" if return_new else "NONE",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if is_condition_failure(error):
                return Update(applied=False, job=_old_job(error, now))
            raise store_error(f"UpdateItem ({operation})", job_id, error) from error
        except BotoCoreError as error:
            raise store_error(f"UpdateItem ({operation})", job_id, error) from error
        attributes = response.get("Attributes")
        return Update(applied=True, job=Job.from_item(attributes) if return_new and attributes else None)


def item_key(item_id: str) -> dict[str, AttributeValueTypeDef]:
    """The key of the item with partition key ``item_id`` (a job id, or a key item's id)."""
    return {"pk": {"S": item_id}}


def is_condition_failure(error: ClientError) -> bool:
    """Whether a request failed only its condition."""
    return bool(error.response.get("Error", {}).get("Code") == _CONDITION_FAILED)


def cancellation_reasons(error: ClientError, count: int) -> list[dict[str, Any]]:
    """The per-item reasons of a cancelled transaction (empty ones for another error), ``count`` of them."""
    reasons: list[dict[str, Any]] = []
    if error.response.get("Error", {}).get("Code") == _TRANSACTION_CANCELLED:
        reasons = [dict(reason) for reason in error.response.get("CancellationReasons") or []]
    return (reasons + [{}] * count)[:count]


def store_error(operation: str, job_id: str, error: Exception) -> JobStoreError:
    """The ``JobStoreError`` for a failed request: transient unless DynamoDB refused it for good."""
    transient = True
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        transient = code in _TRANSIENT_CODES or status >= 500
    return JobStoreError(f"{operation} of job {job_id} failed: {error}", transient=transient)


def _used(values: dict[str, Any], *expressions: str) -> dict[str, Any]:
    """The placeholders of ``values`` that ``expressions`` use (DynamoDB refuses unused ones)."""
    text = " ".join(expressions)
    return {name: value for name, value in values.items() if re.search(re.escape(name) + r"(?!\w)", text)}


def _old_job(error: ClientError, now: dt.datetime) -> Job | None:
    """The item a failed condition saw (ReturnValuesOnConditionCheckFailure=ALL_OLD); None if absent/expired."""
    item: Any = error.response.get("Item")
    if not item:
        return None
    job = Job.from_item(item)
    return None if job.is_expired(now) else job
