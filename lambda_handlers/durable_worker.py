"""A long job type's worker: one durable execution per job, started by the type's starter
(``lambda_handlers.durable_start``) with the job's message as its input.

The execution, replayed from the top in each of its invocations:

1. ``async-job:claim`` (a step): the job becomes RUNNING under a run id derived from the execution ARN (the
   same in every invocation), leased until the execution's deadline, and the item records the execution
   (``execution``) so that ``DELETE /jobs/{id}`` can stop it. A job cancelled, finished or gone ends the
   execution there; one whose owner asked to cancel it meanwhile ends CANCELLED without running.
2. The team's handler, ``function(payload, job)``, with a ``DurableJobContext``: its ``job.step`` calls are
   checkpointed steps, retried with the type's backoff; its ``job.wait`` calls are durable waits.
3. ``async-job:outcome`` (a step): SUCCEEDED with the result (in the bucket when the item has no room),
   FAILED with the error, or CANCELLED, with the short worker's writes (``lambda_handlers.job_run.Run``).

The SDK's control-flow exceptions (its suspension is a ``BaseException``; ``UnrecoverableError`` makes it
retry the invocation or fail the execution) pass through untouched. An execution that dies outside this code
(timed out, failed, stopped) leaves its job to the starter's sweep, which ends it FAILED.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import time
from typing import TYPE_CHECKING, Any, Final

from aws_durable_execution_sdk_python import DurableContext, StepError, durable_execution
from aws_durable_execution_sdk_python.config import StepConfig
from aws_durable_execution_sdk_python.exceptions import InvocationError, UnrecoverableError

from lambda_handlers import config, messages, objects
from lambda_handlers.contract import JOB_TYPE_DIMENSION
from lambda_handlers.durable_config import DurableWorkerConfig
from lambda_handlers.durable_job import DurableJobContext, step_retry_strategy
from lambda_handlers.durable_store import DurableJobStore
from lambda_handlers.job import JobCancelledError, JobLeaseLostError
from lambda_handlers.job_run import Run, error_message
from lambda_handlers.models import utc_now
from lambda_handlers.observability import MetricUnit, logger, metrics, tracer
from lambda_handlers.store import ClaimStatus, WriteOutcome
from lambda_handlers.team_handler import (
    FileSaver,
    HandlerImportError,
    PayloadError,
    TeamHandler,
    check_payload,
    import_handler,
    progress_writer,
    read_payload,
)

if TYPE_CHECKING:
    from lambda_handlers.models import Job

__all__ = ["CLAIM_STEP", "CONFIG", "OUTCOME_STEP", "Outcome", "handler", "run_id_of"]

CONFIG: Final = config.load(DurableWorkerConfig)
_store: Final = DurableJobStore(CONFIG.table_name, ttl_seconds=CONFIG.ttl_seconds)
metrics.set_default_dimensions(**{JOB_TYPE_DIMENSION: CONFIG.job_type})
_team_handler: TeamHandler | None = None
#: The jitter's source (tests put a seeded one in its place).
_random = random.Random()

#: The runtime's own steps (a team's step names should not start with ``async-job:``).
CLAIM_STEP: Final = "async-job:claim"
OUTCOME_STEP: Final = "async-job:outcome"
#: The team's steps: the type's attempts and backoff.
_TEAM_STEP: Final = StepConfig(
    retry_strategy=step_retry_strategy(
        CONFIG.max_receive_count, CONFIG.retry_base_seconds, CONFIG.retry_max_seconds, _random
    )
)
#: The runtime's steps (DynamoDB writes): at least 3 attempts, whatever the type allows its own steps.
_RUNTIME_STEP: Final = StepConfig(
    retry_strategy=step_retry_strategy(
        max(3, CONFIG.max_receive_count), CONFIG.retry_base_seconds, CONFIG.retry_max_seconds, _random
    )
)


class _NotClaimableYetError(Exception):
    """Another run holds the job under a live lease: the claim step is tried again after a backoff."""


class _OutcomeNotRecordedError(Exception):
    """DynamoDB refused the outcome write until the write's own deadline: the outcome step is tried again."""


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """How the team's handler ended: SUCCEEDED (``result``), FAILED (``error_type``, ``message``), CANCELLED
    (``message``), or LOST (this run no longer holds the job: nothing to write)."""

    status: str
    result: Any = None
    error_type: str | None = None
    message: str | None = None


