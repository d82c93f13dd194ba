"""The functions' settings: environment variables read and validated once, when a function starts.

Each entry point calls ``load`` at import, so a missing or invalid variable fails the cold start with a
``ConfigError`` that names the variable and the fix, instead of failing requests one by one later.
The variables are listed in ``docs/design.md``; ``AsyncJobApi`` sets all of them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Self, TypeVar

from lambda_handlers.contract import (
    DEFAULT_JOB_TYPE,
    JOB_TYPE_NAME,
    MAX_PAYLOAD_BYTES_LIMIT,
    MAX_RECEIVE_COUNT_LIMIT,
    MAX_VISIBILITY_SECONDS,
    Env,
    JobTypeKey,
)

__all__ = [
    "ConfigError",
    "DeadLetterConfig",
    "JobTypeConfig",
    "StatusConfig",
    "SubmitConfig",
    "WorkerConfig",
    "load",
]

#: Retry delays of a deployment that does not set them (one made before they existed).
DEFAULT_RETRY_BASE_SECONDS: Final = 10
DEFAULT_RETRY_MAX_SECONDS: Final = 900

_HANDLER_RE: Final = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", re.ASCII)
_METRICS_NAMESPACE: Final = "POWERTOOLS_METRICS_NAMESPACE"
_FIX: Final = "AsyncJobApi sets it; when running the function yourself, set it in the function's environment."


class ConfigError(ValueError):
    """An environment variable the function needs is missing or invalid.

    Examples
    --------
    >>> load(WorkerConfig, {})
    Traceback (most recent call last):
    ConfigError: ASYNC_JOB_TABLE_NAME is not set. ...
    """


@dataclass(frozen=True, slots=True)
class JobTypeConfig:
    """One job type's settings, as the submit function routes to it (``ASYNC_JOB_TYPES``).

    Examples
    --------
    >>> load(SubmitConfig).job_type("reports")
    JobTypeConfig(name='reports', queue_url='https://sqs...', max_payload_bytes=262144, max_receive_count=3)
    """

    #: The type's name: its path segment (``POST /{name}``) and its metric dimension.
    name: str
    #: ``queueUrl``: the type's job queue.
    queue_url: str
    #: ``maxPayloadBytes``: the largest request body its ``POST`` accepts, bytes.
    max_payload_bytes: int
    #: ``maxReceiveCount``: receives before its messages are dead-lettered; None in the legacy form, which
    #: does not give it to the submit function.
    max_receive_count: int | None = None


@dataclass(frozen=True, slots=True)
class _Settings:
    """What every function needs."""

    #: ``ASYNC_JOB_TABLE_NAME``: the status table (a name or an ARN).
    table_name: str
    #: ``POWERTOOLS_METRICS_NAMESPACE``: where the job metrics go (Powertools fails without one).
    metrics_namespace: str
    #: ``ASYNC_JOB_TTL_SECONDS``: how long a job stays readable after it ends (SUCCEEDED, FAILED, CANCELLED).
    ttl_seconds: int
    #: ``ASYNC_JOB_BUCKET_NAME`` (optional): the API's bucket, for results, files and large payloads; None
    #: without one (a result over the item's room then fails the job, a payload must fit the message).
    bucket_name: str | None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        """Read and validate this kind's variables from ``environ``."""
        raise NotImplementedError

    @staticmethod
    def _common(environ: Mapping[str, str]) -> dict[str, Any]:
        table_name = _required(environ, Env.TABLE_NAME)
        if any(c.isspace() for c in table_name):
            raise ConfigError(
                f"{Env.TABLE_NAME} must be a DynamoDB table name or ARN (given {table_name!r}). {_FIX}"
            )
        return {
            "table_name": table_name,
            "metrics_namespace": _required(environ, _METRICS_NAMESPACE),
            "ttl_seconds": _integer(environ, Env.TTL_SECONDS, 1, 10 * 366 * 86_400),
            "bucket_name": environ.get(Env.BUCKET_NAME) or None,
        }


