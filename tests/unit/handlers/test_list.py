"""GET /jobs: the caller's own jobs, newest first, by pages, filtered by status and type; operators name an owner."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Callable
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from lambda_handlers import listing
from lambda_handlers.idempotency import IdempotencyRecord
from lambda_handlers.models import MAX_PENDING_SECONDS, Job, utc_now
from tests.unit.handlers.conftest import Aws
from tests.unit.handlers.events import ACCOUNT, ALICE, BOB, DOMAIN, STAGE, FakeLambdaContext, body, list_event
from tests.unit.handlers.test_submit import assert_problem

OPS_ROLE = f"arn:aws:iam::{ACCOUNT}:role/Ops"
START = utc_now() - dt.timedelta(minutes=30)


def given_jobs(
    aws: Aws,
    count: int,
    owner: str = ALICE,
    *,
    job_type: str = "jobs",
    offset: int = 0,
    ttl_seconds: int = 3_600,
) -> list[str]:
    """``count`` jobs of ``owner``, one second apart (from ``START`` + ``offset`` s); their ids, oldest first."""
    ids = []
    for index in range(count):
        job_id = str(uuid.uuid4())
        created = START + dt.timedelta(seconds=offset + index)
        aws.store.create(
            Job.new(
                job_id,
                owner=owner,
                payload_sha256="0" * 64,
                now=created,
                ttl_seconds=ttl_seconds,
                job_type=job_type,
            )
        )
        ids.append(job_id)
    return ids


def listed(api: ModuleType, context: FakeLambdaContext, /, **query: Any) -> dict[str, Any]:
    """The 200 body of GET /jobs with ``query`` (a value or a list of values per name)."""
    user = query.pop("user_arn", ALICE)
    values = {name: value if isinstance(value, list) else [str(value)] for name, value in query.items()}
    response = api.handler(list_event(values, user_arn=user), context)
    assert response["statusCode"] == 200, response["body"]
    assert response["headers"]["Cache-Control"] == "no-store"
    result: dict[str, Any] = body(response)
    result["_headers"] = response["headers"]
    return result


def every_page(api: ModuleType, context: FakeLambdaContext, /, **query: Any) -> list[list[str]]:
    """The ids of every page, following ``next`` to the end."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = listed(api, context, **query, **({"cursor": cursor} if cursor else {}))
        pages.append([job["id"] for job in page["jobs"]])
        cursor = page.get("next")
        if cursor is None:
            return pages
        assert len(pages) < 50, "the cursor never ends"