def run_id_of(execution_arn: str) -> str:
    """The run id of the execution: 32 hex digits, the same in every invocation (the writes' fencing token).

    Examples
    --------
    >>> len(run_id_of("arn:aws:lambda:eu-west-1:123456789012:function:W:3/durable-execution/j/abc"))
    32
    """
    return hashlib.sha256(execution_arn.encode("utf-8")).hexdigest()[:32]


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@durable_execution
def handler(event: dict[str, Any], durable: DurableContext) -> dict[str, Any]:
    """Run one job as a durable execution; return what became of it (the execution's result).

    Examples
    --------
    >>> lambda_client.invoke(FunctionName=version_arn, InvocationType="Event", DurableExecutionName=job_id,
    ...                      Payload=message_body)
    """
    arn = durable.state.durable_execution_arn
    body = durable.state.get_input_payload() or json.dumps(event)
    try:
        message = messages.decode(body)
    except messages.MessageError as error:
        logger.error("the execution's input is not a job message", extra={"reason": str(error)})
        _count("MalformedMessages")
        return {"outcome": "MalformedMessage"}
    job_id = message.job_id
    logger.append_keys(job_id=job_id, execution=arn)
    run_id = run_id_of(arn)
    deadline = _deadline(durable)
    claim: dict[str, Any] = durable.step(
        lambda _: _claim(job_id, run_id, arn, int(deadline * 1000)), name=CLAIM_STEP, config=_RUNTIME_STEP
    )
    if claim["status"] != ClaimStatus.CLAIMED.value:
        return {"jobId": job_id, "outcome": claim["status"]}
    outcome = _run_handler(message, durable, run_id, claim, deadline)
    recorded: str = durable.step(
        lambda _: _record(outcome, job_id, run_id, durable, deadline), name=OUTCOME_STEP, config=_RUNTIME_STEP
    )
    return {"jobId": job_id, "outcome": recorded}


def _deadline(durable: DurableContext) -> float:
    """When the job's run ends: the execution's start plus the type's timeout, epoch seconds."""
    execution = durable.state.get_execution_operation()
    started = execution.start_timestamp if execution is not None else None
    start = started.timestamp() if started is not None else time.time()
    return start + CONFIG.execution_timeout_seconds


def _claim(job_id: str, run_id: str, execution_arn: str, lease_until_ms: int) -> dict[str, Any]:
    """The claim step: hold the job for this execution and record the execution; what it found, for replay."""
    claim = _store.claim(job_id, run_id, lease_until_ms, utc_now())
    job = claim.job
    if claim.status is ClaimStatus.BUSY and job is not None and job.run_id == run_id:
        pass  # this step's earlier attempt claimed it; its checkpoint was lost
    elif claim.status in (ClaimStatus.BUSY, ClaimStatus.DEFERRED):
        raise _NotClaimableYetError(f"job {job_id} is held by another run; trying again after a backoff")
    elif claim.status is ClaimStatus.CANCELLED:
        logger.info("job cancelled before it ran: its owner asked to cancel it")
        _count("JobsCancelled")
        return {"status": claim.status.value}
    elif claim.status is not ClaimStatus.CLAIMED:
        logger.info(
            "not running the job: it is finished, gone or another's", extra={"claim": claim.status.value}
        )
        _count("DuplicateDeliveries")
        return {"status": claim.status.value}
    written, job = _store.record_execution(job_id, run_id, execution_arn)
    if written is not WriteOutcome.APPLIED or job is None:
        logger.warning("the job was taken over before its execution was recorded")
        _count("LeaseLost")
        return {"status": "LOST"}
    logger.info("job claimed", extra={"run_id": run_id, "attempts": job.attempts})
    return {
        "status": ClaimStatus.CLAIMED.value,
        "payloadSha256": job.payload_sha256,
        "files": job.files,
        "cancelRequested": job.cancel_requested,
    }