@dataclass(frozen=True, slots=True)
class SubmitConfig(_Settings):
    """Settings of ``lambda_handlers.submit`` (``POST /{type}``).

    The job types come from ``ASYNC_JOB_TYPES``; without it (a template made before job types), from the
    legacy single-type variables ``ASYNC_JOB_QUEUE_URL`` and ``ASYNC_JOB_MAX_PAYLOAD_BYTES``, as one type
    named ``jobs``.

    Examples
    --------
    >>> load(SubmitConfig).job_type("jobs").max_payload_bytes
    262144
    """

    #: Every job type of the API, by name.
    job_types: Mapping[str, JobTypeConfig]
    #: ``ASYNC_JOB_RETRY_AFTER_SECONDS``: the ``Retry-After`` advised while a job is not finished.
    retry_after_seconds: int
    #: ``ASYNC_JOB_IDEMPOTENCY_KEY_REQUIRED`` (optional, ``true``/``false``; unset: false): refuse a request
    #: without an ``Idempotency-Key``.
    idempotency_key_required: bool = False

    def job_type(self, name: str) -> JobTypeConfig | None:
        """The settings of job type ``name``, or None when the API has no such type.

        Examples
        --------
        >>> load(SubmitConfig).job_type("videos") is None
        True
        """
        return self.job_types.get(name)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        """Read and validate the submit function's variables."""
        job_types = _job_types(environ)
        if job_types is None:  # legacy: one type, from the single-type variables
            queue_url = _queue_url(_required(environ, Env.QUEUE_URL), Env.QUEUE_URL)
            job_types = {
                DEFAULT_JOB_TYPE: JobTypeConfig(
                    DEFAULT_JOB_TYPE,
                    queue_url,
                    _integer(environ, Env.MAX_PAYLOAD_BYTES, 1, MAX_PAYLOAD_BYTES_LIMIT),
                    _optional_count(environ),
                )
            }
        return cls(
            **cls._common(environ),
            job_types=job_types,
            retry_after_seconds=_integer(environ, Env.RETRY_AFTER_SECONDS, 1, 86_400),
            idempotency_key_required=_boolean(environ, Env.IDEMPOTENCY_KEY_REQUIRED, default=False),
        )


@dataclass(frozen=True, slots=True)
class StatusConfig(_Settings):
    """Settings of ``lambda_handlers.status`` (``GET /jobs/{id}``).

    Examples
    --------
    >>> load(StatusConfig, {**os.environ, "ASYNC_JOB_OPERATORS": '["arn:aws:iam::123456789012:role/Ops"]'})
    StatusConfig(..., operators=frozenset({'arn:aws:iam::123456789012:role/Ops'}))
    """

    #: ``ASYNC_JOB_RETRY_AFTER_SECONDS``: the ``Retry-After`` advised while a job is not finished.
    retry_after_seconds: int
    #: ``ASYNC_JOB_OPERATORS`` (optional JSON list): identities that may read every job.
    operators: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        """Read and validate the status function's variables."""
        return cls(
            **cls._common(environ),
            retry_after_seconds=_integer(environ, Env.RETRY_AFTER_SECONDS, 1, 86_400),
            operators=_operators(environ),
        )