def test_lists_only_the_callers_jobs_newest_first(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN three jobs of Alice's, two of Bob's, and Alice's key item of an idempotent submit
    alice = given_jobs(aws, 3)
    given_jobs(aws, 2, owner=BOB, offset=10)
    aws.store.client.put_item(
        TableName=aws.table_name,
        Item=IdempotencyRecord("key#" + "a" * 64, alice[0], "0" * 64, 2**31).to_item(),
    )

    page = listed(status, lambda_context)

    # THEN Alice's three, newest first, each a summary with its own URL; no next page
    assert [job["id"] for job in page["jobs"]] == alice[::-1]
    assert all(job["status"] == "QUEUED" and job["type"] == "jobs" for job in page["jobs"])
    assert page["jobs"][0]["links"] == {"self": f"https://{DOMAIN}/{STAGE}/jobs/{alice[-1]}"}
    assert "next" not in page
    assert "Link" not in page["_headers"]
    assert page["links"] == {"self": f"https://{DOMAIN}/{STAGE}/jobs"}
    assert not {"owner", "runId", "leaseUntil", "payloadSha256", "expiresAt"} & page["jobs"][0].keys()


def test_a_listed_job_carries_no_result_but_its_state(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a succeeded job with a result, a failed one and a running one at 40 %
    done, failed, running = given_jobs(aws, 3)
    aws.store.claim(done, "run-1", lease_until_ms=2**41)
    aws.store.complete(done, "run-1", json.dumps({"rows": 12}))
    aws.store.claim(failed, "run-2", lease_until_ms=2**41)
    aws.store.record_failure(failed, "run-2", "ValueError", "bad account", final=True)
    aws.store.claim(running, "run-3", lease_until_ms=2**41)
    aws.store.report_progress(running, "run-3", 40, "step 4/10")

    jobs = {job["id"]: job for job in listed(status, lambda_context)["jobs"]}

    assert jobs[done]["status"] == "SUCCEEDED"
    assert "result" not in jobs[done]
    assert jobs[failed]["error"] == {"type": "ValueError", "message": "bad account"}
    assert jobs[running]["progress"] == {"percent": 40, "message": "step 4/10"}
    assert jobs[running]["attempts"] == 1


def test_pages_follow_the_cursor_without_gaps_or_repeats(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    ids = given_jobs(aws, 7)

    first = listed(status, lambda_context, limit=3)
    pages = every_page(status, lambda_context, limit=3)

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [job_id for page in pages for job_id in page] == ids[::-1]
    # The next link keeps the query and adds the cursor; the Link header says the same.
    next_url = first["links"]["next"]
    assert parse_qs(urlsplit(next_url).query) == {"limit": ["3"], "cursor": [first["next"]]}
    assert first["_headers"]["Link"] == f'<{next_url}>; rel="next"'


def test_a_full_last_page_has_no_next(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    given_jobs(aws, 4)

    assert [len(page) for page in every_page(status, lambda_context, limit=2)] == [2, 2]
    assert "next" not in listed(status, lambda_context, limit=4)


def test_filters_by_status_and_type(status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext) -> None:
    # GIVEN two report jobs (one cancelled) and two thumbnail jobs (one running)
    report, cancelled = given_jobs(aws, 2, job_type="reports")
    thumbnail, running = given_jobs(aws, 2, job_type="thumbnails", offset=5)
    aws.store.cancel(cancelled, ALICE)
    aws.store.claim(running, "run-1", lease_until_ms=2**41)

    def ids(**query: Any) -> set[str]:
        return {job["id"] for job in listed(status, lambda_context, **query)["jobs"]}

    assert ids(type="reports") == {report, cancelled}
    assert ids(status="QUEUED") == {report, thumbnail}
    assert ids(status="cancelled,running") == {cancelled, running}
    assert ids(status=["CANCELLED", "RUNNING"]) == {cancelled, running}
    assert ids(status="QUEUED", type="thumbnails") == {thumbnail}
    assert ids(type="exports") == set()


def test_a_sparse_filter_answers_within_its_read_budget_and_goes_on_by_cursor(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN one failed job under nine queued ones, and a request that evaluates at most 4 jobs, 2 per Query
    monkeypatch.setattr(listing, "_MAX_EVALUATED", 4)
    monkeypatch.setattr(listing, "_EVALUATED_PER_QUERY", 2)
    (failed,) = given_jobs(aws, 1)
    given_jobs(aws, 9, offset=1)
    aws.store.cancel(failed, ALICE)

    pages = every_page(status, lambda_context, status="CANCELLED")

    # THEN the first pages are empty but point on, and the job is found once, on the last page
    assert pages[0] == []
    assert [job_id for page in pages for job_id in page] == [failed]
    assert len(pages) == 3  # 10 jobs, 4 evaluated per request


def test_hides_expired_jobs(status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext) -> None:
    # GIVEN a job past its expiry (TTL has not deleted it yet) and a live one
    (expired,) = given_jobs(aws, 1, ttl_seconds=-(MAX_PENDING_SECONDS + 86_400))
    (live,) = given_jobs(aws, 1, offset=1)

    assert [job["id"] for job in listed(status, lambda_context)["jobs"]] == [live]
    assert aws.item(expired) is not None


def test_operators_list_anyones_jobs_others_get_403(
    aws: Aws,
    entry_points: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: FakeLambdaContext,
) -> None:
    monkeypatch.setenv("ASYNC_JOB_OPERATORS", json.dumps([OPS_ROLE]))
    status = entry_points("lambda_handlers.status")
    bob = given_jobs(aws, 2, owner=BOB)
    given_jobs(aws, 1, offset=5)

    operator = f"arn:aws:sts::{ACCOUNT}:assumed-role/Ops/carol"
    assert [job["id"] for job in listed(status, lambda_context, owner=BOB, user_arn=operator)["jobs"]] == bob[
        ::-1
    ]
    assert listed(status, lambda_context, owner=ALICE)["jobs"]  # naming oneself is allowed
    response = status.handler(list_event({"owner": [BOB]}, user_arn=ALICE), lambda_context)
    assert_problem(response, 403, "owner-forbidden")
    assert BOB not in response["body"]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"staus": ["FAILED"]}, "staus"),
        ({"status": ["DONE"]}, "status"),
        ({"limit": ["0"]}, "limit"),
        ({"limit": ["101"]}, "limit"),
        ({"limit": ["ten"]}, "limit"),
        ({"limit": ["٣"]}, "limit"),
        ({"limit": ["2", "3"]}, "limit"),
        ({"type": ["Reports!"]}, "type"),
        ({"cursor": ["not-a-cursor"]}, "cursor"),
        ({"cursor": [listing.encode_cursor("not-a-job-id", "2026-12-01T10:00:00.000Z")]}, "cursor"),
        ({"cursor": [listing.encode_cursor(str(uuid.uuid4()), "yesterday")]}, "cursor"),
    ],
)
def test_a_malformed_query_is_a_400_naming_the_parameter(
    status: ModuleType,
    aws: Aws,
    lambda_context: FakeLambdaContext,
    query: dict[str, list[str]],
    parameter: str,
) -> None:
    response = status.handler(list_event(query), lambda_context)

    assert_problem(response, 400, "invalid-query-parameter")
    assert body(response)["parameter"] == parameter


def test_a_table_without_the_index_is_a_503(
    status: ModuleType, aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    aws.dynamodb.delete_table(TableName=aws.table_name)

    response = status.handler(list_event(), lambda_context)

    assert_problem(response, 503, "service-unavailable")
    assert response["headers"]["Retry-After"]


def test_the_cursor_round_trips_and_holds_no_owner() -> None:
    job_id = str(uuid.uuid4())
    cursor = listing.encode_cursor(job_id, "2026-12-01T10:00:00.000Z")

    assert listing.decode_cursor(cursor) == (job_id, "2026-12-01T10:00:00.000Z")
    assert "=" not in cursor
    # the cursor is base64 of the job's key alone: no owner (it always comes from the request)
    assert set(json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))) == {"id", "createdAt"}
