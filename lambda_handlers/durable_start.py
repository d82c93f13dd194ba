"""A long job type's starter: it consumes the type's queue and starts one durable execution per job; every five
minutes (an EventBridge schedule) it sweeps the executions that ended without recording their job.

Start (an SQS batch; ``ReportBatchItemFailures``). Each record ends one of these ways:

- consumed without a start: not a job message, or its job is finished, gone, or running in its execution;
- consumed after ``Invoke(InvocationType="Event", DurableExecutionName=<job id>)`` of the durable worker's
  version with the message as the payload. The execution's name makes the start idempotent: a message
  delivered again starts nothing new (the same name and payload answer with the running execution;
  ``DurableExecutionAlreadyStartedException``, the same name with another payload, is consumed too);
- held back (``ASYNC_JOB_MAX_RUNNING`` executions are running): delivered again after a jittered delay,
  or, on its last receive before the dead-letter queue, sent again as a new message, so that a job waiting
  its turn is never dead-lettered;
- reported as it is: an AWS call failed. After ``max_receive_count`` receives SQS dead-letters the message
  and the dead-letter function ends the job FAILED.

Sweep (``{"source": "aws.events"}``): every execution of the durable worker that ended FAILED, TIMED_OUT or
STOPPED within ``ASYNC_JOB_SWEEP_WINDOW_SECONDS``, whose job (its name) is not finished, ends the job FAILED
(``ExecutionFailed``, ``ExecutionTimedOut``, ``ExecutionStopped``, with the execution's error), or CANCELLED
when its owner had asked to cancel it: every accepted job ends terminal, even when its execution dies outside
the worker's code.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from lambda_handlers import clients, config, messages
from lambda_handlers.contract import JOB_TYPE_DIMENSION
from lambda_handlers.durable_config import StarterConfig
from lambda_handlers.durable_store import DurableJobStore
from lambda_handlers.job_run import CONSUME, REDELIVER, Disposition, error_message, handle_job_record
from lambda_handlers.models import JobStatus, is_job_id, utc_now
from lambda_handlers.observability import MetricUnit, logger, metrics, tracer
from lambda_handlers.store import JobStoreError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["CONFIG", "HOLD_BACK_SECONDS", "SWEPT_STATUSES", "handler"]

CONFIG: Final = config.load(StarterConfig)
_store: Final = DurableJobStore(CONFIG.table_name, ttl_seconds=CONFIG.ttl_seconds)
metrics.set_default_dimensions(**{JOB_TYPE_DIMENSION: CONFIG.job_type})
#: The jitter's source (tests put a seeded one in its place).
_random = random.Random()

#: How long a held-back job waits before it is tried again: drawn from this range, seconds.
HOLD_BACK_SECONDS: Final = (30, 90)
#: The execution statuses the sweep looks at, and the error type each gives the job it ends.
SWEPT_STATUSES: Final = {
    "FAILED": "ExecutionFailed",
    "TIMED_OUT": "ExecutionTimedOut",
    "STOPPED": "ExecutionStopped",
}
_SWEPT_MESSAGES: Final = {
    "FAILED": "The job's durable execution failed outside the job handler (the worker could not start or "
    "load, or the durable execution SDK ended it).",
    "TIMED_OUT": "The job did not finish within its job type's timeout: its durable execution timed out.",
    "STOPPED": "The job's durable execution was stopped before the job finished.",
}
#: Time kept back from the starter's deadline: a sweep stops there (the next one goes on).
_SWEEP_RESERVE_MS: Final = 5_000
_ALREADY_STARTED: Final = "DurableExecutionAlreadyStartedException"


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Start the batch's jobs (``{"batchItemFailures": [...]}``), or sweep (``{"ended": n, "left": n}``).

    Examples
    --------
    >>> handler({"Records": [record]}, context)
    {'batchItemFailures': []}
    >>> handler({"source": "aws.events", "detail-type": "Scheduled Event"}, context)
    {'ended': 0, 'left': 2}
    """
    if event.get("source") == "aws.events":
        return _sweep(context)
    failures: list[dict[str, str]] = []
    running = _Running()
    for record in event.get("Records") or []:
        disposition = _handle_record(record, running)
        if disposition.visible_in is not None:
            _delay(record, disposition.visible_in)
        if not disposition.consume:
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


class _Running:
    """How many executions of the durable worker are running: listed once a batch, counted up as it starts."""

    def __init__(self) -> None:
        self.count: int | None = None

    def at_limit(self) -> bool:
        """Whether ``ASYNC_JOB_MAX_RUNNING`` executions are running (never, without the setting)."""
        limit = CONFIG.max_running
        if limit is None:
            return False
        if self.count is None:
            self.count = 0
            for _ in _executions(["RUNNING"], limit=limit):
                self.count += 1
        return self.count >= limit

    def started(self) -> None:
        if self.count is not None:
            self.count += 1


def _handle_record(record: dict[str, Any], running: _Running) -> Disposition:
    return handle_job_record(record, lambda message: _start(message, record, running))