@dataclass(frozen=True, slots=True)
class WorkerConfig(_Settings):
    """Settings of ``lambda_handlers.worker`` (one job type's queue consumer).

    Examples
    --------
    >>> load(WorkerConfig).handler
    'report.generate'
    """

    #: ``ASYNC_JOB_HANDLER``: the team's handler, ``module.function`` (``pkg.module.function``).
    handler: str
    #: ``ASYNC_JOBMAX_RECEIVE_COUNT_LIMIT``: receives before the message is dead-lettered; the last attempt.
    max_receive_count: int
    #: ``ASYNC_JOB_RETRY_BASE_SECONDS`` (optional; unset: 10): the first retry's delay cap, doubled per attempt.
    retry_base_seconds: int = DEFAULT_RETRY_BASE_SECONDS
    #: ``ASYNC_JOB_RETRY_MAX_SECONDS`` (optional; unset: 900): the cap of every retry delay.
    retry_max_seconds: int = DEFAULT_RETRY_MAX_SECONDS
    #: ``ASYNC_JOB_TYPE`` (optional; unset: ``jobs``): the job type it runs (its metrics' ``jobType``).
    job_type: str = DEFAULT_JOB_TYPE

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        """Read and validate the worker's variables."""
        handler = _required(environ, Env.HANDLER)
        if not _HANDLER_RE.fullmatch(handler):
            raise ConfigError(
                f"{Env.HANDLER} must be 'module.function', a dotted Python path (given {handler!r}). "
                "Pass the construct's handler prop as e.g. 'reports.generate'."
            )
        base = _optional_integer(
            environ, Env.RETRY_BASE_SECONDS, DEFAULT_RETRY_BASE_SECONDS, 1, MAX_VISIBILITY_SECONDS
        )
        maximum = _optional_integer(
            environ, Env.RETRY_MAX_SECONDS, DEFAULT_RETRY_MAX_SECONDS, 1, MAX_VISIBILITY_SECONDS
        )
        if maximum < base:
            raise ConfigError(
                f"{Env.RETRY_MAX_SECONDS} must be at least {Env.RETRY_BASE_SECONDS} (given {maximum} and "
                f"{base}): it caps the doubling base delay. {_FIX}"
            )
        job_type = environ.get(Env.JOB_TYPE, "").strip() or DEFAULT_JOB_TYPE
        if not JOB_TYPE_NAME.fullmatch(job_type):
            raise ConfigError(
                f"{Env.JOB_TYPE} must be a job type name, {JOB_TYPE_NAME.pattern} (given {job_type!r}). {_FIX}"
            )
        return cls(
            **cls._common(environ),
            handler=handler,
            max_receive_count=_integer(environ, Env.MAX_RECEIVE_COUNT, 1, MAX_RECEIVE_COUNT_LIMIT),
            retry_base_seconds=base,
            retry_max_seconds=maximum,
            job_type=job_type,
        )


@dataclass(frozen=True, slots=True)
class DeadLetterConfig(_Settings):
    """Settings of ``lambda_handlers.dead_letter`` (the consumer of every job type's dead-letter queue).

    Examples
    --------
    >>> load(DeadLetterConfig).max_receive_counts
    {'reports': 3}
    """

    #: Each job type's attempts, for the error message (from ``ASYNC_JOB_TYPES``; legacy: type ``jobs`` from
    #: ``ASYNC_JOBMAX_RECEIVE_COUNT_LIMIT``, when set). A type not listed gets a message without the number.
    max_receive_counts: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        """Read and validate the dead-letter consumer's variables."""
        job_types = _job_types(environ)
        counts: dict[str, int] = {}
        if job_types is not None:
            counts = {name: t.max_receive_count for name, t in job_types.items() if t.max_receive_count}
        else:
            legacy = _optional_count(environ)
            if legacy is not None:
                counts[DEFAULT_JOB_TYPE] = legacy
        return cls(**cls._common(environ), max_receive_counts=counts)


_S = TypeVar("_S", bound=_Settings)


def load(kind: type[_S], environ: Mapping[str, str] | None = None) -> _S:
    """Read and validate the settings of one function kind.

    Parameters
    ----------
    kind
        ``SubmitConfig``, ``StatusConfig``, ``WorkerConfig`` or ``DeadLetterConfig``.
    environ
        The variables to read; None reads ``os.environ``.

    Raises
    ------
    ConfigError
        A variable is missing or invalid; the message names it and the fix.

    Examples
    --------
    >>> CONFIG = load(SubmitConfig)
    >>> CONFIG.queue_url
    'https://sqs.eu-west-1.amazonaws.com/123456789012/Jobs-Queue'
    """
    return kind.from_environ(os.environ if environ is None else environ)


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set. {_FIX}")
    return value


def _integer(environ: Mapping[str, str], name: str, minimum: int, maximum: int) -> int:
    text = _required(environ, name)
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not minimum <= value <= maximum:
        raise ConfigError(
            f"{name} must be a whole number from {minimum} to {maximum} (given {text!r}). {_FIX}"
        )
    return value


