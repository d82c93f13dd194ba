"""The job store: every write of the job state machine as one conditional DynamoDB request.

See ``docs/design.md`` ("State machine"). The decisions are ``lambda_handlers.transitions``'s pure functions;
each write here is the same rule as a condition (``lambda_handlers.conditions``), made with the one
conditional update (``StatusTable.update``). A write that loses its condition is an expected outcome (a
duplicate delivery, a run that was taken over) and comes back as a value (``lambda_handlers.outcomes``); only
AWS failures raise ``JobStoreError``. The idempotency key writes come from ``IdempotencyKeyStore``, the
writes of the run that holds a job (fenced by its run id) from ``RunWrites``.

The outcome types and errors are re-exported here: ``from lambda_handlers.store import JobStore, ClaimStatus``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from lambda_handlers.conditions import (
    ALIVE,
    CANCEL,
    FAIL,
    NOT_CANCELLED,
    OWN_MESSAGE,
    RUNNABLE,
    TAKEABLE,
    TAKEABLE_VALUES,
    UNTOUCHED,
)
from lambda_handlers.key_store import IdempotencyKeyStore
from lambda_handlers.models import Job, JobStatus, epoch_millis, utc_now
from lambda_handlers.outcomes import (
    CancelOutcome,
    CancelStatus,
    ClaimOutcome,
    ClaimStatus,
    DeadLetterOutcome,
    DeadLetterResult,
    WriteOutcome,
)
from lambda_handlers.run_writes import RunWrites
from lambda_handlers.status_table import (
    DEFAULT_TTL_SECONDS,
    JobExistsError,
    JobStoreError,
    KeyInUseError,
    is_condition_failure,
    item_key,
    store_error,
)
from lambda_handlers.transitions import (
    RETRY_EARLY_TOLERANCE_MS,
    ClaimDecision,
    DeadLetterDecision,
    decide_claim,
    decide_dead_letter,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

__all__ = [
    "DEAD_LETTERED",
    "DEFAULT_TTL_SECONDS",
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

#: The error type of a job whose message was dead-lettered.
DEAD_LETTERED: Final = "DeadLettered"


#: ``:retryBy`` of a claim that may not wait (later than any ``retryAt``).
_NO_WAIT_MS: Final = 2**62


class JobStore(IdempotencyKeyStore, RunWrites):
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
            if is_condition_failure(error):
                raise JobExistsError(f"a job with id {job.job_id} exists already") from error
            raise store_error("PutItem", job.job_id, error) from error
        except BotoCoreError as error:
            raise store_error("PutItem", job.job_id, error) from error

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
                Key=item_key(job_id),
                ConditionExpression=UNTOUCHED,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":queued": {"S": JobStatus.QUEUED.value}, ":zero": {"N": "0"}},
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise store_error("DeleteItem", job_id, error) from error
        except BotoCoreError as error:
            raise store_error("DeleteItem", job_id, error) from error
        return True

    def claim(
        self,
        job_id: str,
        run_id: str,
        lease_until_ms: int,
        now: dt.datetime | None = None,
        *,
        message_id: str | None = None,
        last_delivery: bool = False,
    ) -> ClaimOutcome:
        """Take a job for one run of message ``message_id``: the job becomes RUNNING, bound to that message.

        With ``last_delivery`` (SQS dead-letters the message after this receive) a retry waiting out its
        backoff is run now, early, rather than deferred into the dead-letter queue.

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
        bind, runnable = ", messageId = :mid", f"{OWN_MESSAGE} AND {RUNNABLE}"
        if message_id is None:  # a claim tied to no message (a tool, a test): it binds nothing
            bind, runnable = "", RUNNABLE
        done, found = self._written_or_found(
            "claim",
            job_id,
            f"SET #s = :running, runId = :run, leaseUntil = :lease, updatedAt = :now{bind}, "
            "attempts = if_not_exists(attempts, :zero) + :one "
            "REMOVE progressPercent, progressMessage, retryAt",
            f"{ALIVE} AND {NOT_CANCELLED} AND {runnable}",
            {
                **TAKEABLE_VALUES,
                ":run": {"S": run_id},
                ":lease": {"N": str(lease_until_ms)},
                ":mid": {"S": message_id or ""},
                ":retryBy": {
                    "N": str(_NO_WAIT_MS if last_delivery else epoch_millis(now) + RETRY_EARLY_TOLERANCE_MS)
                },
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
            },
            now,
        )
        if done is not None:
            return ClaimOutcome(ClaimStatus.CLAIMED, done)
        decision = decide_claim(found, message_id, now, last_delivery=last_delivery)
        if decision is ClaimDecision.CANCEL:
            cancelled = self._cancel_unheld(job_id, now)
            if cancelled is not None:
                return ClaimOutcome(ClaimStatus.CANCELLED, cancelled)
            return ClaimOutcome(ClaimStatus.BUSY, found)  # it changed meanwhile: look again later
        status = _CLAIM_STATUS.get(decision, ClaimStatus.BUSY)  # CLAIM here: it changed meanwhile
        return ClaimOutcome(status, found)

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
            done, found = self._written_or_found(
                "cancel",
                job_id,
                CANCEL,
                f"{ALIVE} AND #o = :owner AND {TAKEABLE}",
                {
                    ":cancelled": {"S": JobStatus.CANCELLED.value},
                    **TAKEABLE_VALUES,
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
            done, found = self._written_or_found(
                "cancel request",
                job_id,
                "SET cancelRequested = :true, updatedAt = :now",
                f"{ALIVE} AND #o = :owner AND #s = :running AND leaseUntil >= :nowMs",
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
            done, found = self._written_or_found(
                "dead-lettered",
                job_id,
                FAIL,
                f"{ALIVE} AND {TAKEABLE} AND {NOT_CANCELLED} AND {OWN_MESSAGE} AND attempts = :attempts",
                {
                    ":failed": {"S": JobStatus.FAILED.value},
                    **TAKEABLE_VALUES,
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
        done, _ = self._written_or_found(
            "cancel",
            job_id,
            CANCEL,
            f"{ALIVE} AND {TAKEABLE} AND cancelRequested = :true",
            {
                ":cancelled": {"S": JobStatus.CANCELLED.value},
                **TAKEABLE_VALUES,
                ":true": {"BOOL": True},
            },
            now,
        )
        return done

    def _written_or_found(
        self,
        operation: str,
        job_id: str,
        update: str,
        condition: str,
        values: dict[str, AttributeValueTypeDef],
        now: dt.datetime | None,
    ) -> tuple[Job | None, Job | None]:
        """``update`` as a pair: (the job as written, None), or (None, the job as found: None if absent)."""
        written = self.update(operation, job_id, update, condition, values, now)
        return (written.job, None) if written.applied else (None, written.job)


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
