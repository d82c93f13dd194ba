"""The status table: every write of the job state machine as one conditional DynamoDB request.

See ``docs/design.md`` ("State machine"). A write that loses its condition is an expected outcome (a duplicate
delivery, a run that was taken over) and comes back as a value; only AWS failures raise ``JobStoreError``.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from lambda_handlers import clients
from lambda_handlers.idempotency import IdempotencyRecord
from lambda_handlers.models import Job, JobStatus, epoch_millis, epoch_seconds, format_timestamp, utc_now
from lambda_handlers.transitions import (
    RETRY_EARLY_TOLERANCE_MS,
    ClaimDecision,
    DeadLetterDecision,
    decide_claim,
    decide_dead_letter,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

__all__ = [
    "CancelOutcome",
    "CancelStatus",
    "ClaimOutcome",
    "ClaimStatus",
    "DeadLetterOutcome",
    "DeadLetterResult",
    "JobExistsError",
    "JobStore",
    "JobStoreError",
    "KeyInUseError",
    "WriteOutcome",
]

DEAD_LETTERED: Final = "DeadLettered"
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
# The job is still there: not deleted, not past its expiry (TTL deletion lags up to days).
_ALIVE: Final = "attribute_exists(pk) AND (attribute_not_exists(expiresAt) OR expiresAt > :nowSec)"
# Held by no live run: QUEUED, or RUNNING under a lease that ran out.
_TAKEABLE: Final = (
    "(#s = :queued OR (#s = :running AND (attribute_not_exists(leaseUntil) OR leaseUntil < :nowMs)))"
)
# May run now (with ``_OWN_MESSAGE``: ``transitions.decide_claim`` is CLAIM): held by no live run, and not
# waiting out a retry's backoff (``:retryBy`` is now plus the early tolerance).
_RUNNABLE: Final = (
    "((#s = :queued AND (attribute_not_exists(retryAt) OR retryAt <= :retryBy)) OR "
    "(#s = :running AND (attribute_not_exists(leaseUntil) OR leaseUntil < :nowMs)))"
)
# Not bound to another message than :mid.
_OWN_MESSAGE: Final = "(attribute_not_exists(messageId) OR messageId = :mid)"
_TAKEABLE_VALUES: Final[dict[str, AttributeValueTypeDef]] = {
    ":queued": {"S": JobStatus.QUEUED.value},
    ":running": {"S": JobStatus.RUNNING.value},
}
# Ends a job CANCELLED, to expire ``ttl_seconds`` from now, and drops what a run held.
_CANCEL: Final = (
    "SET #s = :cancelled, updatedAt = :now, expiresAt = :expires "
    "REMOVE runId, leaseUntil, cancelRequested, retryAt"
)
# QUEUED and never claimed (so no worker has its message).
_UNTOUCHED: Final = "#s = :queued AND attempts = :zero"
# Held by this run.
_FENCE: Final = "#s = :running AND runId = :run"
# Nobody asked to cancel the job.
_NOT_CANCELLED: Final = "attribute_not_exists(cancelRequested)"
# A key item that is absent or past its expiry (then it may be overwritten: its job has expired too).
_KEY_FREE: Final = "(attribute_not_exists(pk) OR expiresAt <= :nowSec)"
_TRANSACTION_CANCELLED: Final = "TransactionCanceledException"
#: Pauses before trying a transaction again that collided with a concurrent one on the same key.
_CONFLICT_PAUSES_SECONDS: Final = (0.05, 0.2)


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
    #: The job's owner had asked to cancel it: it is CANCELLED now, without running: drop the message.
    CANCELLED = "CANCELLED"
    #: The job belongs to another message of its own: this one is a duplicate: drop it.
    DUPLICATE = "DUPLICATE"
    #: The job's own message came back before its retry's backoff ended: deliver it again when it ends.
    DEFERRED = "DEFERRED"


@dataclass(frozen=True, slots=True)
class ClaimOutcome:
    """The result of ``JobStore.claim``.

    Attributes
    ----------
    status
        What was found (and so what to do with the message).
    job
        CLAIMED: the job as this run holds it now (``attempts`` counted, ``runId`` set); FINISHED, BUSY,
        DUPLICATE, DEFERRED and CANCELLED: the job as found; GONE: None.
    """

    status: ClaimStatus
    job: Job | None = None


class WriteOutcome(Enum):
    """The result of a write fenced by the run id (``complete``, ``record_failure``, ``report_progress``,
    ``cancel_run``)."""

    #: The write was made.
    APPLIED = "APPLIED"
    #: This run no longer holds the job (taken over, or finished elsewhere): nothing was written.
    FENCED_OUT = "FENCED_OUT"
    #: ``report_progress`` only: the progress was written, and the owner asks to cancel the job.
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    #: ``record_failure`` of a retryable failure only: the owner had asked to cancel the job, so instead of
    #: being retried it is CANCELLED now.
    CANCELLED = "CANCELLED"


class CancelStatus(Enum):
    """What ``JobStore.cancel`` (``DELETE /jobs/{id}``) did."""

    #: The job was QUEUED (or held by a run that is dead): it is CANCELLED now and will not run.
    CANCELLED = "CANCELLED"
    #: A run holds the job: it is asked to stop (``cancelRequested``), and ends CANCELLED when it does.
    REQUESTED = "REQUESTED"
    #: The job is finished already: nothing was changed.
    FINISHED = "FINISHED"
    #: No such job for this owner (absent, past its expiry, or someone else's): nothing was changed.
    NOT_FOUND = "NOT_FOUND"


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """The result of ``JobStore.cancel``: what was done, and the job as it is now (None for NOT_FOUND)."""

    status: CancelStatus
    job: Job | None = None


class DeadLetterOutcome(Enum):
    """The result of ``JobStore.mark_dead_lettered``."""

    #: The job is FAILED with error type ``DeadLettered`` now.
    MARKED = "MARKED"
    #: The job belongs to another, live message of its own: this one was a duplicate; nothing to do.
    DUPLICATE = "DUPLICATE"
    #: The job's owner had asked to cancel it: it is CANCELLED now.
    CANCELLED = "CANCELLED"
    #: The job was finished already: nothing to do.
    FINISHED = "FINISHED"
    #: No such job, or past its expiry: nothing to do.
    GONE = "GONE"
    #: A run still holds the job under a live lease: look again later.
    BUSY = "BUSY"


@dataclass(frozen=True, slots=True)
class DeadLetterResult:
    """The result of ``JobStore.dead_letter``: what was done, and the job (as written, or as found; None: GONE)."""

    outcome: DeadLetterOutcome
    job: Job | None = None


class JobStore:
    """Reads and conditional writes of the status table.

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
    >>> store = JobStore("Jobs-Table")
    >>> outcome = store.claim(job_id, run_id=uuid.uuid4().hex, lease_until_ms=deadline_ms, now=utc_now())
    >>> outcome.status
    <ClaimStatus.CLAIMED: 'CLAIMED'>
    """

    def __init__(
        self, table_name: str, client: DynamoDBClient | None = None, *, ttl_seconds: int = DEFAULT_TTL_SECONDS
    ) -> None:
        self.table_name = table_name
        self.ttl_seconds = ttl_seconds
        self._client = client

    def _expires(self, now: dt.datetime) -> AttributeValueTypeDef:
        """``expiresAt`` of a job that ends at ``now``."""
        return {"N": str(epoch_seconds(now) + self.ttl_seconds)}

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
                ConditionExpression=_UNTOUCHED,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":queued": {"S": JobStatus.QUEUED.value}, ":zero": {"N": "0"}},
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
        condition = _KEY_FREE
        values: dict[str, AttributeValueTypeDef] = {":nowSec": {"N": str(epoch_seconds(now))}}
        if replacing is not None:
            condition = f"({_KEY_FREE} OR jobId = :gone)"
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
                job_reason, key_reason = _cancellation_reasons(error, 2)
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
                raise _store_error("TransactWriteItems", job.job_id, error) from error
            except BotoCoreError as error:
                raise _store_error("TransactWriteItems", job.job_id, error) from error
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
                            "Key": _key(job_id),
                            "ConditionExpression": f"{_UNTOUCHED} AND attribute_not_exists(enqueueConfirmed)",
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
                            "Key": _key(key_id),
                            "ConditionExpression": "jobId = :job",
                            "ExpressionAttributeValues": {":job": {"S": job_id}},
                        }
                    },
                ]
            )
        except ClientError as error:
            reasons = _cancellation_reasons(error, 2)
            if any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons):
                return False
            raise _store_error("TransactWriteItems (forget)", job_id, error) from error
        except BotoCoreError as error:
            raise _store_error("TransactWriteItems (forget)", job_id, error) from error
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
        done, _ = self._update_or_old(
            "confirm enqueued", job_id, "SET enqueueConfirmed = :true", _ALIVE, {":true": {"BOOL": True}}, now
        )
        return done is not None

    def claim(
        self,
        job_id: str,
        run_id: str,
        lease_until_ms: int,
        now: dt.datetime | None = None,
        *,
        message_id: str | None = None,
    ) -> ClaimOutcome:
        """Take a job for one run of message ``message_id``: the job becomes RUNNING, bound to that message.

        One UpdateItem decides (its condition is ``transitions.decide_claim``'s CLAIM): on success it returns
        the new item (attempts counted), on a failed condition the item as it was, from which
        ``decide_claim`` tells a finished or missing job, a duplicate message, a live run and an early retry
        apart. The previous attempt's progress is cleared; its error stays as ``lastError``. A job whose owner
        asked to cancel it is not run: it becomes CANCELLED (a second UpdateItem).

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
        message_id
            The SQS message id of the delivery; the job keeps it until it is claimed by it again, so that
            another message of the same job is known for a duplicate.

        Raises
        ------
        JobStoreError
            DynamoDB failed.

        Examples
        --------
        >>> store.claim(job_id, uuid.uuid4().hex, epoch_millis(utc_now()) + 900_000, message_id=record_id)
        ClaimOutcome(status=<ClaimStatus.CLAIMED: 'CLAIMED'>, job=Job(...))
        """
        now = now or utc_now()
        bind, runnable = ", messageId = :mid", f"{_OWN_MESSAGE} AND {_RUNNABLE}"
        if message_id is None:  # a claim tied to no message (a tool, a test): it binds nothing
            bind, runnable = "", _RUNNABLE
        done, found = self._update_or_old(
            "claim",
            job_id,
            f"SET #s = :running, runId = :run, leaseUntil = :lease, updatedAt = :now{bind}, "
            "attempts = if_not_exists(attempts, :zero) + :one "
            "REMOVE progressPercent, progressMessage, retryAt",
            f"{_ALIVE} AND {_NOT_CANCELLED} AND {runnable}",
            {
                **_TAKEABLE_VALUES,
                ":run": {"S": run_id},
                ":lease": {"N": str(lease_until_ms)},
                ":mid": {"S": message_id or ""},
                ":retryBy": {"N": str(epoch_millis(now) + RETRY_EARLY_TOLERANCE_MS)},
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
            },
            now,
        )
        if done is not None:
            return ClaimOutcome(ClaimStatus.CLAIMED, done)
        decision = decide_claim(found, message_id, now)
        if decision is ClaimDecision.CANCEL:
            cancelled = self._cancel_unheld(job_id, now)
            if cancelled is not None:
                return ClaimOutcome(ClaimStatus.CANCELLED, cancelled)
            return ClaimOutcome(ClaimStatus.BUSY, found)  # it changed meanwhile: look again later
        status = _CLAIM_STATUS.get(decision, ClaimStatus.BUSY)  # CLAIM here: it changed meanwhile
        return ClaimOutcome(status, found)

    def complete(
        self, job_id: str, run_id: str, result_json: str, now: dt.datetime | None = None
    ) -> WriteOutcome:
        """Record the job's result: RUNNING (held by ``run_id``) becomes SUCCEEDED, readable ``ttl_seconds``.

        A job whose owner asked to cancel it while it ran succeeds all the same: its work is done.

        Parameters
        ----------
        result_json
            The handler's return value as JSON text.

        Raises
        ------
        JobStoreError
            DynamoDB failed (``transient`` False for a refusal that would repeat, e.g. an item over 400 KB).

        Examples
        --------
        >>> store.complete(job_id, run_id, json.dumps({"rows": 12}))
        <WriteOutcome.APPLIED: 'APPLIED'>
        """
        now = now or utc_now()
        outcome, _ = self._fenced(
            "complete",
            job_id,
            run_id,
            now,
            "SET #s = :succeeded, #r = :result, updatedAt = :now, expiresAt = :expires "
            "REMOVE runId, leaseUntil, errorType, errorMessage, cancelRequested",
            {"#r": "result"},
            {
                ":succeeded": {"S": JobStatus.SUCCEEDED.value},
                ":result": {"S": result_json},
                ":expires": self._expires(now),
            },
        )
        return outcome

    def record_failure(
        self,
        job_id: str,
        run_id: str,
        error_type: str,
        message: str,
        final: bool,
        now: dt.datetime | None = None,
        *,
        retry_at_ms: int | None = None,
    ) -> WriteOutcome:
        """Record a failed attempt: FAILED when ``final``, else QUEUED again with the error as ``lastError``.

        The run's id and lease are removed either way, and so is the attempt's progress. A retried job keeps
        its message id and gets ``retryAt`` (``retry_at_ms``): until then only that message may run it again.
        A FAILED job expires ``ttl_seconds`` from now. A retryable failure of a job whose owner asked to cancel
        it is not retried: the job becomes CANCELLED (``WriteOutcome.CANCELLED``; a second UpdateItem).

        Raises
        ------
        JobStoreError
            DynamoDB failed.

        Examples
        --------
        >>> store.record_failure(job_id, run_id, "RuntimeError", "boom", final=False, retry_at_ms=later_ms)
        <WriteOutcome.APPLIED: 'APPLIED'>
        """
        now = now or utc_now()
        values: dict[str, AttributeValueTypeDef] = {
            ":next": {"S": (JobStatus.FAILED if final else JobStatus.QUEUED).value},
            ":type": {"S": error_type},
            ":message": {"S": message},
        }
        expression = "SET #s = :next, errorType = :type, errorMessage = :message, updatedAt = :now"
        if final:
            values[":expires"] = self._expires(now)
            expression += ", expiresAt = :expires REMOVE runId, leaseUntil, cancelRequested, progressPercent, progressMessage"
            return self._fenced("record_failure", job_id, run_id, now, expression, {}, values)[0]
        if retry_at_ms is not None:
            values[":retryAt"] = {"N": str(retry_at_ms)}
            expression += ", retryAt = :retryAt"
        expression += " REMOVE runId, leaseUntil, progressPercent, progressMessage"
        outcome, found = self._fenced(
            "record_failure", job_id, run_id, now, expression, {}, values, condition=_NOT_CANCELLED
        )
        if (
            outcome is WriteOutcome.FENCED_OUT
            and found is not None
            and found.cancel_requested
            and found.status is JobStatus.RUNNING
            and found.run_id == run_id
        ):
            # Still this run's, but its owner wants it cancelled: stop here instead of retrying.
            outcome = self.cancel_run(job_id, run_id, now)
            return WriteOutcome.CANCELLED if outcome is WriteOutcome.APPLIED else outcome
        return outcome

    def report_progress(
        self, job_id: str, run_id: str, percent: float, message: str | None, now: dt.datetime | None = None
    ) -> WriteOutcome:
        """Record the running job's progress (``message`` None removes the previous message).

        The same UpdateItem tells whether the owner asks to cancel the job (``WriteOutcome.CANCEL_REQUESTED``).

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
        outcome, job = self._fenced(
            "report_progress", job_id, run_id, now, expression, {}, values, return_new=True
        )
        if outcome is WriteOutcome.APPLIED and job is not None and job.cancel_requested:
            return WriteOutcome.CANCEL_REQUESTED
        return outcome

    def cancel_run(
        self, job_id: str, run_id: str, now: dt.datetime | None = None, message: str | None = None
    ) -> WriteOutcome:
        """End the job CANCELLED: RUNNING (held by ``run_id``) becomes CANCELLED (the handler stopped on request).

        Parameters
        ----------
        message
            What the handler said (``JobCancelledError``'s message), shown as ``cancellation.message``.

        Raises
        ------
        JobStoreError
            DynamoDB failed.

        Examples
        --------
        >>> store.cancel_run(job_id, run_id, message="stopped after 3 of 10 chunks")
        <WriteOutcome.APPLIED: 'APPLIED'>
        """
        now = now or utc_now()
        values: dict[str, AttributeValueTypeDef] = {
            ":cancelled": {"S": JobStatus.CANCELLED.value},
            ":expires": self._expires(now),
        }
        update = _CANCEL
        if message:
            values[":reason"] = {"S": message}
            update = update.replace("expiresAt = :expires", "expiresAt = :expires, cancelMessage = :reason")
        return self._fenced("cancel_run", job_id, run_id, now, update, {}, values)[0]

    def cancel(self, job_id: str, owner: str, now: dt.datetime | None = None) -> CancelOutcome:
        """Cancel ``owner``'s job (``DELETE /jobs/{id}``).

        QUEUED (or RUNNING under a lease that ran out: its run is dead) becomes CANCELLED at once; RUNNING under
        a live lease gets ``cancelRequested``, which its handler sees; a finished job is left alone. Usually one
        UpdateItem (whose failed condition returns the job as it was), two for a running job.

        Raises
        ------
        JobStoreError
            DynamoDB failed, or the job kept changing under the request.

        Examples
        --------
        >>> store.cancel(job_id, owner="arn:aws:iam::123456789012:user/alice").status
        <CancelStatus.CANCELLED: 'CANCELLED'>
        """
        now = now or utc_now()
        for _ in range(3):
            done, found = self._update_or_old(
                "cancel",
                job_id,
                _CANCEL,
                f"{_ALIVE} AND #o = :owner AND {_TAKEABLE}",
                {
                    ":cancelled": {"S": JobStatus.CANCELLED.value},
                    **_TAKEABLE_VALUES,
                    ":owner": {"S": owner},
                },
                now,
            )
            if done is not None:
                return CancelOutcome(CancelStatus.CANCELLED, done)
            if found is None or found.owner != owner:
                return CancelOutcome(CancelStatus.NOT_FOUND)
            if found.status.is_terminal:
                return CancelOutcome(CancelStatus.FINISHED, found)
            if found.is_takeable(now):
                continue  # it changed between the two looks; decide again
            done, found = self._update_or_old(
                "cancel request",
                job_id,
                "SET cancelRequested = :true, updatedAt = :now",
                f"{_ALIVE} AND #o = :owner AND #s = :running AND leaseUntil >= :nowMs",
                {":running": {"S": JobStatus.RUNNING.value}, ":owner": {"S": owner}, ":true": {"BOOL": True}},
                now,
            )
            if done is not None:
                return CancelOutcome(CancelStatus.REQUESTED, done)
            if found is None or found.owner != owner:
                return CancelOutcome(CancelStatus.NOT_FOUND)
            if found.status.is_terminal:
                return CancelOutcome(CancelStatus.FINISHED, found)
        raise JobStoreError(f"cancel of job {job_id} failed: the job kept changing")

    def mark_dead_lettered(
        self,
        job_id: str,
        now: dt.datetime | None = None,
        *,
        message_id: str | None = None,
        max_attempts: int | Mapping[str, int] | None = None,
    ) -> DeadLetterOutcome:
        """``dead_letter``'s outcome alone.

        Examples
        --------
        >>> store.mark_dead_lettered(job_id, message_id=record["messageId"], max_attempts=3)
        <DeadLetterOutcome.MARKED: 'MARKED'>
        """
        return self.dead_letter(job_id, now, message_id=message_id, max_attempts=max_attempts).outcome

    def dead_letter(
        self,
        job_id: str,
        now: dt.datetime | None = None,
        *,
        message_id: str | None = None,
        max_attempts: int | Mapping[str, int] | None = None,
    ) -> DeadLetterResult:
        """End a job whose message ``message_id`` was dead-lettered: FAILED (``DeadLettered``), or CANCELLED.

        Reads the job, asks ``transitions.decide_dead_letter`` what becomes of it, and writes that under a
        condition that the job is still as read (same status, attempts and message): a duplicate message of a
        job whose own message lives on (waiting out a backoff, or coming back after a crash) changes nothing;
        a job still held under a live lease is left alone (BUSY: its run may yet finish it). The error
        message says how many attempts the job had. A GetItem and an UpdateItem (rarely more, when the job
        changes under the write).

        Parameters
        ----------
        message_id
            The dead-lettered message's SQS message id (kept when SQS moves it to the dead-letter queue).
        max_attempts
            The job's attempt limit (``max_receive_count``), for the error message; or each job type's limit
            by type name (a type not in it gets a message without the number).

        Returns
        -------
        DeadLetterResult
            What was done, and the job as read (None when GONE): its ``job_type`` names the metric's series.

        Raises
        ------
        JobStoreError
            DynamoDB failed, or the job kept changing.

        Examples
        --------
        >>> store.dead_letter(job_id, message_id=record["messageId"], max_attempts={"reports": 3}).outcome
        <DeadLetterOutcome.MARKED: 'MARKED'>
        """
        now = now or utc_now()
        found = self.get(job_id, now)
        for _ in range(3):
            decision = decide_dead_letter(found, message_id, now)
            if decision is not DeadLetterDecision.MARK and decision is not DeadLetterDecision.CANCEL:
                return DeadLetterResult(_DEAD_LETTER_OUTCOME[decision], found)
            assert found is not None  # MARK and CANCEL decide on a job
            if decision is DeadLetterDecision.CANCEL:
                cancelled = self._cancel_unheld(job_id, now)
                if cancelled is not None:
                    return DeadLetterResult(DeadLetterOutcome.CANCELLED, cancelled)
                found = self.get(job_id, now)
                continue
            limit = max_attempts.get(found.job_type) if isinstance(max_attempts, Mapping) else max_attempts
            done, found = self._update_or_old(
                "dead-lettered",
                job_id,
                "SET #s = :failed, errorType = :type, errorMessage = :message, updatedAt = :now, "
                "expiresAt = :expires REMOVE runId, leaseUntil, retryAt, progressPercent, progressMessage",
                f"{_ALIVE} AND {_TAKEABLE} AND {_NOT_CANCELLED} AND {_OWN_MESSAGE} AND attempts = :attempts",
                {
                    ":failed": {"S": JobStatus.FAILED.value},
                    **_TAKEABLE_VALUES,
                    ":type": {"S": DEAD_LETTERED},
                    ":message": {"S": _dead_letter_message(found.attempts, limit)},
                    ":mid": {"S": message_id or ""},
                    ":attempts": {"N": str(found.attempts)},
                },
                now,
            )
            if done is not None:
                return DeadLetterResult(DeadLetterOutcome.MARKED, done)
        raise JobStoreError(f"dead-lettering job {job_id} failed: the job kept changing")

    def _cancel_unheld(self, job_id: str, now: dt.datetime) -> Job | None:
        """CANCELLED for a job held by no live run whose owner asked to cancel it; None if it changed meanwhile."""
        done, _ = self._update_or_old(
            "cancel",
            job_id,
            _CANCEL,
            f"{_ALIVE} AND {_TAKEABLE} AND cancelRequested = :true",
            {
                ":cancelled": {"S": JobStatus.CANCELLED.value},
                **_TAKEABLE_VALUES,
                ":true": {"BOOL": True},
            },
            now,
        )
        return done

    def _update_or_old(
        self,
        operation: str,
        job_id: str,
        update: str,
        condition: str,
        values: dict[str, AttributeValueTypeDef],
        now: dt.datetime | None,
    ) -> tuple[Job | None, Job | None]:
        """A conditional UpdateItem: (the job as written, None), or (None, the job as found: None if absent).

        The time placeholders (``:now``, ``:nowSec``, ``:nowMs``, ``:expires``) are filled in where the
        expressions use them.
        """
        now = now or utc_now()
        clock: dict[str, AttributeValueTypeDef] = {
            ":now": {"S": format_timestamp(now)},
            ":nowSec": {"N": str(epoch_seconds(now))},
            ":nowMs": {"N": str(epoch_millis(now))},
            ":expires": self._expires(now),
        }
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key=_key(job_id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={
                    name: attribute
                    for name, attribute in (("#s", "status"), ("#o", "owner"))
                    if name in update or name in condition
                },
                ExpressionAttributeValues=_used({**clock, **values}, update, condition),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return None, _old_job(error, now)
            raise _store_error(f"UpdateItem ({operation})", job_id, error) from error
        except BotoCoreError as error:
            raise _store_error(f"UpdateItem ({operation})", job_id, error) from error
        return Job.from_item(response["Attributes"]), None

    def _fenced(
        self,
        operation: str,
        job_id: str,
        run_id: str,
        now: dt.datetime | None,
        update: str,
        names: dict[str, str],
        values: dict[str, AttributeValueTypeDef],
        *,
        condition: str | None = None,
        return_new: bool = False,
    ) -> tuple[WriteOutcome, Job | None]:
        """A write fenced by the run id: (APPLIED, the new job if ``return_new``) or (FENCED_OUT, the job found).

        ``condition`` is ANDed to the fence; when it is given, a refused write returns the job as it was.
        """
        now = now or utc_now()
        extra: dict[str, Any] = {}
        if return_new:
            extra["ReturnValues"] = "ALL_NEW"
        if condition is not None:
            extra["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key=_key(job_id),
                UpdateExpression=update,
                ConditionExpression=_FENCE if condition is None else f"{_FENCE} AND {condition}",
                ExpressionAttributeNames={"#s": "status", **names},
                ExpressionAttributeValues={
                    ":running": {"S": JobStatus.RUNNING.value},
                    ":run": {"S": run_id},
                    ":now": {"S": format_timestamp(now)},
                    **values,
                },
                **extra,
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return WriteOutcome.FENCED_OUT, _old_job(error, now) if condition is not None else None
            raise _store_error(f"UpdateItem ({operation})", job_id, error) from error
        except BotoCoreError as error:
            raise _store_error(f"UpdateItem ({operation})", job_id, error) from error
        attributes = response.get("Attributes")
        return WriteOutcome.APPLIED, Job.from_item(attributes) if return_new and attributes else None


_CLAIM_STATUS: Final = {
    ClaimDecision.GONE: ClaimStatus.GONE,
    ClaimDecision.FINISHED: ClaimStatus.FINISHED,
    ClaimDecision.BUSY: ClaimStatus.BUSY,
    ClaimDecision.DUPLICATE: ClaimStatus.DUPLICATE,
    ClaimDecision.DEFER: ClaimStatus.DEFERRED,
}
_DEAD_LETTER_OUTCOME: Final = {
    DeadLetterDecision.GONE: DeadLetterOutcome.GONE,
    DeadLetterDecision.FINISHED: DeadLetterOutcome.FINISHED,
    DeadLetterDecision.BUSY: DeadLetterOutcome.BUSY,
    DeadLetterDecision.DUPLICATE: DeadLetterOutcome.DUPLICATE,
}


def _dead_letter_message(attempts: int, max_attempts: int | None) -> str:
    if attempts == 0:
        started = "before any attempt started"
    else:
        of = "" if max_attempts is None else f" of {max_attempts}"
        started = f"after attempt {attempts}{of}, which recorded no outcome"
    return (
        f"The job's message was dead-lettered {started}: the worker crashed, ran out of memory or was stopped "
        "at its timeout before it could record the attempt, or could not reach the status table."
    )


def _used(values: dict[str, AttributeValueTypeDef], *expressions: str) -> dict[str, AttributeValueTypeDef]:
    """The placeholders of ``values`` that ``expressions`` use (DynamoDB refuses unused ones)."""
    text = " ".join(expressions)
    return {name: value for name, value in values.items() if re.search(re.escape(name) + r"(?!\w)", text)}


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


def _cancellation_reasons(error: ClientError, count: int) -> list[dict[str, Any]]:
    """The per-item reasons of a cancelled transaction (empty ones for another error), ``count`` of them."""
    reasons: list[dict[str, Any]] = []
    if error.response.get("Error", {}).get("Code") == _TRANSACTION_CANCELLED:
        reasons = [dict(reason) for reason in error.response.get("CancellationReasons") or []]
    return (reasons + [{}] * count)[:count]


def _store_error(operation: str, job_id: str, error: Exception) -> JobStoreError:
    """The ``JobStoreError`` for a failed request: transient unless DynamoDB refused it for good."""
    transient = True
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        transient = code in _TRANSIENT_CODES or status >= 500
    return JobStoreError(f"{operation} of job {job_id} failed: {error}", transient=transient)