def _optional_integer(environ: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    if not environ.get(name, "").strip():
        return default
    return _integer(environ, name, minimum, maximum)


def _boolean(environ: Mapping[str, str], name: str, *, default: bool) -> bool:
    text = environ.get(name, "").strip()
    if not text:
        return default
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    raise ConfigError(f"{name} must be 'true' or 'false' (given {text!r}). {_FIX}")


def _optional_count(environ: Mapping[str, str]) -> int | None:
    if not environ.get(Env.MAX_RECEIVE_COUNT, "").strip():
        return None
    return _integer(environ, Env.MAX_RECEIVE_COUNT, 1, MAX_RECEIVE_COUNT_LIMIT)


def _queue_url(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")) or value != value.strip():
        raise ConfigError(f"{name} must be an SQS queue URL (given {value!r}). {_FIX}")
    return value


def _job_types(environ: Mapping[str, str]) -> dict[str, JobTypeConfig] | None:
    """``ASYNC_JOB_TYPES`` read and validated; None when it is not set (the legacy single-type form)."""
    text = environ.get(Env.JOB_TYPES, "").strip()
    if not text:
        return None
    shape = (
        f'{{"reports": {{"{JobTypeKey.QUEUE_URL}": "https://sqs...", "{JobTypeKey.MAX_PAYLOAD_BYTES}": 262144, '
        f'"{JobTypeKey.MAX_RECEIVE_COUNT}": 3}}}}'
    )
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ConfigError(
            f"{Env.JOB_TYPES} must be a JSON object, e.g. {shape} (given {text[:200]!r}). {_FIX}"
        )
    if not value:
        raise ConfigError(f"{Env.JOB_TYPES} must name at least one job type, e.g. {shape}. {_FIX}")
    return {name: _job_type(name, settings) for name, settings in value.items()}


def _job_type(name: str, settings: object) -> JobTypeConfig:
    where = f"{Env.JOB_TYPES}: job type {name!r}"
    if not JOB_TYPE_NAME.fullmatch(name):
        raise ConfigError(f"{Env.JOB_TYPES}: job type name {name!r} is not {JOB_TYPE_NAME.pattern}. {_FIX}")
    if not isinstance(settings, dict):
        raise ConfigError(f"{where} must be a JSON object (given {settings!r}). {_FIX}")
    keys = (JobTypeKey.QUEUE_URL, JobTypeKey.MAX_PAYLOAD_BYTES, JobTypeKey.MAX_RECEIVE_COUNT)
    for key in keys:
        if key not in settings:
            raise ConfigError(f"{where} lacks {key!r}. {_FIX}")
    for key in settings:
        if key not in keys:
            raise ConfigError(f"{where} has unknown key {key!r} (known: {', '.join(keys)}). {_FIX}")
    return JobTypeConfig(
        name,
        _queue_url(settings[JobTypeKey.QUEUE_URL], f"{where}: {JobTypeKey.QUEUE_URL}"),
        _whole(
            settings[JobTypeKey.MAX_PAYLOAD_BYTES],
            f"{where}: {JobTypeKey.MAX_PAYLOAD_BYTES}",
            1,
            MAX_PAYLOAD_BYTES_LIMIT,
        ),
        _whole(
            settings[JobTypeKey.MAX_RECEIVE_COUNT],
            f"{where}: {JobTypeKey.MAX_RECEIVE_COUNT}",
            1,
            MAX_RECEIVE_COUNT_LIMIT,
        ),
    )


def _whole(value: object, name: str, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ConfigError(
            f"{name} must be a JSON whole number from {minimum} to {maximum} (given {value!r}). {_FIX}"
        )
    return value


def _operators(environ: Mapping[str, str]) -> frozenset[str]:
    text = environ.get(Env.OPERATORS, "").strip()
    if not text:
        return frozenset()
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(
            f"{Env.OPERATORS} must be a JSON list of identities, e.g. "
            f"'[\"arn:aws:iam::123456789012:role/Ops\"]' (given {text!r}). "
            "Pass the construct's operators prop, or unset it."
        )
    return frozenset(v.strip() for v in value)
