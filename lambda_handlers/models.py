"""The job: its status values, its status-table item and its HTTP resource.

The item's attribute names and types are the contract in ``docs/design.md`` ("Status table item").
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, TypeGuard

from lambda_handlers.contract import DEFAULT_JOB_TYPE, JOB_TYPE_ATTRIBUTE
from lambda_handlers.item_size import ITEM_MAX_BYTES, ItemError, item_size

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

__all__ = [
    "ITEM_MAX_BYTES",
    "MAX_PENDING_SECONDS",
    "ItemError",
    "Job",
    "JobStatus",
    "epoch_millis",
    "epoch_seconds",
    "format_timestamp",
    "is_job_id",
    "item_size",
    "utc_now",
]

#: How long a job may stay unfinished before its item expires anyway: SQS's longest message retention
#: (14 days), so no message of the job can outlive its item. ``job_ttl`` runs from the terminal state.
MAX_PENDING_SECONDS: Final = 14 * 86_400

#: A canonical job id: a lowercase UUID4 in its 8-4-4-4-12 form.
_JOB_ID_RE: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


class JobStatus(StrEnum):
    """Where a job is in its life (``docs/design.md``, "State machine").

    Examples
    --------
    >>> JobStatus("RUNNING").is_terminal
    False
    >>> JobStatus.SUCCEEDED.is_terminal
    True
    """

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        """Whether the job is finished: nothing will change it any more."""
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


def is_job_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a canonical job id (a lowercase UUID4, as ``str(uuid.uuid4())`` makes).

    Examples
    --------
    >>> is_job_id("4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21")
    True
    >>> is_job_id("4F0C5A0E-3B7D-4D0F-9A57-0F1C2F8B9E21")
    False
    """
    return isinstance(value, str) and _JOB_ID_RE.fullmatch(value) is not None


def utc_now() -> dt.datetime:
    """The current time, timezone-aware UTC.

    Examples
    --------
    >>> utc_now().tzinfo
    datetime.timezone.utc
    """
    return dt.datetime.now(dt.UTC)