def _start(message: messages.JobMessage, record: dict[str, Any], running: _Running) -> Disposition:
    """Start the job's durable execution, unless it needs none or must wait; what becomes of the message."""
    try:
        job = _store.get(message.job_id)
    except JobStoreError:
        logger.exception("could not read the job; the message will be delivered again")
        return REDELIVER
    if job is None or job.status.is_terminal:
        logger.info(
            "not starting the job: it is finished or gone", extra={"status": job and job.status.value}
        )
        _count("DuplicateDeliveries")
        return CONSUME
    if job.status is JobStatus.RUNNING and job.execution:
        logger.info("not starting the job: it runs in its execution", extra={"execution": job.execution})
        _count("DuplicateDeliveries")
        return CONSUME
    try:
        if running.at_limit():
            return _hold_back(record)
        response = clients.lambda_().invoke(
            FunctionName=CONFIG.durable_function,
            InvocationType="Event",
            DurableExecutionName=message.job_id,
            Payload=str(record.get("body")).encode("utf-8"),
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == _ALREADY_STARTED:
            logger.warning("the job's execution was started already, with another message; not started again")
            _count("DuplicateDeliveries")
            return CONSUME
        logger.exception("could not start the job's execution; the message will be delivered again")
        _count("StartErrors")
        return REDELIVER
    except BotoCoreError:
        logger.exception("could not start the job's execution; the message will be delivered again")
        _count("StartErrors")
        return REDELIVER
    running.started()
    logger.info("execution started", extra={"execution": response.get("DurableExecutionArn")})
    _count("ExecutionsStarted")
    return CONSUME


def _hold_back(record: dict[str, Any]) -> Disposition:
    """The job waits for a running execution to end: delivered again later (sent again on its last receive)."""
    delay = _random.randint(*HOLD_BACK_SECONDS)
    _count("JobsHeldBack")
    last = CONFIG.max_receive_count is not None and _receive_count(record) >= CONFIG.max_receive_count
    if last:
        try:
            clients.sqs().send_message(
                QueueUrl=clients.queue_url(record.get("eventSourceARN")),
                MessageBody=str(record.get("body")),
                DelaySeconds=min(delay, 900),
            )
        except Exception:  # the record comes back as it is (and is dead-lettered): say so
            logger.exception("could not send the held-back job's message again; SQS will dead-letter it")
        else:
            logger.info(
                "job held back on its last receive: its message was sent again", extra={"delay_s": delay}
            )
            return CONSUME
    logger.info("job held back: the most executions are running", extra={"delay_s": delay})
    return Disposition(consume=False, visible_in=delay)


def _delay(record: dict[str, Any], seconds: int) -> None:
    try:
        clients.delay_record(record, seconds)
    except Exception:  # whatever went wrong, the record is reported: nothing here may fail the batch
        logger.warning(
            "could not delay the message; it comes back after its visibility timeout", exc_info=True
        )


def _sweep(context: LambdaContext) -> dict[str, Any]:
    """End the jobs of executions that ended without recording them; how many were ended and left alone."""
    ended = left = 0
    try:
        for execution in _executions(
            list(SWEPT_STATUSES), started_after=dt.timedelta(seconds=CONFIG.sweep_window_seconds)
        ):
            if context.get_remaining_time_in_millis() < _SWEEP_RESERVE_MS:
                logger.warning("the sweep ran out of time; the next one goes on", extra={"ended": ended})
                break
            if _sweep_one(execution):
                ended += 1
            else:
                left += 1
    except (ClientError, BotoCoreError):
        logger.exception("could not list the ended executions; the next sweep tries again")
        _count("SweepErrors")
    logger.info("swept", extra={"ended": ended, "left": left})
    return {"ended": ended, "left": left}


def _sweep_one(execution: dict[str, Any]) -> bool:
    """End the execution's job if it is not finished; whether it was ended."""
    job_id, arn, status = (
        execution.get("DurableExecutionName"),
        execution.get("DurableExecutionArn"),
        execution.get("Status"),
    )
    if not is_job_id(job_id) or not isinstance(arn, str) or status not in SWEPT_STATUSES:
        return False
    try:
        job = _store.get(job_id)
        if job is None or job.status.is_terminal or (job.execution is not None and job.execution != arn):
            return False
        error = clients.lambda_().get_durable_execution(DurableExecutionArn=arn).get("Error") or {}
        message = _SWEPT_MESSAGES[status]
        if error.get("ErrorType") or error.get("ErrorMessage"):
            message += f" Execution error: {error.get('ErrorType', 'Error')}: {error.get('ErrorMessage', '')}"
        done = _store.end_execution(job_id, arn, SWEPT_STATUSES[status], error_message(message))
    except (JobStoreError, ClientError, BotoCoreError):
        logger.exception(
            "could not end the job of an ended execution; the next sweep tries again",
            extra={"job_id": job_id},
        )
        _count("SweepErrors")
        return False
    if done is None:
        return False
    logger.warning(
        "ended a job its durable execution left unfinished",
        extra={"job_id": job_id, "execution": arn, "execution_status": status, "status": done.status.value},
    )
    _count("JobsCancelled" if done.status is JobStatus.CANCELLED else "JobsFailed")
    return True


def _executions(
    statuses: list[str], *, limit: int | None = None, started_after: dt.timedelta | None = None
) -> Iterator[dict[str, Any]]:
    """The durable worker's executions (every version's) in ``statuses``, page after page (at most ``limit``)."""
    request: dict[str, Any] = {"FunctionName": CONFIG.function_arn, "Statuses": statuses}
    if started_after is not None:
        request["StartedAfter"] = utc_now() - started_after
    if limit is not None:
        request["MaxItems"] = min(limit, 1000)
    seen = 0
    while True:
        page = clients.lambda_().list_durable_executions_by_function(**request)
        for execution in page.get("DurableExecutions") or []:
            yield execution
            seen += 1
            if limit is not None and seen >= limit:
                return
        marker = page.get("NextMarker")
        if not marker:
            return
        request["Marker"] = marker


def _receive_count(record: dict[str, Any]) -> int:
    try:
        return max(1, int((record.get("attributes") or {}).get("ApproximateReceiveCount", 1)))
    except (TypeError, ValueError):
        return 1


def _count(name: str) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
