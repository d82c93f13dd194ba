"""The settings of a long job type's two functions: its durable worker and its starter.

Read and validated once, at import, like every function's (``lambda_handlers.config``, whose readers these
reuse): a missing or invalid variable fails the cold start with a ``ConfigError`` naming it and the fix.
``AsyncJobApi`` sets them all for a job type whose ``timeout`` is over 15 minutes (``docs/long-jobs.md``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Self

from lambda_handlers.config import (
    _FIX,
    ConfigError,
    WorkerConfig,
    _integer,
    _optional_count,
    _required,
    _Settings,
)
from lambda_handlers.contract import DEFAULT_JOB_TYPE, JOB_TYPE_NAME, Env

__all__ = ["MAX_EXECUTION_SECONDS", "DurableWorkerConfig", "StarterConfig"]

#: A durable execution's longest timeout (one year), seconds.
MAX_EXECUTION_SECONDS: Final = 366 * 86_400
#: A qualified function ARN with a version number: what a durable execution is started on (no alias).
_VERSION_ARN: Final = re.compile(r"arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+:\d+")


@dataclass(frozen=True, slots=True)
class DurableWorkerConfig(WorkerConfig):
    """Settings of ``lambda_handlers.durable_worker``: a short worker's, and the job's whole run limit.

    ``max_receive_count`` is each step's attempts; ``retry_base_seconds`` and ``retry_max_seconds`` the backoff
    between them.

    Examples
    --------
    >>> load(DurableWorkerConfig).execution_timeout_seconds
    21600
    """

    #: ``ASYNC_JOB_EXECUTION_TIMEOUT_SECONDS``: the durable execution's timeout, the job's whole run (the
    #: type's ``timeout``); ``job.remaining_time`` counts down from it.
    execution_timeout_seconds: int = 900

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        """Read and validate the durable worker's variables."""
        worker = WorkerConfig.from_environ(environ)
        return cls(
            **{field.name: getattr(worker, field.name) for field in dataclasses.fields(WorkerConfig)},
            execution_timeout_seconds=_integer(
                environ, Env.EXECUTION_TIMEOUT_SECONDS, 1, MAX_EXECUTION_SECONDS
            ),
        )


@dataclass(frozen=True, slots=True)
class StarterConfig(_Settings):
    """Settings of ``lambda_handlers.durable_start`` (a long job type's queue consumer and sweep).

    Examples
    --------
    >>> load(StarterConfig).durable_function
    'arn:aws:lambda:eu-west-1:123456789012:function:Reports-Worker:7'
    """

    #: ``ASYNC_JOB_DURABLE_FUNCTION``: the durable worker's published version, ``arn:...:function:<name>:<n>``.
    durable_function: str
    #: ``ASYNC_JOB_SWEEP_WINDOW_SECONDS``: how far back the sweep looks for executions that ended.
    sweep_window_seconds: int
    #: ``ASYNC_JOB_MAX_RUNNING`` (optional; unset: no limit): the most executions running at once.
    max_running: int | None = None
    #: ``ASYNC_JOB_MAX_RECEIVE_COUNT`` (optional): the queue's receives before it dead-letters a message; a
    #: job held back on its last receive is sent again rather than dead-lettered. Unset: it is not.
    max_receive_count: int | None = None
    #: ``ASYNC_JOB_TYPE`` (optional; unset: ``jobs``): the job type (its metrics' ``jobType``).
    job_type: str = DEFAULT_JOB_TYPE

    @property
    def function_arn(self) -> str:
        """The durable worker's unqualified ARN (every version's executions are listed under it).

        Examples
        --------
        >>> load(StarterConfig).function_arn
        'arn:aws:lambda:eu-west-1:123456789012:function:Reports-Worker'
        """
        return self.durable_function.rpartition(":")[0]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        """Read and validate the starter's variables."""
        function = _required(environ, Env.DURABLE_FUNCTION)
        if not _VERSION_ARN.fullmatch(function):
            raise ConfigError(
                f"{Env.DURABLE_FUNCTION} must be a function version's ARN, "
                f"arn:aws:lambda:<region>:<account>:function:<name>:<version> (given {function!r}): a durable "
                f"execution is started on a published version, not $LATEST or an alias. {_FIX}"
            )
        max_running = None
        if environ.get(Env.MAX_RUNNING, "").strip():
            max_running = _integer(environ, Env.MAX_RUNNING, 1, 1_000_000)
        job_type = environ.get(Env.JOB_TYPE, "").strip() or DEFAULT_JOB_TYPE
        if not JOB_TYPE_NAME.fullmatch(job_type):
            raise ConfigError(
                f"{Env.JOB_TYPE} must be a job type name, {JOB_TYPE_NAME.pattern} (given {job_type!r}). {_FIX}"
            )
        return cls(
            **cls._common(environ),
            durable_function=function,
            sweep_window_seconds=_integer(
                environ, Env.SWEEP_WINDOW_SECONDS, 60, MAX_EXECUTION_SECONDS + 86_400
            ),
            max_running=max_running,
            max_receive_count=_optional_count(environ),
            job_type=job_type,
        )
