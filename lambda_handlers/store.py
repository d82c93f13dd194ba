"""The status table: every write of the job state machine as one conditional DynamoDB request.

See ``docs/design.md`` ("State machine"). A write that loses its condition is an expected outcome (a duplicate
delivery, a run that was taken over) and comes back as a value; only AWS failures raise ``JobStoreError``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from lambda_handlers import clients
from lambda_handlers.models import Job, JobStatus, epoch_millis, epoch_seconds, format_timestamp, utc_now

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

__all__ = [
    "ClaimOutcome",
    "ClaimStatus",
    "DeadLetterOutcome",
    "JobExistsError",
    "JobStore",
    "JobStoreError",
    "WriteOutcome",
]

DEAD_LETTERED: Final = "DeadLettered"

_CONDITION_FAILED: Final = "ConditionalCheckFailedException"
# The job is still there: not deleted, not past its expiry (TTL deletion lags up to days).
_ALIVE: Final = "attribute_exists(pk) AND (attribute_not_exists(expiresAt) OR expiresAt > :nowSec)"
# Held by no live run: QUEUED, or RUNNING under a lease that ran out.
_TAKEABLE: Final = (
    "(#s = :queued OR (#s = :running AND (attribute_not_exists(leaseUntil) OR leaseUntil < :nowMs)))"
)
# Held by this run.
_FENCE: Final = "#s = :running AND runId = :run"


class JobStoreError(Exception):
    """DynamoDB could not be reached or refused a request for another reason than its condition."""


class JobExistsError(JobStoreError):
    """``create`` found an item with the same id already (a job id is never reused)."""


class ClaimStatus(Enum):
    """What ``JobStore.claim`` found."""

    #: The job is this run's now: run it.
    CLAIMED = "CLAIMED"
    #: The job is finished (a duplicate delivery): drop the message.
    FINISHED = "FINISHED"
    #: No such job, or past its expiry (an orphan message): drop the message.
    GONE = "GONE"
    #: Another run holds the job under a live lease: leave the message for later.
    BUSY = "BUSY"


@dataclass(frozen=True, slots=True)
class ClaimOutcome:
    """The result of ``JobStore.claim``.

    Attributes
    ----------
    status
        What was found (and so what to do with the message).
    job
        CLAIMED: the job as this run holds it now (``attempts`` counted, ``runId`` set); FINISHED and BUSY:
        the job as found; GONE: None.
    """

    status: ClaimStatus
    job: Job | None = None


class WriteOutcome(Enum):
    """The result of a write fenced by the run id (``complete``, ``record_failure``, ``report_progress``)."""

    #: The write was made.
    APPLIED = "APPLIED"
    #: This run no longer holds the job (taken over, or finished elsewhere): nothing was written.
    FENCED_OUT = "FENCED_OUT"


class DeadLetterOutcome(Enum):
    """The result of ``JobStore.mark_dead_lettered``."""

    #: The job is FAILED with error type ``DeadLettered`` now.
    MARKED = "MARKED"
    #: The job was finished already: nothing to do.
    FINISHED = "FINISHED"
    #: No such job, or past its expiry: nothing to do.
    GONE = "GONE"
    #: A run still holds the job under a live lease: look again later.
    BUSY = "BUSY"


class JobStore:
    """Reads and conditional writes of the status table.

    Parameters
    ----------
    table_name
        The table (name or ARN).
    client
        A DynamoDB client; None uses the execution environment's shared one (``clients.dynamodb()``),
        created on first use.

    Examples
    --------
    >>> store = JobStore("Jobs-Table")
    >>> outcome = store.claim(job_id, run_id=uuid.uuid4().hex, lease_until_ms=deadline_ms, now=utc_now())
    >>> outcome.status
    <ClaimStatus.CLAIMED: 'CLAIMED'>
    """

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        """The DynamoDB client in use."""
        return self._client if self._client is not None else clients.dynamodb()

    def create(self, job: Job) -> None:
        """Record a new job (PutItem, only if no item has its id).

        Raises
        ------
        JobExistsError
            An item with the job's id exists.
        JobStoreError
            DynamoDB failed.

        Examples
        --------
        >>> store.create(Job.new(job_id, owner="alice", payload_sha256=digest, now=utc_now(), ttl_seconds=3600))
        """
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=job.to_item(),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                raise JobExistsError(f"a job with id {job.job_id} exists already") from error
            raise _store_error("PutItem", job.job_id, error) from error
        except BotoCoreError as error:
            raise _store_error("PutItem", job.job_id, error) from error

    def delete_if_queued(self, job_id: str) -> bool:
        """Delete a job that no worker has touched yet (undoes ``create`` when the job cannot be enqueued).

        Returns
        -------
        bool
            Whether the item was deleted (False: it is gone, or no longer QUEUED).

        Raises
        ------
        JobStoreError
            DynamoDB failed.

        Examples
        --------
        >>> store.delete_if_queued(job_id)
        True
        """
        try:
            self.client.delete_item(
                TableName=self.table_name,
                Key=_key(job_id),
                ConditionExpression="#s = :queued",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":queued": {"S": JobStatus.QUEUED.value}},
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise _store_error("DeleteItem", job_id, error) from error
        except BotoCoreError as error:
            raise _store_error("DeleteItem", job_id, error) from error
        return True

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
            response = self.client.get_item(TableName=self.table_name, Key=_key(job_id), ConsistentRead=True)
        except (ClientError, BotoCoreError) as error:
            raise _store_error("GetItem", job_id, error) from error
        item = response.get("Item")
        if item is None:
            return None
        job = Job.from_item(item)
        return None if job.is_expired(now) else job

    def claim(
        self, job_id: str, run_id: str, lease_until_ms: int, now: dt.datetime | None = None
    ) -> ClaimOutcome:
        """Take a job for one run: QUEUED (or RUNNING under an expired lease) becomes RUNNING.

        One UpdateItem decides: on success it returns the new item (attempts counted), on a failed condition
        the item as it was, which tells a finished or missing job (drop the message) from a live run
        (retry later). The previous attempt's progress is cleared; its error stays as ``lastError``.

        Parameters
        ----------
        job_id
            The job.
        run_id
            This run's fencing token (a fresh ``uuid4().hex``); later writes must present it.
        lease_until_ms
            Epoch milliseconds until which this run may be alive (its Lambda deadline).
        now
            The current time; None for the clock's.

        Raises
        ------
        JobStoreError
            DynamoDB failed.

        Examples
        --------
        >>> store.claim(job_id, uuid.uuid4().hex, lease_until_ms=epoch_millis(utc_now()) + 900_000)
        ClaimOutcome(status=<ClaimStatus.CLAIMED: 'CLAIMED'>, job=Job(...))
        """
        now = now or utc_now()
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key=_key(job_id),
                UpdateExpression=(
                    "SET #s = :running, runId = :run, leaseUntil = :lease, updatedAt = :now, "
                    "attempts = if_not_exists(attempts, :zero) + :one "
                    "REMOVE progressPercent, progressMessage"
                ),
                ConditionExpression=f"{_ALIVE} AND {_TAKEABLE}",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":running": {"S": JobStatus.RUNNING.value},
                    ":queued": {"S": JobStatus.QUEUED.value},
                    ":run": {"S": run_id},
                    ":lease": {"N": str(lease_until_ms)},
                    ":now": {"S": format_timestamp(now)},
                    ":nowSec": {"N": str(epoch_seconds(now))},
                    ":nowMs": {"N": str(epoch_millis(now))},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise _store_error("UpdateItem (claim)", job_id, error) from error
            found = _old_job(error, now)
            if found is None:
                return ClaimOutcome(ClaimStatus.GONE)
            if found.status.is_terminal:
                return ClaimOutcome(ClaimStatus.FINISHED, found)
            return ClaimOutcome(ClaimStatus.BUSY, found)
        except BotoCoreError as error:
            raise _store_error("UpdateItem (claim)", job_id, error) from error
        return ClaimOutcome(ClaimStatus.CLAIMED, Job.from_item(response["Attributes"]))

    def complete(
        self, job_id: str, run_id: str, result_json: str, now: dt.datetime | None = None
    ) -> WriteOutcome:
        """Record the job's result: RUNNING (held by ``run_id``) becomes SUCCEEDED.

        Parameters
        ----------
        result_json
            The handler's return value as JSON text.

        Raises
        ------
        JobStoreError
            DynamoDB failed.

        Examples
        --------
        >>> store.complete(job_id, run_id, json.dumps({"rows": 12}))
        <WriteOutcome.APPLIED: 'APPLIED'>
        """
        return self._fenced(
            "complete",
            job_id,
            run_id,
            now,
            "SET #s = :succeeded, #r = :result, updatedAt = :now REMOVE runId, leaseUntil, errorType, errorMessage",
            {"#r": "result"},
            {":succeeded": {"S": JobStatus.SUCCEEDED.value}, ":result": {"S": result_json}},
        )

    def record_failure(
        self,
        job_id: str,
        run_id: str,
        error_type: str,
        message: str,
        final: bool,
        now: dt.datetime | None = None,
    ) -> WriteOutcome:
        """Record a failed attempt: FAILED when ``final``, else QUEUED again with the error as ``lastError``.

        The run's id and lease are removed either way; a retried job also loses the attempt's progress.

        Raises
        ------
        JobStoreError
            DynamoDB failed.

        Examples
        --------
        >>> store.record_failure(job_id, run_id, "RuntimeError", "boom", final=False)
        <WriteOutcome.APPLIED: 'APPLIED'>
        """
        values: dict[str, AttributeValueTypeDef] = {
            ":next": {"S": (JobStatus.FAILED if final else JobStatus.QUEUED).value},
            ":type": {"S": error_type},
            ":message": {"S": message},
        }
        expression = "SET #s = :next, errorType = :type, errorMessage = :message, updatedAt = :now "
        expression += (
            "REMOVE runId, leaseUntil"
            if final
            else "REMOVE runId, leaseUntil, progressPercent, progressMessage"
        )
        return self._fenced("record_failure", job_id, run_id, now, expression, {}, values)

    def report_progress(
        self, job_id: str, run_id: str, percent: float, message: str | None, now: dt.datetime | None = None
    ) -> WriteOutcome:
        """Record the running job's progress (``message`` None removes the previous message).

        Raises
        ------
        JobStoreError
            DynamoDB failed.

        Examples
        --------
        >>> store.report_progress(job_id, run_id, 40, "step 4/10")
        <WriteOutcome.APPLIED: 'APPLIED'>
        """
        values: dict[str, AttributeValueTypeDef] = {":percent": {"N": str(percent)}}
        expression = "SET progressPercent = :percent, updatedAt = :now"
        if message is None:
            expression += " REMOVE progressMessage"
        else:
            expression += ", progressMessage = :message"
            values[":message"] = {"S": message}
        return self._fenced("report_progress", job_id, run_id, now, expression, {}, values)

    def mark_dead_lettered(
        self, job_id: str, now: dt.datetime | None = None, receive_count: int | None = None
    ) -> DeadLetterOutcome:
        """Fail a job whose message was dead-lettered: QUEUED, or RUNNING under an expired lease, becomes FAILED.

        The error type is ``DeadLettered``. A job still held under a live lease is left alone (BUSY): its run
        may yet finish it.

        Parameters
        ----------
        receive_count
            The message's receive count, for the error message.

        Raises
        ------
        JobStoreError
            DynamoDB failed.

        Examples
        --------
        >>> store.mark_dead_lettered(job_id, receive_count=4)
        <DeadLetterOutcome.MARKED: 'MARKED'>
        """
        now = now or utc_now()
        received = "" if receive_count is None else f" (received {receive_count} times)"
        message = (
            f"The job's message was dead-lettered{received} without a recorded outcome: the worker crashed, ran "
            "out of memory or was stopped at its timeout before it could record the attempt."
        )
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=_key(job_id),
                UpdateExpression=(
                    "SET #s = :failed, errorType = :type, errorMessage = :message, updatedAt = :now "
                    "REMOVE runId, leaseUntil"
                ),
                ConditionExpression=f"{_ALIVE} AND {_TAKEABLE}",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":failed": {"S": JobStatus.FAILED.value},
                    ":queued": {"S": JobStatus.QUEUED.value},
                    ":running": {"S": JobStatus.RUNNING.value},
                    ":type": {"S": DEAD_LETTERED},
                    ":message": {"S": message},
                    ":now": {"S": format_timestamp(now)},
                    ":nowSec": {"N": str(epoch_seconds(now))},
                    ":nowMs": {"N": str(epoch_millis(now))},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise _store_error("UpdateItem (dead-lettered)", job_id, error) from error
            found = _old_job(error, now)
            if found is None:
                return DeadLetterOutcome.GONE
            if found.status.is_terminal:
                return DeadLetterOutcome.FINISHED
            return DeadLetterOutcome.BUSY
        except BotoCoreError as error:
            raise _store_error("UpdateItem (dead-lettered)", job_id, error) from error
        return DeadLetterOutcome.MARKED

    def _fenced(
        self,
        operation: str,
        job_id: str,
        run_id: str,
        now: dt.datetime | None,
        update: str,
        names: dict[str, str],
        values: dict[str, AttributeValueTypeDef],
    ) -> WriteOutcome:
        now = now or utc_now()
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=_key(job_id),
                UpdateExpression=update,
                ConditionExpression=_FENCE,
                ExpressionAttributeNames={"#s": "status", **names},
                ExpressionAttributeValues={
                    ":running": {"S": JobStatus.RUNNING.value},
                    ":run": {"S": run_id},
                    ":now": {"S": format_timestamp(now)},
                    **values,
                },
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return WriteOutcome.FENCED_OUT
            raise _store_error(f"UpdateItem ({operation})", job_id, error) from error
        except BotoCoreError as error:
            raise _store_error(f"UpdateItem ({operation})", job_id, error) from error
        return WriteOutcome.APPLIED


def _key(job_id: str) -> dict[str, AttributeValueTypeDef]:
    return {"pk": {"S": job_id}}


def _is_condition_failure(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == _CONDITION_FAILED)


def _old_job(error: ClientError, now: dt.datetime) -> Job | None:
    """The item a failed condition saw (ReturnValuesOnConditionCheckFailure=ALL_OLD); None if absent/expired."""
    item: Any = error.response.get("Item")
    if not item:
        return None
    job = Job.from_item(item)
    return None if job.is_expired(now) else job


def _store_error(operation: str, job_id: str, error: Exception) -> JobStoreError:
    return JobStoreError(f"{operation} of job {job_id} failed: {error}")
