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

__all__ = [
    "ConfigError",
    "DeadLetterConfig",
    "StatusConfig",
    "SubmitConfig",
    "WorkerConfig",
    "load",
]

#: Largest accepted request body: SQS's 1 MiB message limit less room for the message envelope.
MAX_PAYLOAD_BYTES_LIMIT: Final = 1_047_552
#: SQS's longest visibility timeout, so the longest retry delay ``ChangeMessageVisibility`` can set (12 h).
MAX_VISIBILITY_SECONDS: Final = 43_200
#: Retry delays of a deployment that does not set them (one made before they existed).
DEFAULT_RETRY_BASE_SECONDS: Final = 10
DEFAULT_RETRY_MAX_SECONDS: Final = 900

_HANDLER_RE: Final = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", re.ASCII)
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
class _Settings:
    """What every function needs."""

    #: ``ASYNC_JOB_TABLE_NAME``: the status table (a name or an ARN).
    table_name: str
    #: ``POWERTOOLS_METRICS_NAMESPACE``: where the job metrics go (Powertools fails without one).
    metrics_namespace: str
    #: ``ASYNC_JOB_TTL_SECONDS``: how long a job stays readable after it ends (SUCCEEDED, FAILED, CANCELLED).
    ttl_seconds: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        """Read and validate this kind's variables from ``environ``."""
        raise NotImplementedError

    @staticmethod
    def _common(environ: Mapping[str, str]) -> dict[str, Any]:
        table_name = _required(environ, "ASYNC_JOB_TABLE_NAME")
        if any(c.isspace() for c in table_name):
            raise ConfigError(
                f"ASYNC_JOB_TABLE_NAME must be a DynamoDB table name or ARN (given {table_name!r}). {_FIX}"
            )
        return {
            "table_name": table_name,
            "metrics_namespace": _required(environ, "POWERTOOLS_METRICS_NAMESPACE"),
            "ttl_seconds": _integer(environ, "ASYNC_JOB_TTL_SECONDS", 1, 10 * 366 * 86_400),
        }


@dataclass(frozen=True, slots=True)
class SubmitConfig(_Settings):
    """Settings of ``lambda_handlers.submit`` (``POST /jobs``).

    Examples
    --------
    >>> load(SubmitConfig).max_payload_bytes
    262144
    """

    #: ``ASYNC_JOB_QUEUE_URL``: the job queue.
    queue_url: str
    #: ``ASYNC_JOB_MAX_PAYLOAD_BYTES``: the largest accepted request body, in bytes.
    max_payload_bytes: int
    #: ``ASYNC_JOB_RETRY_AFTER_SECONDS``: the ``Retry-After`` advised while a job is not finished.
    retry_after_seconds: int
    #: ``ASYNC_JOB_IDEMPOTENCY_KEY_REQUIRED`` (optional, ``true``/``false``; unset: false): refuse a request
    #: without an ``Idempotency-Key``.
    idempotency_key_required: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        """Read and validate the submit function's variables."""
        queue_url = _required(environ, "ASYNC_JOB_QUEUE_URL")
        if not queue_url.startswith(("https://", "http://")):
            raise ConfigError(f"ASYNC_JOB_QUEUE_URL must be an SQS queue URL (given {queue_url!r}). {_FIX}")
        return cls(
            **cls._common(environ),
            queue_url=queue_url,
            max_payload_bytes=_integer(environ, "ASYNC_JOB_MAX_PAYLOAD_BYTES", 1, MAX_PAYLOAD_BYTES_LIMIT),
            retry_after_seconds=_integer(environ, "ASYNC_JOB_RETRY_AFTER_SECONDS", 1, 86_400),
            idempotency_key_required=_boolean(environ, "ASYNC_JOB_IDEMPOTENCY_KEY_REQUIRED", default=False),
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
            retry_after_seconds=_integer(environ, "ASYNC_JOB_RETRY_AFTER_SECONDS", 1, 86_400),
            operators=_operators(environ),
        )


@dataclass(frozen=True, slots=True)
class WorkerConfig(_Settings):
    """Settings of ``lambda_handlers.worker`` (the job queue's consumer).

    Examples
    --------
    >>> load(WorkerConfig).handler
    'report.generate'
    """

    #: ``ASYNC_JOB_HANDLER``: the team's handler, ``module.function`` (``pkg.module.function``).
    handler: str
    #: ``ASYNC_JOB_MAX_RECEIVE_COUNT``: receives before the message is dead-lettered; the last attempt.
    max_receive_count: int
    #: ``ASYNC_JOB_RETRY_BASE_SECONDS`` (optional; unset: 10): the first retry's delay cap, doubled per attempt.
    retry_base_seconds: int = DEFAULT_RETRY_BASE_SECONDS
    #: ``ASYNC_JOB_RETRY_MAX_SECONDS`` (optional; unset: 900): the cap of every retry delay.
    retry_max_seconds: int = DEFAULT_RETRY_MAX_SECONDS

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        """Read and validate the worker's variables."""
        handler = _required(environ, "ASYNC_JOB_HANDLER")
        if not _HANDLER_RE.fullmatch(handler):
            raise ConfigError(
                f"ASYNC_JOB_HANDLER must be 'module.function', a dotted Python path (given {handler!r}). "
                "Pass the construct's handler prop as e.g. 'reports.generate'."
            )
        base = _optional_integer(
            environ, "ASYNC_JOB_RETRY_BASE_SECONDS", DEFAULT_RETRY_BASE_SECONDS, 1, MAX_VISIBILITY_SECONDS
        )
        maximum = _optional_integer(
            environ, "ASYNC_JOB_RETRY_MAX_SECONDS", DEFAULT_RETRY_MAX_SECONDS, 1, MAX_VISIBILITY_SECONDS
        )
        if maximum < base:
            raise ConfigError(
                f"ASYNC_JOB_RETRY_MAX_SECONDS must be at least ASYNC_JOB_RETRY_BASE_SECONDS (given {maximum} and "
                f"{base}): it caps the doubling base delay. {_FIX}"
            )
        return cls(
            **cls._common(environ),
            handler=handler,
            max_receive_count=_integer(environ, "ASYNC_JOB_MAX_RECEIVE_COUNT", 1, 1_000),
            retry_base_seconds=base,
            retry_max_seconds=maximum,
        )


@dataclass(frozen=True, slots=True)
class DeadLetterConfig(_Settings):
    """Settings of ``lambda_handlers.dead_letter`` (the dead-letter queue's consumer).

    Examples
    --------
    >>> load(DeadLetterConfig).table_name
    'Jobs-Table'
    """

    #: ``ASYNC_JOB_MAX_RECEIVE_COUNT`` (optional): the job queue's attempts, for the error message.
    max_receive_count: int | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        """Read and validate the dead-letter consumer's variables."""
        attempts = None
        if "ASYNC_JOB_MAX_RECEIVE_COUNT" in environ:
            attempts = _integer(environ, "ASYNC_JOB_MAX_RECEIVE_COUNT", 1, 1_000)
        return cls(**cls._common(environ), max_receive_count=attempts)


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


def _operators(environ: Mapping[str, str]) -> frozenset[str]:
    text = environ.get("ASYNC_JOB_OPERATORS", "").strip()
    if not text:
        return frozenset()
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(
            "ASYNC_JOB_OPERATORS must be a JSON list of identities, e.g. "
            f"'[\"arn:aws:iam::123456789012:role/Ops\"]' (given {text!r}). "
            "Pass the construct's operators prop, or unset it."
        )
    return frozenset(v.strip() for v in value)
