"""The status-table writes that only long job types make: the execution a run belongs to, and the end of a job
whose durable execution ended without recording it.

Each is one conditional UpdateItem through ``StatusTable.update``, like every write of ``JobStore`` (which
``DurableJobStore`` extends, so the durable worker and the starter have the short worker's writes too).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Final

from lambda_handlers.conditions import ALIVE, CANCEL, FAIL, NOT_CANCELLED, TAKEABLE_VALUES
from lambda_handlers.models import Job, JobStatus, utc_now
from lambda_handlers.outcomes import WriteOutcome
from lambda_handlers.store import JobStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

__all__ = ["EXECUTION_ATTRIBUTE", "DurableJobStore"]

#: The item attribute (S) holding the durable execution ARN of a long job's run.
EXECUTION_ATTRIBUTE: Final = "execution"
#: Not finished, and either never claimed or claimed by the execution ``:exec``.
_OF_EXECUTION: Final = "(#s = :queued OR (#s = :running AND execution = :exec))"


class DurableJobStore(JobStore):
    """``JobStore`` with the writes of a long job type's durable worker and starter.

    Examples
    --------
    >>> store = DurableJobStore("Jobs-Table")
    >>> store.record_execution(job_id, run_id, execution_arn)
    (<WriteOutcome.APPLIED: 'APPLIED'>, Job(...))
    """

    def record_execution(
        self, job_id: str, run_id: str, execution_arn: str, now: dt.datetime | None = None
    ) -> tuple[WriteOutcome, Job | None]:
        """Record the durable execution that holds the job under ``run_id`` (``execution``), so that
        ``DELETE /jobs/{id}`` can stop it.

        Returns
        -------
        tuple
            (APPLIED, the job as written: its ``cancel_requested`` tells whether a cancel came before this
            write), or (FENCED_OUT, the job as found).

        Raises
        ------
        JobStoreError
            DynamoDB failed.

        Examples
        --------
        >>> outcome, job = store.record_execution(job_id, run_id, "arn:aws:lambda:...:durable-execution/...")
        """
        return self._fenced(
            "record_execution",
            job_id,
            run_id,
            now,
            "SET execution = :exec, updatedAt = :now",
            {":exec": {"S": execution_arn}},
            return_new=True,
        )

    def end_execution(
        self,
        job_id: str,
        execution_arn: str,
        error_type: str,
        message: str,
        now: dt.datetime | None = None,
    ) -> Job | None:
        """End a job whose durable execution ended (failed, timed out, was stopped) without recording it.

        A job not finished yet, QUEUED (the execution died before its claim) or RUNNING in that execution,
        becomes FAILED with ``error_type`` and ``message``; CANCELLED instead when its owner had asked to cancel
        it. A finished job, a missing one or one of another execution is left alone. One UpdateItem (two for
        a job whose owner asked to cancel it).

        Returns
        -------
        Job or None
            The job as written, or None when it was left alone.

        Raises
        ------
        JobStoreError
            DynamoDB failed.

        Examples
        --------
        >>> store.end_execution(job_id, execution_arn, "ExecutionTimedOut", "The job ran out of time ...").status
        <JobStatus.FAILED: 'FAILED'>
        """
        now = now or utc_now()
        values: dict[str, AttributeValueTypeDef] = {**TAKEABLE_VALUES, ":exec": {"S": execution_arn}}
        written = self.update(
            "end_execution",
            job_id,
            FAIL,
            f"{ALIVE} AND {_OF_EXECUTION} AND {NOT_CANCELLED}",
            {
                **values,
                ":failed": {"S": JobStatus.FAILED.value},
                ":type": {"S": error_type},
                ":message": {"S": message},
            },
            now,
        )
        if written.applied:
            return written.job
        found = written.job
        if found is None or found.status.is_terminal or not found.cancel_requested:
            return None
        cancelled = self.update(
            "end_execution",
            job_id,
            CANCEL,
            f"{ALIVE} AND {_OF_EXECUTION} AND cancelRequested = :true",
            {**values, ":cancelled": {"S": JobStatus.CANCELLED.value}, ":true": {"BOOL": True}},
            now,
        )
        return cancelled.job if cancelled.applied else None
