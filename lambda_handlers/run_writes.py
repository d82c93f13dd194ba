"""The writes of the run that holds a job: each fenced by its run id, so a run that was taken over writes nothing.

``complete``, ``record_failure``, ``report_progress`` and ``cancel_run`` are the worker's outcome writes
(``docs/design.md``, "State machine": "A completion whose ``runId`` no longer matches ... is dropped"). Each is
one conditional UpdateItem (``StatusTable.update``) under ``conditions.FENCE``; ``JobStore`` has them all.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from lambda_handlers.conditions import CANCEL, FENCE, NOT_CANCELLED
from lambda_handlers.models import Job, JobStatus, utc_now
from lambda_handlers.outcomes import WriteOutcome
from lambda_handlers.status_table import StatusTable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

__all__ = ["RunWrites"]


class RunWrites(StatusTable):
    """The outcome and progress writes of one run of a job, fenced by its run id.

    Examples
    --------
    >>> store.complete(job_id, run_id, json.dumps({"rows": 12}))
    <WriteOutcome.APPLIED: 'APPLIED'>
    """

    def complete(
        self,
        job_id: str,
        run_id: str,
        result_json: str,
        now: dt.datetime | None = None,
        *,
        result_ref: str | None = None,
    ) -> WriteOutcome:
        """Record the job's result: RUNNING (held by ``run_id``) becomes SUCCEEDED, readable ``ttl_seconds``.

        A job whose owner asked to cancel it while it ran succeeds all the same: its work is done.

        Parameters
        ----------
        result_json
            The handler's return value as JSON text.
        result_ref
            The key of the result in the API's bucket: the item then keeps that key and the result's size
            (``resultRef``, ``resultBytes``), not the result.

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
        values: dict[str, AttributeValueTypeDef] = {":succeeded": {"S": JobStatus.SUCCEEDED.value}}
        if result_ref is None:
            stored = "#r = :result"
            values[":result"] = {"S": result_json}
        else:
            stored = "resultRef = :ref, resultBytes = :bytes"
            values[":ref"] = {"S": result_ref}
            values[":bytes"] = {"N": str(len(result_json.encode("utf-8")))}
        outcome, _ = self._fenced(
            "complete",
            job_id,
            run_id,
            now,
            f"SET #s = :succeeded, {stored}, updatedAt = :now, expiresAt = :expires "
            "REMOVE runId, leaseUntil, errorType, errorMessage, cancelRequested",
            values,
        )
        return outcome

    def record_files(
        self, job_id: str, run_id: str, files_json: str, now: dt.datetime | None = None
    ) -> WriteOutcome:
        """Record the files the running job saved so far (``files``: the JSON list of ``SavedFile.to_json``).

        Raises
        ------
        JobStoreError
            DynamoDB failed.

        Examples
        --------
        >>> store.record_files(job_id, run_id, '[{"name":"report.csv","size":120,"contentType":"text/csv"}]')
        <WriteOutcome.APPLIED: 'APPLIED'>
        """
        return self._fenced(
            "record_files",
            job_id,
            run_id,
            now,
            "SET files = :files, updatedAt = :now",
            {":files": {"S": files_json}},
        )[0]

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
            expression += ", expiresAt = :expires REMOVE runId, leaseUntil, cancelRequested, progressPercent, progressMessage"
            return self._fenced("record_failure", job_id, run_id, now, expression, values)[0]
        if retry_at_ms is not None:
            values[":retryAt"] = {"N": str(retry_at_ms)}
            expression += ", retryAt = :retryAt"
        expression += " REMOVE runId, leaseUntil, progressPercent, progressMessage"
        outcome, found = self._fenced(
            "record_failure", job_id, run_id, now, expression, values, condition=NOT_CANCELLED
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
            "report_progress", job_id, run_id, now, expression, values, return_new=True
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
        }
        update = CANCEL
        if message:
            values[":reason"] = {"S": message}
            update = update.replace("expiresAt = :expires", "expiresAt = :expires, cancelMessage = :reason")
        return self._fenced("cancel_run", job_id, run_id, now, update, values)[0]

    def _fenced(
        self,
        operation: str,
        job_id: str,
        run_id: str,
        now: dt.datetime | None,
        update: str,
        values: dict[str, AttributeValueTypeDef],
        *,
        condition: str | None = None,
        return_new: bool = False,
    ) -> tuple[WriteOutcome, Job | None]:
        """A write fenced by the run id: (APPLIED, the new job if ``return_new``) or (FENCED_OUT, the job found).

        ``condition`` is ANDed to the fence.
        """
        written = self.update(
            operation,
            job_id,
            update,
            FENCE if condition is None else f"{FENCE} AND {condition}",
            {":running": {"S": JobStatus.RUNNING.value}, ":run": {"S": run_id}, **values},
            now,
            return_new=return_new,
        )
        return (WriteOutcome.APPLIED if written.applied else WriteOutcome.FENCED_OUT), written.job