def _run_handler(
    message: messages.JobMessage, durable: DurableContext, run_id: str, claim: dict[str, Any], deadline: float
) -> Outcome:
    """Run the team's handler (again, on replay); how it ended. Not a step: its own steps are."""
    job_id = message.job_id
    if claim.get("cancelRequested"):
        return Outcome("CANCELLED", message="cancelled before it started")
    try:
        message = read_payload(CONFIG.bucket_name, message)
        check_payload(message, claim.get("payloadSha256"))
        team_handler = _load_team_handler()
    except PayloadError as error:
        return Outcome("FAILED", error_type=error.error_type, message=error_message(error))
    except HandlerImportError as error:
        logger.exception("cannot load the job handler")
        return Outcome("FAILED", error_type="HandlerImportError", message=error_message(error))
    except objects.ObjectStoreError as error:
        # The SDK fails this invocation and Lambda tries it again (nothing was recorded).
        raise InvocationError(f"could not read job {job_id}'s payload from the bucket: {error}") from error
    job = DurableJobContext(
        job_id,
        durable,
        deadline=deadline,
        step_config=_TEAM_STEP,
        max_attempts=CONFIG.max_receive_count,
        progress_writer=progress_writer(_store, job_id, run_id),
        logger=logger,
        file_saver=FileSaver(_store, CONFIG.bucket_name, job_id, run_id, claim.get("files")),
    )
    try:
        return Outcome("SUCCEEDED", result=team_handler(message.payload, job))
    except UnrecoverableError:
        raise  # the SDK's own: it retries the invocation or fails the execution (then the sweep ends the job)
    except JobLeaseLostError:
        logger.warning("the job was taken over by another run; dropping this one")
        return Outcome("LOST")
    except JobCancelledError as error:
        return Outcome("CANCELLED", message=error_message(error) or None)
    except StepError as error:
        # A step failed on its last attempt: the job fails with the step's error, named as a short worker names it.
        error_type = error.error_type.rpartition(".")[2] or "StepError"
        return Outcome("FAILED", error_type=error_type, message=error_message(error.message or ""))
    except Exception as error:
        # Outside a step nothing is retried: the code would fail the same way on every replay.
        if not durable.is_replaying():
            logger.exception("the job handler failed outside a step")
        return Outcome("FAILED", error_type=type(error).__name__, message=error_message(error))


def _record(outcome: Outcome, job_id: str, run_id: str, durable: DurableContext, deadline: float) -> str:
    """The outcome step: write how the job ended, with the short worker's writes; the status recorded."""
    if outcome.status == "LOST":
        _count("LeaseLost")
        return outcome.status
    run = Run(
        job_id,
        run_id,
        durable.lambda_context,  # type: ignore[arg-type]
        _store,
        retry_base_seconds=CONFIG.retry_base_seconds,
        retry_max_seconds=CONFIG.retry_max_seconds,
        rng=_random,
        bucket=CONFIG.bucket_name,
    )
    started = deadline - CONFIG.execution_timeout_seconds
    metrics.add_metric(name="JobDuration", unit=MetricUnit.Milliseconds, value=(time.time() - started) * 1000)
    if outcome.status == "CANCELLED":
        logger.info("the job handler stopped on a cancel request", extra={"reason": outcome.message})
        disposition = run.cancelled(outcome.message)
    elif outcome.status == "FAILED":
        logger.warning("the job failed", extra={"error_type": outcome.error_type, "error": outcome.message})
        disposition = run.fail(str(outcome.error_type), str(outcome.message or ""), final=True)
    else:
        held = _held(job_id, run_id)
        if held is None:
            _count("LeaseLost")
            return "LOST"
        disposition = run.succeed(outcome.result, held)
    if not disposition.consume:
        raise _OutcomeNotRecordedError(f"DynamoDB did not take job {job_id}'s outcome; trying again")
    return outcome.status


def _held(job_id: str, run_id: str) -> Job | None:
    """The job as this run holds it now (its files and progress count against the result's room), or None."""
    job = _store.get(job_id)
    if job is None or job.run_id != run_id:
        logger.warning("the job is no longer held by this run; its result is not recorded")
        return None
    return job


def _load_team_handler() -> TeamHandler:
    """Import ``ASYNC_JOB_HANDLER`` once (a failed import is tried again with the next job)."""
    global _team_handler
    if _team_handler is None:
        _team_handler = import_handler(CONFIG.handler)
    return _team_handler


def _count(name: str) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
