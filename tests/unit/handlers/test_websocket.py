"""The WebSocket's handlers on moto: connect, subscribe (own job, someone else's, all mine), disconnect, and the
push of a job's changes to its subscribers (the management API through botocore's Stubber: moto has none)."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from botocore.stub import Stubber

from lambda_handlers import clients
from lambda_handlers.models import Job, JobStatus, utc_now
from tests.unit.handlers.conftest import Aws
from tests.unit.handlers.events import (
    ALICE,
    BOB,
    DOMAIN,
    STAGE,
    FakeLambdaContext,
    body,
    get_event,
    post_event,
)

CONNECTIONS = "Jobs-Connections"
JOBS_URL = f"https://{DOMAIN}/{STAGE}/jobs"
WSS_URL = f"wss://ws123abcde.execute-api.us-east-1.amazonaws.com/{STAGE}"
ENDPOINT = f"https://ws123abcde.execute-api.us-east-1.amazonaws.com/{STAGE}"
_MODULES = ("lambda_handlers.websocket", "lambda_handlers.websocket_push", "lambda_handlers.submit")


@pytest.fixture
def ws_env(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    """The moto account with the connections table too, and the WebSocket's variables set."""
    aws.dynamodb.create_table(
        TableName=CONNECTIONS,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk")],
        BillingMode="PAY_PER_REQUEST",
    )
    for name, value in {
        "ASYNC_JOB_CONNECTIONS_TABLE": CONNECTIONS,
        "ASYNC_JOB_JOBS_URL": JOBS_URL,
        "ASYNC_JOB_WEBSOCKET_ENDPOINT": ENDPOINT,
        "ASYNC_JOB_WEBSOCKET_URL": WSS_URL,
    }.items():
        monkeypatch.setenv(name, value)
    yield aws
    for module in _MODULES:
        sys.modules.pop(module, None)


@pytest.fixture
def routes(ws_env: Aws, entry_points: Callable[[str], ModuleType]) -> ModuleType:
    return entry_points("lambda_handlers.websocket")


@pytest.fixture
def push(ws_env: Aws, entry_points: Callable[[str], ModuleType]) -> ModuleType:
    return entry_points("lambda_handlers.websocket_push")


@pytest.fixture
def management() -> Iterator[tuple[Stubber, list[dict[str, Any]]]]:
    """The push's management API client, stubbed; and every post it made (connection id, frame)."""
    clients.management_api.cache_clear()
    client = clients.management_api(ENDPOINT)
    posts: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        posts.append({"to": params["ConnectionId"], "frame": json.loads(params["Data"])})

    client.meta.events.register("before-parameter-build.apigatewaymanagementapi.PostToConnection", record)
    with Stubber(client) as stubber:
        yield stubber, posts
        stubber.assert_no_pending_responses()
    clients.management_api.cache_clear()


def ws_event(
    route: str, connection_id: str, body: Any = None, user_arn: str | None = ALICE
) -> dict[str, Any]:
    """A WebSocket API event (Lambda proxy), as API Gateway sends it for ``route``."""
    event_type = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE")
    context: dict[str, Any] = {
        "routeKey": route,
        "eventType": event_type,
        "connectionId": connection_id,
        "requestId": str(uuid.uuid4()),
        "domainName": "ws123abcde.execute-api.us-east-1.amazonaws.com",
        "stage": STAGE,
        "apiId": "ws123abcde",
        "identity": {"sourceIp": "203.0.113.7", "userArn": user_arn},
    }
    event: dict[str, Any] = {"requestContext": context, "isBase64Encoded": False}
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    return event


def send(routes: ModuleType, connection_id: str, frame: Any) -> dict[str, Any]:
    """A frame from the client: the route API Gateway selects by ``action``, and the frame answered."""
    action = frame.get("action") if isinstance(frame, dict) else None
    route = action if action in ("subscribe", "unsubscribe") else "$default"
    response = routes.handler(ws_event(route, connection_id, frame), FakeLambdaContext())
    assert response["statusCode"] == 200
    answer: dict[str, Any] = json.loads(response["body"])
    return answer


def connect(routes: ModuleType, connection_id: str, user_arn: str = ALICE) -> None:
    response = routes.handler(ws_event("$connect", connection_id, user_arn=user_arn), FakeLambdaContext())
    assert response == {"statusCode": 200}