def format_timestamp(moment: dt.datetime) -> str:
    """ISO-8601 UTC with milliseconds, as the table and the API store times.

    Examples
    --------
    >>> format_timestamp(dt.datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=dt.UTC))
    '2026-11-23T10:00:00.123Z'
    """
    moment = moment.astimezone(dt.UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def epoch_seconds(moment: dt.datetime) -> int:
    """Whole seconds since the epoch (the unit of ``expiresAt``).

    Examples
    --------
    >>> epoch_seconds(dt.datetime(1970, 1, 1, 0, 1, tzinfo=dt.UTC))
    60
    """
    return int(moment.timestamp())


def epoch_millis(moment: dt.datetime) -> int:
    """Whole milliseconds since the epoch (the unit of ``leaseUntil``).

    Examples
    --------
    >>> epoch_millis(dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC))
    1000
    """
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Job:
    """One job, as the status table stores it.

    Examples
    --------
    >>> job = Job.new("4f0c5a0e-3b7d-4d0f-9a57-0f1c2f8b9e21", owner="alice", payload_sha256="ab12...",
    ...               now=utc_now(), ttl_seconds=3600)
    >>> Job.from_item(job.to_item()) == job
    True
    """

    job_id: str
    owner: str
    status: JobStatus
    created_at: str
    updated_at: str
    #: Epoch seconds after which the job counts as absent.
    expires_at: int
    attempts: int = 0
    payload_sha256: str | None = None
    progress_percent: float | None = None
    progress_message: str | None = None
    #: The handler's return value as JSON text (SUCCEEDED only).
    result: str | None = None
    #: The failure (FAILED), or the last failure while a retry is pending (QUEUED, RUNNING).
    error_type: str | None = None
    error_message: str | None = None
    #: Fencing token of the run that holds the job (RUNNING only).
    run_id: str | None = None
    #: Epoch milliseconds until which that run may still be alive.
    lease_until: int | None = None
    #: The owner asked to cancel the job while it ran (``DELETE /jobs/{id}``); the handler sees it.
    cancel_requested: bool = False
    #: SQS message id of the delivery that last claimed the job: the job's own message while a retry waits
    #: out its backoff; any other message of the job is a duplicate then.
    message_id: str | None = None
    #: Epoch milliseconds before which a retry may not start (QUEUED after a failed attempt).
    retry_at: int | None = None
    #: What the handler said when it stopped on a cancel request (``JobCancelledError``'s message).
    cancel_message: str | None = None
    #: A replay of the request (same ``Idempotency-Key``) sent the job's message again and recorded it: the
    #: first request's undo must then leave the job alone.
    enqueue_confirmed: bool = False
    #: The job type (``POST /{type}``); an item written before job types existed is of type ``jobs``.
    job_type: str = DEFAULT_JOB_TYPE
    #: The result's key in the API's bucket (SUCCEEDED with a result too large for the item), and its size.
    result_ref: str | None = None
    result_bytes: int | None = None
    #: The files the handler saved: JSON text of ``[{"name", "size", "contentType"}]``.
    files: str | None = None
    #: The caller's webhook and its delivery: JSON text of ``{"url", "status", "attempts", ...}``.
    webhook: str | None = None
    #: ``watchedUntil``, epoch seconds: a WebSocket connection follows the job until then, so the table's
    #: stream pushes its changes (``lambda_handlers.websocket_push``). Stored, never shown.
    watched_until: int | None = None
    #: A long job type's durable execution ARN, recorded by its claim (``DELETE`` stops that execution).
    execution: str | None = None

    @classmethod
    def new(
        cls,
        job_id: str,
        *,
        owner: str,
        payload_sha256: str,
        now: dt.datetime,
        ttl_seconds: int,
        job_type: str = DEFAULT_JOB_TYPE,
    ) -> Job:
        """A job just accepted: QUEUED, no attempt yet.

        Its item expires ``MAX_PENDING_SECONDS + ttl_seconds`` after ``now`` unless it ends first; every
        terminal write sets the expiry to ``ttl_seconds`` after the end.

        Examples
        --------
        >>> Job.new(str(uuid.uuid4()), owner="anonymous", payload_sha256=digest, now=utc_now(),
        ...         ttl_seconds=604800, job_type="reports").status
        <JobStatus.QUEUED: 'QUEUED'>
        """
        stamp = format_timestamp(now)
        return cls(
            job_id=job_id,
            owner=owner,
            status=JobStatus.QUEUED,
            created_at=stamp,
            updated_at=stamp,
            expires_at=epoch_seconds(now) + MAX_PENDING_SECONDS + ttl_seconds,
            payload_sha256=payload_sha256,
            job_type=job_type,
        )

    def is_expired(self, now: dt.datetime) -> bool:
        """Whether the job is past ``expiresAt`` (TTL deletion lags; an expired item counts as absent).

        Examples
        --------
        >>> job.is_expired(utc_now() + dt.timedelta(days=400))
        True
        """
        return self.expires_at <= epoch_seconds(now)

    def is_takeable(self, now: dt.datetime) -> bool:
        """Whether no live run holds the job: QUEUED, or RUNNING under a lease that ran out.

        Examples
        --------
        >>> job.is_takeable(utc_now())
        True
        """
        if self.status is JobStatus.QUEUED:
            return True
        return self.status is JobStatus.RUNNING and (
            self.lease_until is None or self.lease_until < epoch_millis(now)
        )

    @classmethod
    def from_item(cls, item: Mapping[str, AttributeValueTypeDef]) -> Job:
        """The job in a DynamoDB item (low-level client format, ``{"S": ...}``/``{"N": ...}``).

        Raises
        ------
        ItemError
            A required attribute is missing or has the wrong type.

        Examples
        --------
        >>> Job.from_item(client.get_item(TableName=table, Key={"pk": {"S": job_id}})["Item"]).status
        <JobStatus.RUNNING: 'RUNNING'>
        """
        try:
            return cls(
                job_id=_s(item, "pk"),
                owner=_s(item, "owner"),
                status=JobStatus(_s(item, "status")),
                created_at=_s(item, "createdAt"),
                updated_at=_s(item, "updatedAt"),
                expires_at=int(_n(item, "expiresAt")),
                attempts=int(_n(item, "attempts", "0")),
                payload_sha256=_opt_s(item, "payloadSha256"),
                progress_percent=_opt_float(item, "progressPercent"),
                progress_message=_opt_s(item, "progressMessage"),
                result=_opt_s(item, "result"),
                error_type=_opt_s(item, "errorType"),
                error_message=_opt_s(item, "errorMessage"),
                run_id=_opt_s(item, "runId"),
                lease_until=_opt_int(item, "leaseUntil"),
                cancel_requested=_opt_bool(item, "cancelRequested"),
                message_id=_opt_s(item, "messageId"),
                retry_at=_opt_int(item, "retryAt"),
                cancel_message=_opt_s(item, "cancelMessage"),
                enqueue_confirmed=_opt_bool(item, "enqueueConfirmed"),
                job_type=_opt_s(item, JOB_TYPE_ATTRIBUTE) or DEFAULT_JOB_TYPE,
                result_ref=_opt_s(item, "resultRef"),
                result_bytes=_opt_int(item, "resultBytes"),
                files=_opt_s(item, "files"),
                webhook=_opt_s(item, "webhook"),
                watched_until=_opt_int(item, "watchedUntil"),
                execution=_opt_s(item, "execution"),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ItemError(f"status-table item {item.get('pk')!r} is malformed: {error!r}") from error

    def to_item(self) -> dict[str, AttributeValueTypeDef]:
        """The DynamoDB item (low-level client format); None fields are left out.

        Examples
        --------
        >>> client.put_item(TableName=table, Item=job.to_item())
        """
        item: dict[str, AttributeValueTypeDef] = {
            "pk": {"S": self.job_id},
            "owner": {"S": self.owner},
            "status": {"S": self.status.value},
            "createdAt": {"S": self.created_at},
            "updatedAt": {"S": self.updated_at},
            "expiresAt": {"N": str(self.expires_at)},
            "attempts": {"N": str(self.attempts)},
            JOB_TYPE_ATTRIBUTE: {"S": self.job_type},
        }
        optional: dict[str, str | None] = {
            "payloadSha256": self.payload_sha256,
            "progressMessage": self.progress_message,
            "result": self.result,
            "errorType": self.error_type,
            "errorMessage": self.error_message,
            "runId": self.run_id,
            "messageId": self.message_id,
            "cancelMessage": self.cancel_message,
            "resultRef": self.result_ref,
            "files": self.files,
            "webhook": self.webhook,
            "execution": self.execution,
        }
        item.update({name: {"S": value} for name, value in optional.items() if value is not None})
        if self.progress_percent is not None:
            item["progressPercent"] = {"N": str(self.progress_percent)}
        if self.lease_until is not None:
            item["leaseUntil"] = {"N": str(self.lease_until)}
        if self.retry_at is not None:
            item["retryAt"] = {"N": str(self.retry_at)}
        if self.result_bytes is not None:
            item["resultBytes"] = {"N": str(self.result_bytes)}
        if self.watched_until is not None:
            item["watchedUntil"] = {"N": str(self.watched_until)}
        if self.cancel_requested:
            item["cancelRequested"] = {"BOOL": True}
        if self.enqueue_confirmed:
            item["enqueueConfirmed"] = {"BOOL": True}
        return item

    def to_resource(self, self_url: str) -> dict[str, Any]:
        """The job as the API shows it to its owner (``GET /jobs/{id}``, the ``202`` of ``POST /{type}``).

        ``type`` is the job type; an item written before job types shows ``jobs``.

        ``result`` appears only when SUCCEEDED and small enough to be kept in the item (else read it at
        ``links.result``, which every SUCCEEDED job has), ``error`` only when FAILED, ``lastError`` only while a retry
        is pending (QUEUED or RUNNING after a failed attempt), ``cancelRequested: true`` only while a cancel
        request waits for the handler to stop, ``cancellation`` only when CANCELLED by a handler that said
        why. ``progress`` is what the handler last reported while it runs and once it SUCCEEDED; a FAILED or
        CANCELLED job shows none (its last report does not describe the outcome). The owner, run id, lease,
        message id and WebSocket watch are never shown.

        Parameters
        ----------
        self_url
            The job's URL, for ``links.self``.

        Examples
        --------
        >>> job.to_resource("https://api.example.com/prod/jobs/" + job.job_id)["status"]
        'QUEUED'
        """
        resource: dict[str, Any] = {
            "id": self.job_id,
            "type": self.job_type,
            "status": self.status.value,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "attempts": self.attempts,
            "progress": (
                None
                if self.progress_percent is None
                or self.status not in (JobStatus.RUNNING, JobStatus.SUCCEEDED)
                else {"percent": _number(self.progress_percent), "message": self.progress_message}
            ),
        }
        if self.status is JobStatus.SUCCEEDED and self.result_ref is None:
            resource["result"] = None if self.result is None else json.loads(self.result)
        error = (
            None
            if self.error_type is None
            else {"type": self.error_type, "message": self.error_message or ""}
        )
        if self.status is JobStatus.FAILED and error is not None:
            resource["error"] = error
        if self.status in (JobStatus.QUEUED, JobStatus.RUNNING) and error is not None:
            resource["lastError"] = error
        if self.cancel_requested and not self.status.is_terminal:
            resource["cancelRequested"] = True
        if self.status is JobStatus.CANCELLED and self.cancel_message:
            resource["cancellation"] = {"message": self.cancel_message}
        if self.webhook:
            resource["webhook"] = json.loads(self.webhook)
        resource["links"] = {"self": self_url}
        if self.status is JobStatus.SUCCEEDED:
            resource["links"]["result"] = f"{self_url}/result"
        return resource


def _number(value: float) -> int | float:
    return int(value) if value.is_integer() else value


def _s(item: Mapping[str, AttributeValueTypeDef], name: str) -> str:
    return item[name]["S"]


def _n(item: Mapping[str, AttributeValueTypeDef], name: str, default: str | None = None) -> str:
    if name not in item and default is not None:
        return default
    return item[name]["N"]


def _opt_s(item: Mapping[str, AttributeValueTypeDef], name: str) -> str | None:
    return item[name]["S"] if name in item else None


def _opt_float(item: Mapping[str, AttributeValueTypeDef], name: str) -> float | None:
    return float(item[name]["N"]) if name in item else None


def _opt_int(item: Mapping[str, AttributeValueTypeDef], name: str) -> int | None:
    return int(item[name]["N"]) if name in item else None


def _opt_bool(item: Mapping[str, AttributeValueTypeDef], name: str) -> bool:
    if name not in item:
        return False
    value = item[name]["BOOL"]
    if not isinstance(value, bool):
        raise TypeError(f"{name} is not a boolean")
    return value
