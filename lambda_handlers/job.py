"""What a team's job handler sees: the ``JobContext`` it is given and the exceptions it may raise or meet.

This module uses the standard library only, so ``import lambda_handlers`` stays cheap in a team's code and in
its unit tests.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, TypeVar

from lambda_handlers.contract import FILE_NAME, MAX_FILES

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger

__all__ = [
    "FileSaver",
    "JobCancelledError",
    "JobContext",
    "JobFailedError",
    "JobLeaseLostError",
    "JobTimeoutError",
    "ProgressAck",
    "ProgressWriter",
]


class ProgressAck(Enum):
    """What a ``ProgressWriter`` reports back about the job after writing its progress."""

    #: Written; this run still holds the job.
    HELD = "HELD"
    #: Written; this run still holds the job, and its owner asks to cancel it.
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    #: Not written: this run no longer holds the job.
    LOST = "LOST"


#: Signature of the function that keeps a file: ``(name, data, content_type) -> None``; it raises
#: ``JobLeaseLostError`` when this run no longer holds the job.
FileSaver = Callable[[str, bytes, str], None]

#: Signature of the function that records progress: ``(percent, message) -> ProgressAck``. A plain bool is
#: accepted too (True: still holds the job; False: lost it), which is all a fake writer in a test needs.
ProgressWriter = Callable[[float, "str | None"], "ProgressAck | bool"]

#: Shortest interval between two progress writes (the first report and 100 % are always written).
PROGRESS_INTERVAL_SECONDS: Final = 1.0
#: Longest progress message kept; longer ones are cut.
PROGRESS_MESSAGE_MAX_CHARS: Final = 1_000
#: The time limit of a ``JobContext`` built without one (Lambda's own maximum).
DEFAULT_TIME_LIMIT: Final = dt.timedelta(minutes=15)
#: Longest step name (``job.step``); a durable execution's operation names are 1-256 printable ASCII characters.
STEP_NAME_MAX_CHARS: Final = 200

_T = TypeVar("_T")


class JobFailedError(Exception):
    """Raise it from a job handler to fail the job at once, without a retry.

    Its message becomes the job's ``error.message``; its class name (``JobFailedError``, or a subclass's)
    the ``error.type``.

    Examples
    --------
    >>> def generate(payload, job):
    ...     if "account" not in payload:
    ...         raise JobFailedError("payload.account is required")
    """


class JobTimeoutError(Exception):
    """Raised inside the job handler shortly before the worker's Lambda deadline.

    The runtime raises it (from ``SIGALRM``) so that the attempt's failure is recorded before Lambda stops the
    process. Let it propagate: the attempt is retried, or the job fails when it was the last attempt.

    Examples
    --------
    >>> try:
    ...     crunch()
    ... except JobTimeoutError:
    ...     save_checkpoint()
    ...     raise
    """


class JobCancelledError(Exception):
    """Raise it from a job handler to stop a job whose owner asked to cancel it; the job ends CANCELLED.

    The owner's ``DELETE /jobs/{id}`` of a running job sets ``job.cancel_requested``; the handler decides
    where it is safe to stop (between two steps, after cleaning up) and raises this. The job is not retried.

    Examples
    --------
    >>> for i, chunk in enumerate(chunks, start=1):
    ...     process(chunk)
    ...     job.report_progress(100 * i / len(chunks))
    ...     if job.cancel_requested:
    ...         raise JobCancelledError(f"stopped after chunk {i}")
    """


class JobLeaseLostError(Exception):
    """Raised by ``JobContext.report_progress`` when this run no longer holds the job.

    Another worker took the job over (this run outlived its lease) or the job was finished elsewhere.
    Let it propagate: nothing this run writes would be kept.

    Examples
    --------
    >>> try:
    ...     job.report_progress(50)
    ... except JobLeaseLostError:
    ...     cleanup()
    ...     raise
    """


class JobContext:
    """The job handler's second argument: who the job is, how long it may run, how to report progress.

    Parameters
    ----------
    job_id
        The job's id (a lowercase UUID4).
    attempt
        This attempt's number, from 1 (the message's receive count).
    max_attempts
        The attempt after which a failure is final.
    time_limit
        How long the handler may still run: the runtime stops it with ``JobTimeoutError`` then.
    progress_writer
        Records ``(percent, message)``; returns False when this run no longer holds the job. None: progress is
        only logged (handy in a team's unit tests).
    logger
        The logger handed to the handler (the runtime passes its Powertools ``Logger``, with the job id as a
        correlation key). None: ``logging.getLogger("lambda_handlers.job")``.
    clock
        Monotonic seconds; tests may pass a fake.
    cancel_requested
        Whether the owner has asked to cancel the job already (a team's test may set it to try its cancel
        path); the runtime updates it with every progress write.
    file_saver
        Keeps the files the handler saves (``save_file``) in the API's bucket. None: they are kept in memory,
        in ``saved_files`` (handy in a team's unit tests).

    Examples
    --------
    Test a handler without AWS:

    >>> job = JobContext("4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21", time_limit=dt.timedelta(seconds=30))
    >>> generate({"seconds": 0}, job)
    {'report': ..., 'seconds': 0, 'steps': 10}
    """

    __slots__ = (
        "_cancel_requested",
        "_clock",
        "_deadline",
        "_file_saver",
        "_last_write",
        "_writer",
        "attempt",
        "job_id",
        "logger",
        "max_attempts",
        "saved_files",
    )

    def __init__(
        self,
        job_id: str,
        *,
        attempt: int = 1,
        max_attempts: int = 1,
        time_limit: dt.timedelta = DEFAULT_TIME_LIMIT,
        progress_writer: ProgressWriter | None = None,
        logger: Logger | logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        cancel_requested: bool = False,
        file_saver: FileSaver | None = None,
    ) -> None:
        self.job_id = job_id
        self._file_saver = file_saver
        #: What ``save_file`` kept without a ``file_saver``: name -> (data, content type).
        self.saved_files: dict[str, tuple[bytes, str]] = {}
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.logger: Logger | logging.Logger = logger if logger is not None else logging.getLogger(__name__)
        self._clock = clock
        self._deadline = clock() + time_limit.total_seconds()
        self._writer = progress_writer
        self._last_write: float | None = None
        self._cancel_requested = cancel_requested

    def __repr__(self) -> str:
        return (
            f"JobContext(job_id={self.job_id!r}, attempt={self.attempt}, max_attempts={self.max_attempts}, "
            f"remaining_time_ms={self.remaining_time_ms()}, cancel_requested={self._cancel_requested})"
        )

    @property
    def cancel_requested(self) -> bool:
        """Whether the job's owner asked to cancel it (``DELETE /jobs/{id}``) while it runs.

        Learnt from the job's record with each progress write (``report_progress``, at most once a second), so
        a handler that reports progress as it goes sees a cancel request within about a second. Stop by
        raising ``JobCancelledError`` at a point where stopping is safe; the job then ends CANCELLED.

        Examples
        --------
        >>> job.report_progress(40, "step 4/10")
        >>> if job.cancel_requested:
        ...     raise JobCancelledError("stopped after step 4")
        """
        return self._cancel_requested

    @property
    def is_last_attempt(self) -> bool:
        """Whether a failure of this attempt fails the job (no retry follows).

        Examples
        --------
        >>> JobContext("...", attempt=3, max_attempts=3).is_last_attempt
        True
        """
        return self.attempt >= self.max_attempts

    @property
    def remaining_time(self) -> dt.timedelta:
        """How long the handler may still run before the runtime stops it (never negative).

        Examples
        --------
        >>> if job.remaining_time < dt.timedelta(seconds=30):
        ...     raise JobTimeoutError("not enough time for another chunk")
        """
        return dt.timedelta(milliseconds=self.remaining_time_ms())

    def remaining_time_ms(self) -> int:
        """``remaining_time`` in whole milliseconds.

        Examples
        --------
        >>> JobContext("...", time_limit=dt.timedelta(seconds=2)).remaining_time_ms() <= 2000
        True
        """
        return max(0, int((self._deadline - self._clock()) * 1000))

    def report_progress(self, percent: float, message: str | None = None) -> None:
        """Record how far the job got; ``GET /jobs/{id}`` shows it as ``progress``.

        Writes at most once per second: the first report and a report of 100 % are always written, others
        within a second of the last write are skipped. Cheap enough to call in a loop. Each write also tells
        whether the owner asks to cancel the job: see ``cancel_requested``.

        Parameters
        ----------
        percent
            From 0 to 100 (stored with two decimals).
        message
            A short human-readable status, at most 1,000 characters (longer is cut); None for none.

        Raises
        ------
        ValueError
            ``percent`` is not a number from 0 to 100.
        TypeError
            ``percent`` is not a number, or ``message`` is not a string.
        JobLeaseLostError
            This run no longer holds the job: stop working on it.

        Examples
        --------
        >>> for i, chunk in enumerate(chunks, start=1):
        ...     process(chunk)
        ...     job.report_progress(100 * i / len(chunks), f"chunk {i}/{len(chunks)}")
        """
        if isinstance(percent, bool) or not isinstance(percent, int | float):
            raise TypeError(f"percent must be a number from 0 to 100 (given {percent!r})")
        if not math.isfinite(percent) or not 0 <= percent <= 100:
            raise ValueError(f"percent must be a number from 0 to 100 (given {percent!r})")
        if message is not None and not isinstance(message, str):
            raise TypeError(f"message must be a string or None (given {type(message).__name__})")
        percent = round(float(percent), 2)
        if message is not None:
            message = message[:PROGRESS_MESSAGE_MAX_CHARS]
        now = self._clock()
        due = (
            self._last_write is None or percent >= 100 or now - self._last_write >= PROGRESS_INTERVAL_SECONDS
        )
        if not due:
            return
        self._last_write = now
        if self._writer is None:
            self.logger.info("progress %s%% %s", percent, message or "")
            return
        ack = self._writer(percent, message)
        if ack is ProgressAck.CANCEL_REQUESTED:
            self._cancel_requested = True
        if ack is False or ack is ProgressAck.LOST:
            raise JobLeaseLostError(
                f"job {self.job_id} is no longer held by this run (another run took it over or it finished); "
                "stop working on it"
            )

    def step(self, name: str, fn: Callable[..., _T], *args: Any) -> _T:
        """Run one step of the job: ``fn(*args)``, and return what it returns.

        For a short job type the step is a plain call. For a long one (``timeout`` over 15 minutes) it is a
        checkpointed step of a durable execution: once it returned, its result is kept and a later
        invocation of the job gets it back without calling ``fn`` again; a failure is retried after a
        backoff, up to the type's ``max_receive_count`` attempts (``JobFailedError`` is not retried). So
        the same handler runs as a short or a long type (``docs/long-jobs.md``).

        Parameters
        ----------
        name
            The step's name, 1-200 printable ASCII characters, shown in the execution's history
            (``"load-2026-11"``).
        fn
            The work; for a long type its result must be JSON-serialisable, and it must finish within one
            invocation's limit (``invocation_timeout``).
        *args
            Passed to ``fn``.

        Raises
        ------
        ValueError
            ``name`` is empty, too long, or not printable ASCII.

        Examples
        --------
        >>> rows = job.step("load", load_rows, payload["account"])
        >>> report = job.step("render", render, rows)
        """
        _check_step_name(name)
        return fn(*args)

    def wait(self, duration: float | dt.timedelta) -> None:
        """Pause the job for ``duration`` (seconds, or a ``timedelta``).

        For a short job type this sleeps, within the time the handler has left. For a long type it is a
        durable wait: the invocation ends and the job resumes in a new one after the pause, with no
        compute billed meanwhile.

        Raises
        ------
        ValueError
            ``duration`` is negative or not finite.
        TypeError
            ``duration`` is neither a number nor a ``timedelta``.
        JobTimeoutError
            The pause would outlast the time the job has left (``remaining_time``).

        Examples
        --------
        >>> job.wait(dt.timedelta(minutes=5))  # let the export finish upstream
        """
        seconds = wait_seconds(duration)
        if seconds * 1000 > self.remaining_time_ms():
            raise JobTimeoutError(
                f"job.wait({seconds:g} s) would outlast the {self.remaining_time_ms()} ms the job has left"
            )
        time.sleep(seconds)

    def save_file(self, name: str, data: bytes | str, content_type: str = "application/octet-stream") -> None:
        """Keep a file with the job: ``GET /jobs/{id}`` lists it with a download link until the job expires.

        Saving a name again replaces the file. Text is stored as UTF-8.

        Parameters
        ----------
        name
            1-200 letters, digits, ``.``, ``_`` and ``-``, not starting with a dot (``report-2026-11.csv``).
        data
            The file's bytes (or text).
        content_type
            Its media type, sent with the download.

        Raises
        ------
        ValueError
            The name is not allowed, or the job has 100 files already.
        JobLeaseLostError
            This run no longer holds the job: stop working on it.

        Examples
        --------
        >>> job.save_file("report.csv", "account,total\\nacme,12\\n", "text/csv")
        """
        if not isinstance(name, str) or FILE_NAME.fullmatch(name) is None:
            raise ValueError(
                f"file name {name!r:.60} is not allowed: use 1-200 letters, digits, '.', '_' and '-', "
                "not starting with a dot"
            )
        content = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if self._file_saver is None:
            if name not in self.saved_files and len(self.saved_files) >= MAX_FILES:
                raise ValueError(f"a job keeps at most {MAX_FILES} files")
            self.saved_files[name] = (content, content_type)
            return
        self._file_saver(name, content, content_type)


def wait_seconds(duration: float | dt.timedelta) -> float:
    """``job.wait``'s argument in seconds, checked.

    Examples
    --------
    >>> wait_seconds(dt.timedelta(minutes=2))
    120.0
    """
    seconds = duration.total_seconds() if isinstance(duration, dt.timedelta) else duration
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"job.wait takes seconds or a timedelta (given {type(duration).__name__})")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"job.wait takes a finite, non-negative duration (given {duration!r})")
    return float(seconds)


def _check_step_name(name: object) -> None:
    if (
        not isinstance(name, str)
        or not name.strip()
        or len(name) > STEP_NAME_MAX_CHARS
        or not (name.isascii() and name.isprintable())
    ):
        raise ValueError(
            f"a step's name must be 1-{STEP_NAME_MAX_CHARS} printable ASCII characters (given {name!r:.60}); "
            "name each step for what it does, e.g. job.step('load', load_rows)"
        )