def a_job(aws: Aws, owner: str = ALICE, status: JobStatus = JobStatus.RUNNING, **changes: Any) -> Job:
    job = Job.new(str(uuid.uuid4()), owner=owner, payload_sha256="0" * 64, now=utc_now(), ttl_seconds=3600)
    job = dataclasses.replace(job, status=status, **changes)
    aws.dynamodb.put_item(TableName=aws.table_name, Item=job.to_item())
    return job


def connection_items(aws: Aws) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = aws.dynamodb.scan(TableName=CONNECTIONS, ConsistentRead=True)["Items"]
    return items


def keys(aws: Aws) -> set[tuple[str, str]]:
    return {(item["pk"]["S"], item["sk"]["S"]) for item in connection_items(aws)}


def stream_record(new: Job, old: Job | None, sequence: str) -> dict[str, Any]:
    images: dict[str, Any] = {"SequenceNumber": sequence, "NewImage": new.to_item()}
    if old is not None:
        images["OldImage"] = old.to_item()
    return {"eventName": "MODIFY" if old else "INSERT", "eventSource": "aws:dynamodb", "dynamodb": images}


# --------------------------------------------------------------------------------------------------- connect


def test_connect_records_the_callers_identity_as_owner_expiring_with_the_connection(
    ws_env: Aws, routes: ModuleType
) -> None:
    connect(routes, "conn-1")

    (item,) = connection_items(ws_env)
    assert (item["pk"]["S"], item["sk"]["S"]) == ("conn#conn-1", "connection")
    assert item["owner"]["S"] == ALICE
    assert abs(int(item["expiresAt"]["N"]) - (int(time.time()) + 7200)) <= 5  # API Gateway's 2 h maximum


def test_a_connect_the_table_refuses_is_refused(
    ws_env: Aws, routes: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routes._connections, "table_name", "No-Such-Table")
    response = routes.handler(ws_event("$connect", "conn-1"), FakeLambdaContext())
    assert response == {"statusCode": 500}


# ------------------------------------------------------------------------------------------------- subscribe


def test_subscribing_to_ones_own_job_answers_the_job_as_get_shows_it_and_watches_it(
    ws_env: Aws, routes: ModuleType, status: ModuleType
) -> None:
    job = a_job(ws_env, progress_percent=40.0, progress_message="halfway")
    connect(routes, "conn-1")

    answer = send(routes, "conn-1", {"action": "subscribe", "jobId": job.job_id})

    shown = body(status.handler(get_event(job.job_id), FakeLambdaContext()))
    assert answer == {"type": "subscribed", "jobId": job.job_id, "job": shown}
    assert shown["progress"] == {"percent": 40, "message": "halfway"}
    item = ws_env.item(job.job_id)
    assert item is not None
    assert item["watchedUntil"] > time.time() + 7000  # until the connection ends
    assert "watchedUntil" not in json.dumps(shown)
    assert ("job#" + job.job_id, "conn-1") in keys(ws_env)


def test_the_get_of_a_watched_job_links_the_websocket_and_never_shows_the_watch(
    ws_env: Aws, routes: ModuleType, status: ModuleType
) -> None:
    job = a_job(ws_env)
    connect(routes, "conn-1")
    send(routes, "conn-1", {"action": "subscribe", "jobId": job.job_id})

    response = status.handler(get_event(job.job_id), FakeLambdaContext())

    assert response["headers"]["Link"] == f'<{WSS_URL}>; rel="updates"'
    assert "watchedUntil" not in response["body"]


@pytest.mark.parametrize("whose", ["another caller's", "no"])
def test_subscribing_to_another_callers_job_answers_the_404_of_an_unknown_one(
    ws_env: Aws, routes: ModuleType, whose: str
) -> None:
    job_id = a_job(ws_env, owner=BOB).job_id if whose != "no" else str(uuid.uuid4())
    connect(routes, "conn-1")

    answer = send(routes, "conn-1", {"action": "subscribe", "jobId": job_id})

    assert answer == {
        "type": "error",
        "status": 404,
        "title": "Job not found",
        "detail": "No job with this id is visible to you: it does not exist, it expired, or it is not yours.",
        "jobId": job_id,
    }
    assert keys(ws_env) == {("conn#conn-1", "connection")}  # no subscription written
    if whose != "no":
        assert "watchedUntil" not in (ws_env.item(job_id) or {})


