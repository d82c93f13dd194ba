"""``GET /jobs``: the caller's jobs, newest first, a page at a time, read from the status table's owner index.

The index (``contract.OWNER_INDEX``) is partitioned by ``owner`` and sorted by ``createdAt``, so a page is one
or a few Queries of one partition, backwards. Filters (``status``, ``type``) and expiry are DynamoDB filter
expressions: a Query evaluates up to ``_EVALUATED_PER_QUERY`` jobs and returns those that match, and a request
evaluates at most ``_MAX_EVALUATED`` before it answers what it found with a cursor. A page can so hold fewer jobs
than ``limit`` (even none) and still have a next one: follow ``next`` until it is absent.

The cursor is the last listed job's index key (its id and creation time), base64url-encoded JSON. It carries no
owner: the owner always comes from the request, so a cursor cannot open anyone else's jobs.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from lambda_handlers.contract import JOB_TYPE_ATTRIBUTE, JOB_TYPE_NAME, LIST_QUERY_PARAMETERS, OWNER_INDEX
from lambda_handlers.models import Job, JobStatus, epoch_seconds, is_job_id, utc_now
from lambda_handlers.status_table import StatusTable, store_error

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "InvalidListQueryError",
    "JobPage",
    "ListQuery",
    "decode_cursor",
    "encode_cursor",
    "list_jobs",
    "parse_list_query",
    "summary",
]

#: Jobs per page when the request names no ``limit``.
DEFAULT_LIMIT: Final = 20
#: The largest ``limit``: 100 summaries stay far below Lambda's 6 MB response.
MAX_LIMIT: Final = 100
#: Jobs one Query evaluates (before its filter).
_EVALUATED_PER_QUERY: Final = 100
#: Jobs one request evaluates before it answers with what it found (a bound on its latency and read cost).
_MAX_EVALUATED: Final = 1_000
_TIMESTAMP_RE: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
_STATUSES: Final = ", ".join(JobStatus)


class InvalidListQueryError(ValueError):
    """A ``GET /jobs`` query parameter is malformed; the message names it, the value and the fix.

    Attributes
    ----------
    parameter
        The parameter's name (``status``, ``limit``, ``cursor``...).
    """

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True, slots=True)
class ListQuery:
    """What a ``GET /jobs`` asks for.

    Attributes
    ----------
    statuses
        Only jobs in one of these states; empty: any.
    job_type
        Only jobs of this type; None: any.
    limit
        The most jobs on the page.
    start
        Where the previous page ended (the cursor's job id and creation time); None: the newest job.
    owner
        Whose jobs an operator asks for; None: the caller's own.
    """

    statuses: frozenset[JobStatus] = frozenset()
    job_type: str | None = None
    limit: int = DEFAULT_LIMIT
    start: tuple[str, str] | None = None
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of jobs, newest first, and where the next page starts (None: this is the last)."""

    jobs: tuple[Job, ...]
    next_cursor: str | None


def parse_list_query(parameters: Mapping[str, Sequence[str]]) -> ListQuery:
    """The ``ListQuery`` in a request's query parameters (name -> every value given, in order).

    ``status`` may be repeated or comma-separated (``status=QUEUED,RUNNING``); every other parameter is given
    once. An empty value counts as not given.

    Raises
    ------
    InvalidListQueryError
        An unknown parameter, a repeated one, an unknown status, a malformed type, a ``limit`` that is not an
        integer from 1 to ``MAX_LIMIT``, a cursor this API did not make.

    Examples
    --------
    >>> parse_list_query({"status": ["FAILED,CANCELLED"], "limit": ["5"]})
    ListQuery(statuses=frozenset({<JobStatus.FAILED: 'FAILED'>, <JobStatus.CANCELLED: 'CANCELLED'>}), ..., limit=5, ...)
    """
    unknown = sorted(name for name in parameters if name not in LIST_QUERY_PARAMETERS)
    if unknown:
        raise InvalidListQueryError(
            unknown[0],
            f"Unknown query parameter {unknown[0][:40]!r}; GET /jobs takes {', '.join(LIST_QUERY_PARAMETERS)}.",
        )
    values = {name: [value for value in given if value != ""] for name, given in parameters.items()}
    statuses = frozenset(
        _status(part) for value in values.get("status", []) for part in value.split(",") if part
    )
    return ListQuery(
        statuses=statuses,
        job_type=_job_type(_single(values, "type")),
        limit=_limit(_single(values, "limit")),
        start=None if (cursor := _single(values, "cursor")) is None else decode_cursor(cursor),
        owner=_single(values, "owner"),
    )


def summary(job: Job, self_url: str) -> dict[str, Any]:
    """The job as ``GET /jobs`` lists it: its resource (``Job.to_resource``) without ``result``.

    Examples
    --------
    >>> "result" in summary(job, "https://api.example.com/prod/jobs/" + job.job_id)
    False
    """
    listed = job.to_resource(self_url)
    listed.pop("result", None)
    return listed


def encode_cursor(job_id: str, created_at: str) -> str:
    """The cursor of the page after the job ``job_id`` created at ``created_at``.

    Examples
    --------
    >>> decode_cursor(encode_cursor(job_id, "2026-12-01T10:00:00.000Z")) == (job_id, "2026-12-01T10:00:00.000Z")
    True
    """
    text = json.dumps({"id": job_id, "createdAt": created_at}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The job id and creation time a cursor holds.

    Raises
    ------
    InvalidListQueryError
        The cursor is not one this API made.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8"))
    except (UnicodeError, binascii.Error, ValueError):
        data = None
    if isinstance(data, dict) and set(data) == {"id", "createdAt"}:
        job_id, created_at = data["id"], data["createdAt"]
        if is_job_id(job_id) and isinstance(created_at, str) and _TIMESTAMP_RE.fullmatch(created_at):
            return job_id, created_at
    raise InvalidListQueryError(
        "cursor",
        "The cursor is not one this API made: pass the 'next' of the previous page unchanged, or none for the "
        "newest jobs.",
    )


def list_jobs(table: StatusTable, owner: str, query: ListQuery, now: dt.datetime | None = None) -> JobPage:
    """``owner``'s jobs that match ``query``, newest first, and the cursor of the next page.

    Expired jobs (past ``expiresAt``, not yet deleted by TTL) are left out, as ``GET /jobs/{id}`` hides them.

    Raises
    ------
    JobStoreError
        DynamoDB failed (a missing index too: a table passed to the construct without it).

    Examples
    --------
    >>> page = list_jobs(StatusTable("Jobs-Table"), "arn:aws:iam::123456789012:user/alice", ListQuery(limit=2))
    >>> [job.status for job in page.jobs], page.next_cursor is not None
    ([<JobStatus.RUNNING: 'RUNNING'>, <JobStatus.SUCCEEDED: 'SUCCEEDED'>], True)
    """
    now = now or utc_now()
    request = _query_request(table.table_name, owner, query, now)
    start: dict[str, AttributeValueTypeDef] | None = (
        None if query.start is None else _index_key(owner, *query.start)
    )
    jobs: list[Job] = []
    evaluated = 0
    while True:
        if start is not None:
            request["ExclusiveStartKey"] = start
        try:
            answer = table.client.query(**request)
        except (BotoCoreError, ClientError) as error:
            raise store_error("Query", f"owner {owner!r}", error) from error
        evaluated += int(answer.get("ScannedCount", 0))
        items = answer.get("Items", [])
        start = answer.get("LastEvaluatedKey")
        for position, item in enumerate(items):
            jobs.append(Job.from_item(item))
            if len(jobs) == query.limit:
                more = start is not None or position < len(items) - 1
                last = jobs[-1]
                return JobPage(tuple(jobs), encode_cursor(last.job_id, last.created_at) if more else None)
        if start is None:
            return JobPage(tuple(jobs), None)
        if evaluated >= _MAX_EVALUATED:
            return JobPage(tuple(jobs), encode_cursor(start["pk"]["S"], start["createdAt"]["S"]))


def _query_request(table_name: str, owner: str, query: ListQuery, now: dt.datetime) -> dict[str, Any]:
    filters = ["expiresAt > :nowSec"]
    names: dict[str, str] = {"#o": "owner"}
    values: dict[str, AttributeValueTypeDef] = {
        ":owner": {"S": owner},
        ":nowSec": {"N": str(epoch_seconds(now))},
    }
    if query.statuses:
        names["#s"] = "status"
        placeholders = []
        for index, status in enumerate(sorted(query.statuses)):
            values[f":s{index}"] = {"S": status.value}
            placeholders.append(f":s{index}")
        filters.append(f"#s IN ({', '.join(placeholders)})")
    if query.job_type is not None:
        names["#t"] = JOB_TYPE_ATTRIBUTE
        values[":type"] = {"S": query.job_type}
        filters.append("#t = :type")
    return {
        "TableName": table_name,
        "IndexName": OWNER_INDEX,
        "KeyConditionExpression": "#o = :owner",
        "FilterExpression": " AND ".join(filters),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": False,
        "Limit": _EVALUATED_PER_QUERY,
    }


def _index_key(owner: str, job_id: str, created_at: str) -> dict[str, AttributeValueTypeDef]:
    return {"pk": {"S": job_id}, "owner": {"S": owner}, "createdAt": {"S": created_at}}


def _single(values: Mapping[str, list[str]], name: str) -> str | None:
    given = values.get(name, [])
    if len(given) > 1:
        raise InvalidListQueryError(
            name, f"Query parameter {name!r} is given {len(given)} times; give it once."
        )
    return given[0] if given else None


def _status(value: str) -> JobStatus:
    try:
        return JobStatus(value.strip().upper())
    except ValueError:
        raise InvalidListQueryError(
            "status", f"Unknown status {value[:40]!r}: a job's status is one of {_STATUSES}."
        ) from None


def _job_type(value: str | None) -> str | None:
    if value is None or JOB_TYPE_NAME.fullmatch(value):
        return value
    raise InvalidListQueryError(
        "type",
        f"Invalid job type {value[:60]!r}: a job type is lowercase letters, digits and '-', starting with a "
        "letter, at most 40 characters (the path segment it is submitted at).",
    )


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise InvalidListQueryError(
            "limit", f"Invalid limit {value[:20]!r}: give a whole number of jobs from 1 to {MAX_LIMIT}."
        )
    return int(value)
