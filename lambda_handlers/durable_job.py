"""The ``JobContext`` of a long job type: ``job.step`` and ``job.wait`` as a durable execution's checkpointed steps
and waits (``aws_durable_execution_sdk_python``), replay-aware progress and files, the whole run's time left.

A long type's handler runs again, from the top, in every invocation of its durable execution: a step that
finished returns its checkpointed result without running again, a wait that ended returns at once. Code
between steps runs again on each replay, so it must be deterministic; the progress and files it records are
written only when it runs for the first time (not while replaying).

Examples
--------
>>> def export(payload: dict, job: JobContext) -> dict:
...     rows = job.step("query", run_query, payload["account"])
...     job.report_progress(50, "queried")
...     job.wait(dt.timedelta(minutes=30))  # the upstream export settles; nothing billed meanwhile
...     return job.step("publish", publish, rows)
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from aws_durable_execution_sdk_python.config import Duration, StepConfig
from aws_durable_execution_sdk_python.exceptions import StepError
from aws_durable_execution_sdk_python.retries import RetryDecision

from lambda_handlers.deadline import safety_margin_ms
from lambda_handlers.job import (
    FileSaver,
    JobCancelledError,
    JobContext,
    JobFailedError,
    JobLeaseLostError,
    JobTimeoutError,
    ProgressWriter,
    _check_step_name,
    wait_seconds,
)
from lambda_handlers.job_run import backoff_seconds

if TYPE_CHECKING:
    from aws_durable_execution_sdk_python import DurableContext, StepContext
    from aws_lambda_powertools import Logger

__all__ = ["NEVER_RETRIED", "DurableJobContext", "job_error", "step_retry_strategy"]

_T = TypeVar("_T")

#: The errors a step is never retried on: the handler decided (fail, stop), or the run lost the job.
NEVER_RETRIED: Final = (JobFailedError, JobCancelledError, JobLeaseLostError)
#: The name of the 1 s wait that moves the job to a fresh invocation (``DurableJobContext.step``).
YIELD_WAIT: Final = "async-job:fresh-invocation"


def step_retry_strategy(
    max_attempts: int, base_seconds: int, max_seconds: int, rng: random.Random | None = None
) -> Callable[[Exception, int], RetryDecision]:
    """The retry strategy of a step: up to ``max_attempts`` attempts, full-jitter backoff between them.

    The delays are the short worker's (``job_run.backoff_seconds``); ``JobFailedError``, ``JobCancelledError``
    and ``JobLeaseLostError`` are never retried.

    Examples
    --------
    >>> decide = step_retry_strategy(3, base_seconds=10, max_seconds=900)
    >>> decide(RuntimeError("502"), 1).should_retry, decide(RuntimeError("502"), 3).should_retry
    (True, False)
    """

    def decide(error: Exception, attempts_made: int) -> RetryDecision:
        if attempts_made >= max_attempts or isinstance(error, NEVER_RETRIED):
            return RetryDecision.no_retry()
        return RetryDecision.retry(
            Duration(seconds=backoff_seconds(attempts_made, base_seconds, max_seconds, rng))
        )

    return decide


def job_error(error: StepError) -> Exception | None:
    """The ``JobFailedError``, ``JobCancelledError`` or ``JobLeaseLostError`` (or subclass) a step failed with,
    rebuilt from its checkpointed type and message; None for any other failure.

    A step's failure comes back from the SDK as a ``StepError`` naming the error's class (on replay too, where
    the error itself is gone); the class is looked up among the modules loaded, never imported.

    Examples
    --------
    >>> job_error(StepError("payload.account is required", "lambda_handlers.job.JobFailedError"))
    JobFailedError('payload.account is required')
    """
    module_name, _, class_name = error.error_type.rpartition(".")
    found = getattr(sys.modules.get(module_name or "builtins"), class_name, None)
    if not isinstance(found, type):
        return None
    for kind in NEVER_RETRIED:
        if issubclass(found, kind):
            try:
                return found(error.message or "")
            except Exception:  # a subclass with another constructor: its base says the same
                return kind(error.message or "")
    return None


class DurableJobContext(JobContext):
    """The handler's ``job`` in a long job type's durable worker.

    Parameters
    ----------
    job_id
        The job's id.
    durable
        The durable execution's context (its steps, waits and replay state).
    deadline
        When the job's whole run ends (its execution's start plus the type's ``timeout``), epoch seconds.
    step_config
        The steps' configuration (their retry strategy: ``step_retry_strategy``).
    max_attempts
        Each step's attempts (``job.attempt`` is the running step's attempt, 1 outside a step).
    progress_writer, logger, file_saver
        As ``JobContext``'s; nothing is written while the handler replays.

    Examples
    --------
    >>> job = DurableJobContext(job_id, durable, deadline=time.time() + 3600, step_config=config, max_attempts=3)
    >>> job.step("load", load_rows, "acme")
    """

    __slots__ = ("_durable", "_longest_ms", "_step_config")

    def __init__(
        self,
        job_id: str,
        durable: DurableContext,
        *,
        deadline: float,
        step_config: StepConfig,
        max_attempts: int,
        progress_writer: ProgressWriter | None = None,
        logger: Logger | logging.Logger | None = None,
        file_saver: FileSaver | None = None,
    ) -> None:
        super().__init__(
            job_id,
            attempt=1,
            max_attempts=max_attempts,
            time_limit=dt.timedelta(seconds=max(0.0, deadline - time.time())),
            progress_writer=progress_writer,
            logger=logger,
            file_saver=None if file_saver is None else self._when_not_replaying(file_saver),
        )
        self._durable = durable
        self._step_config = step_config
        #: The longest step this invocation ran, ms: what the next step may need.
        self._longest_ms = 0.0

    def _when_not_replaying(self, saver: FileSaver) -> FileSaver:
        def save(name: str, data: bytes, content_type: str) -> None:
            if not self._durable.is_replaying():
                saver(name, data, content_type)

        return save

    def report_progress(self, percent: float, message: str | None = None) -> None:
        """As ``JobContext.report_progress``; while the handler replays (the progress was written), nothing.

        Examples
        --------
        >>> job.report_progress(40, "step 4/10")
        """
        if self._durable.is_replaying():
            return
        super().report_progress(percent, message)

    def step(self, name: str, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(*args)`` as a checkpointed step; on replay, return its checkpointed result.

        A failure is retried after a backoff, up to ``max_attempts`` attempts (``JobFailedError``,
        ``JobCancelledError`` and ``JobLeaseLostError`` are not retried, and come back out of the step as
        themselves). After the last attempt the step raises the SDK's ``StepError``, whose ``error_type``
        names the error's class: let it propagate, and the job ends FAILED with that error.

        When the time this invocation has left, less a safety margin, is shorter than the longest step it
        ran, a 1 s durable wait follows the step, so that the next one starts in a fresh invocation.

        Raises
        ------
        ValueError
            ``name`` is empty or too long.
        StepError
            The step failed on its last attempt.

        Examples
        --------
        >>> rows = job.step("load", load_rows, payload["account"])
        """
        _check_step_name(name)

        def attempt(step_context: StepContext) -> dict[str, Any]:
            self.attempt = step_context.attempt
            started = time.monotonic()
            try:
                value = fn(*args)
            finally:
                self.attempt = 1
            self._longest_ms = max(self._longest_ms, (time.monotonic() - started) * 1000)
            return {"value": value, "fresh": self._time_is_short()}

        try:
            done = self._durable.step(attempt, name=name, config=self._step_config)
        except StepError as error:
            raised = job_error(error)
            if raised is None:
                raise
            raise raised from error
        if done["fresh"]:
            self._durable.wait(Duration(seconds=1), name=YIELD_WAIT)
        return done["value"]  # type: ignore[no-any-return]

    def wait(self, duration: float | dt.timedelta) -> None:
        """A durable wait of ``duration`` (rounded up to whole seconds, at least 1): the invocation ends, and
        the job resumes in a new one when it is over, with nothing billed meanwhile.

        Raises
        ------
        ValueError
            ``duration`` is negative or not finite.
        JobTimeoutError
            The wait would outlast the job's run (``remaining_time``).

        Examples
        --------
        >>> job.wait(dt.timedelta(hours=1))
        """
        seconds = wait_seconds(duration)
        if seconds * 1000 > self.remaining_time_ms():
            raise JobTimeoutError(
                f"job.wait({seconds:g} s) would outlast the {self.remaining_time_ms()} ms the job has left"
            )
        whole = max(1, math.ceil(seconds))
        self._durable.wait(Duration(seconds=whole), name=f"wait {whole} s")

    def _time_is_short(self) -> bool:
        """Whether this invocation's time left, less the safety margin, is under the longest step so far."""
        lambda_context = self._durable.lambda_context
        if lambda_context is None:
            return False
        remaining_ms = lambda_context.get_remaining_time_in_millis()
        return remaining_ms - safety_margin_ms(remaining_ms) < self._longest_ms