def test_an_operator_may_follow_any_job(
    ws_env: Aws, entry_points: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASYNC_JOB_OPERATORS", json.dumps([BOB]))
    routes = entry_points("lambda_handlers.websocket")
    job = a_job(ws_env, owner=ALICE)
    connect(routes, "conn-ops", user_arn=BOB)

    assert send(routes, "conn-ops", {"action": "subscribe", "jobId": job.job_id})["type"] == "subscribed"


def test_subscribing_to_a_finished_job_answers_it_and_writes_nothing(ws_env: Aws, routes: ModuleType) -> None:
    job = a_job(ws_env, status=JobStatus.SUCCEEDED, result='{"rows": 3}')
    connect(routes, "conn-1")

    answer = send(routes, "conn-1", {"action": "subscribe", "jobId": job.job_id})

    assert answer["job"]["status"] == "SUCCEEDED"
    assert answer["job"]["result"] == {"rows": 3}
    assert keys(ws_env) == {("conn#conn-1", "connection")}


def test_subscribing_to_all_my_jobs_watches_the_unfinished_ones_and_the_new_ones(
    ws_env: Aws, routes: ModuleType, entry_points: Callable[[str], ModuleType]
) -> None:
    running, queued = a_job(ws_env), a_job(ws_env, status=JobStatus.QUEUED)
    finished, bobs = a_job(ws_env, status=JobStatus.FAILED, error_type="E"), a_job(ws_env, owner=BOB)
    connect(routes, "conn-1")

    answer = send(routes, "conn-1", {"action": "subscribe", "jobs": "mine"})

    assert answer == {"type": "subscribed", "jobs": "mine"}
    watched = {
        job.job_id
        for job in (running, queued, finished, bobs)
        if "watchedUntil" in (ws_env.item(job.job_id) or {})
    }
    assert watched == {running.job_id, queued.job_id}
    assert {("owner#" + ALICE, "conn-1"), ("owner#" + ALICE, "#watched")} <= keys(ws_env)
    # A job Alice submits now is written watched, and its 202 links the WebSocket.
    submit = entry_points("lambda_handlers.submit")
    accepted = submit.handler(post_event('{"n": 1}'), FakeLambdaContext())
    assert accepted["statusCode"] == 202
    assert accepted["headers"]["Link"] == f'<{WSS_URL}>; rel="updates"'
    new_item = ws_env.item(body(accepted)["id"])
    assert new_item is not None
    assert new_item["watchedUntil"] > time.time()
    assert "watchedUntil" not in accepted["body"]
    # Bob's new job is not.
    bob_job = submit.handler(post_event('{"n": 2}', user_arn=BOB), FakeLambdaContext())
    assert "watchedUntil" not in (ws_env.item(body(bob_job)["id"]) or {})


def test_unsubscribe_drops_the_subscription(ws_env: Aws, routes: ModuleType) -> None:
    job = a_job(ws_env)
    connect(routes, "conn-1")
    send(routes, "conn-1", {"action": "subscribe", "jobId": job.job_id})
    send(routes, "conn-1", {"action": "subscribe", "jobs": "mine"})

    assert send(routes, "conn-1", {"action": "unsubscribe", "jobId": job.job_id}) == {
        "type": "unsubscribed",
        "jobId": job.job_id,
    }
    assert send(routes, "conn-1", {"action": "unsubscribe", "jobs": "mine"}) == {
        "type": "unsubscribed",
        "jobs": "mine",
    }
    assert keys(ws_env) == {("conn#conn-1", "connection")}  # the owner's watch went with the last follower
    (item,) = connection_items(ws_env)
    assert "topics" not in item or not item["topics"].get("SS")


@pytest.mark.parametrize(
    ("frame", "detail"),
    [
        ("not json", "A frame is a JSON object"),
        ({"action": "publish", "jobId": "x"}, "Unknown action 'publish'"),
        ({"action": "subscribe"}, "names one job"),
        ({"action": "subscribe", "jobId": "NOT-A-UUID"}, "Invalid job id"),
        ({"action": "subscribe", "jobs": "everyone"}, '"jobs" must be "mine"'),
    ],
)
def test_a_bad_frame_is_answered_400(ws_env: Aws, routes: ModuleType, frame: Any, detail: str) -> None:
    connect(routes, "conn-1")
    response = routes.handler(ws_event("$default", "conn-1", frame), FakeLambdaContext())
    answer = json.loads(response["body"])
    assert (response["statusCode"], answer["type"], answer["status"], answer["title"]) == (
        200,
        "error",
        400,
        "Bad frame",
    )
    assert detail in answer["detail"]


def test_a_frame_on_an_unknown_connection_is_answered_401(ws_env: Aws, routes: ModuleType) -> None:
    answer = send(routes, "never-connected", {"action": "subscribe", "jobs": "mine"})
    assert (answer["type"], answer["status"]) == ("error", 401)


# ------------------------------------------------------------------------------------------------ disconnect


def test_disconnect_deletes_every_item_the_connection_wrote(ws_env: Aws, routes: ModuleType) -> None:
    first, second = a_job(ws_env), a_job(ws_env)
    connect(routes, "conn-1")
    for frame in ({"jobId": first.job_id}, {"jobId": second.job_id}, {"jobs": "mine"}):
        send(routes, "conn-1", {"action": "subscribe", **frame})
    assert len(connection_items(ws_env)) == 5  # connection, 2 jobs, mine, the owner's watch

    response = routes.handler(ws_event("$disconnect", "conn-1"), FakeLambdaContext())

    assert response == {"statusCode": 200}
    assert connection_items(ws_env) == []
    assert routes.handler(ws_event("$disconnect", "conn-1"), FakeLambdaContext()) == {"statusCode": 200}


def test_disconnect_keeps_the_owners_watch_while_another_connection_follows(
    ws_env: Aws, routes: ModuleType
) -> None:
    connect(routes, "conn-1")
    connect(routes, "conn-2")
    send(routes, "conn-1", {"action": "subscribe", "jobs": "mine"})
    send(routes, "conn-2", {"action": "subscribe", "jobs": "mine"})

    routes.handler(ws_event("$disconnect", "conn-1"), FakeLambdaContext())

    assert keys(ws_env) == {
        ("conn#conn-2", "connection"),
        ("owner#" + ALICE, "conn-2"),
        ("owner#" + ALICE, "#watched"),
    }


# ------------------------------------------------------------------------------------------------------ push


def test_push_posts_every_change_in_order_to_each_subscriber_and_forgets_a_gone_one(
    ws_env: Aws, routes: ModuleType, push: ModuleType, management: tuple[Stubber, list[dict[str, Any]]]
) -> None:
    stubber, posts = management
    job = a_job(ws_env, attempts=1)
    for connection_id, frame in (
        ("c1", {"jobId": job.job_id}),
        ("c3", {"jobId": job.job_id}),
        ("c2", {"jobs": "mine"}),
    ):
        connect(routes, connection_id)
        send(routes, connection_id, {"action": "subscribe", **frame})
    watched = Job.from_item(
        ws_env.dynamodb.get_item(TableName=ws_env.table_name, Key={"pk": {"S": job.job_id}})["Item"]
    )
    forty = dataclasses.replace(watched, progress_percent=40.0, updated_at="2026-12-01T10:00:01.000Z")
    eighty = dataclasses.replace(forty, progress_percent=80.0, updated_at="2026-12-01T10:00:02.000Z")
    done = dataclasses.replace(
        eighty, status=JobStatus.SUCCEEDED, result='{"ok": true}', updated_at="2026-12-01T10:00:03.000Z"
    )
    # Subscribers in the order the push reads them: the job's (c1, c3), then the owner's (c2); c3 is gone.
    for connection_id in ("c1", "c3", "c2", "c1", "c2", "c1", "c2"):
        if connection_id == "c3":
            stubber.add_client_error("post_to_connection", "GoneException", http_status_code=410)
        else:
            stubber.add_response("post_to_connection", {})

    result = push.handler(
        {
            "Records": [
                stream_record(forty, watched, "1"),
                stream_record(eighty, forty, "2"),
                stream_record(done, eighty, "3"),
            ]
        },
        FakeLambdaContext(),
    )

    assert result == {"batchItemFailures": []}
    for connection_id in ("c1", "c2"):
        mine = [post["frame"] for post in posts if post["to"] == connection_id]
        assert [
            (f["type"], f["job"]["status"], (f["job"]["progress"] or {}).get("percent")) for f in mine
        ] == [
            ("job", "RUNNING", 40),
            ("job", "RUNNING", 80),
            ("job", "SUCCEEDED", 80),
        ]
        assert mine[-1]["job"]["result"] == {"ok": True}
        assert mine[-1]["job"]["links"] == {
            "self": f"{JOBS_URL}/{job.job_id}",
            "result": f"{JOBS_URL}/{job.job_id}/result",
        }
    assert not any(
        pk.startswith("conn#c3") or sk == "c3" for pk, sk in keys(ws_env)
    )  # the gone one, forgotten
    # The job ended: its subscriptions are dropped, the owner's stays.
    assert not any(pk.startswith("job#") for pk, _ in keys(ws_env))
    assert ("owner#" + ALICE, "c2") in keys(ws_env)
    c1 = next(item for item in connection_items(ws_env) if item["pk"]["S"] == "conn#c1")
    assert "job#" + job.job_id not in c1.get("topics", {}).get("SS", [])


def test_push_posts_nothing_for_a_write_that_leaves_the_job_as_it_was(
    ws_env: Aws, routes: ModuleType, push: ModuleType, management: tuple[Stubber, list[dict[str, Any]]]
) -> None:
    _, posts = management
    job = a_job(ws_env, lease_until=1, run_id="r1")
    connect(routes, "c1")
    send(routes, "c1", {"action": "subscribe", "jobId": job.job_id})
    renewed = dataclasses.replace(job, lease_until=2, watched_until=int(time.time()) + 60)

    assert push.handler({"Records": [stream_record(renewed, job, "1")]}, FakeLambdaContext()) == {
        "batchItemFailures": []
    }
    assert posts == []


def test_a_post_that_fails_for_another_reason_retries_the_batch_from_that_record(
    ws_env: Aws, routes: ModuleType, push: ModuleType, management: tuple[Stubber, list[dict[str, Any]]]
) -> None:
    stubber, _ = management
    job = a_job(ws_env)
    connect(routes, "c1")
    send(routes, "c1", {"action": "subscribe", "jobId": job.job_id})
    first = dataclasses.replace(job, progress_percent=10.0)
    second = dataclasses.replace(first, progress_percent=20.0)
    stubber.add_response("post_to_connection", {})
    stubber.add_client_error("post_to_connection", "LimitExceededException", http_status_code=429)

    result = push.handler(
        {"Records": [stream_record(first, job, "7"), stream_record(second, first, "8")]}, FakeLambdaContext()
    )

    assert result == {"batchItemFailures": [{"itemIdentifier": "8"}]}


def test_a_watch_that_is_over_and_followed_by_nobody_is_removed(
    ws_env: Aws, push: ModuleType, management: tuple[Stubber, list[dict[str, Any]]]
) -> None:
    over = int(time.time()) - 10
    job = a_job(ws_env, watched_until=over)
    changed = dataclasses.replace(job, progress_percent=50.0)

    assert push.handler({"Records": [stream_record(changed, job, "1")]}, FakeLambdaContext()) == {
        "batchItemFailures": []
    }
    assert "watchedUntil" not in (ws_env.item(job.job_id) or {})


def test_a_saved_file_is_a_visible_change_a_lease_renewal_is_not(ws_env: Aws, push: ModuleType) -> None:
    job = a_job(ws_env, run_id="r1", lease_until=1)
    saved = dataclasses.replace(
        job, files=json.dumps([{"name": "a.csv", "size": 3, "contentType": "text/csv"}])
    )

    assert push.visible_change(stream_record(saved, job, "1")) == saved
    assert push.visible_change(stream_record(dataclasses.replace(job, lease_until=2), job, "2")) is None
    assert push.visible_change({"eventName": "REMOVE", "dynamodb": {"OldImage": job.to_item()}}) is None


def test_a_frame_over_the_message_limit_leaves_out_the_inline_result() -> None:
    from lambda_handlers.updates import MAX_FRAME_BYTES, encode, job_frame

    job = Job.new(str(uuid.uuid4()), owner=ALICE, payload_sha256="0" * 64, now=utc_now(), ttl_seconds=60)
    big = dataclasses.replace(job, status=JobStatus.SUCCEEDED, result=json.dumps("x" * 200_000))
    small = dataclasses.replace(big, result='"ok"')

    data = encode(job_frame(big, JOBS_URL, None))

    assert len(data) <= MAX_FRAME_BYTES
    shown = json.loads(data)["job"]
    assert "result" not in shown
    assert shown["links"]["result"] == f"{JOBS_URL}/{job.job_id}/result"
    assert json.loads(encode(job_frame(small, JOBS_URL, None)))["job"]["result"] == "ok"
