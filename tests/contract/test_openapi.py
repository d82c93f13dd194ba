"""``docs/openapi.yaml`` against the functions' real responses.

Each scenario drives the real submit, status, worker and dead-letter functions on moto into one documented
outcome and checks the response against the document: the status is documented for the operation, every header
is documented (and the required ones are sent), and the body is valid against the response's schema. A last test
checks the other way round: every documented 4xx/5xx (and every problem type it lists) is produced by a
scenario, except what API Gateway answers by itself.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

from lambda_handlers import clients
from lambda_handlers import contract as runtime_contract
from tests.contract.openapi_contract import Contract, ContractError
from tests.unit.handlers import jobs
from tests.unit.handlers.conftest import Aws
from tests.unit.handlers.events import (
    FakeLambdaContext,
    body,
    delete_event,
    get_event,
    list_event,
    post_event,
    record_from_message,
    rest_event,
    sqs_event,
)
from tests.unit.handlers.test_idempotency import transaction_conflict

KEY = "8e03978e-40d5-43e8-bc93-6894a57f9324"
CONTRACT = Contract.load()


class World:
    """The functions on one moto account, loaded with the environment a scenario asks for."""

    def __init__(
        self, aws: Aws, entry_points: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.aws = aws
        self._entry_points = entry_points
        self._monkeypatch = monkeypatch

    def function(self, name: str, **environment: str) -> ModuleType:
        for variable, value in environment.items():
            self._monkeypatch.setenv(variable, value)
        return self._entry_points(f"lambda_handlers.{name}")

    @property
    def submit(self) -> ModuleType:
        return self.function("submit")

    @property
    def status(self) -> ModuleType:
        return self.function("status")

    def post(self, text: str = '{"report": "Q3"}', key: str | None = None) -> dict[str, Any]:
        return self.submit.handler(post_event(text, key), FakeLambdaContext())

    def post_typed(self, name: str) -> dict[str, Any]:
        """``POST /{name}`` to a submit function of two job types, ``reports`` and ``thumbnails``."""
        settings = {"queueUrl": self.aws.queue_url, "maxPayloadBytes": 1024, "maxReceiveCount": 3}
        types = json.dumps({"reports": settings, "thumbnails": settings})
        submit = self.function("submit", ASYNC_JOB_TYPES=types)
        return submit.handler(post_event("{}", resource=f"/{name}", path=f"/{name}"), FakeLambdaContext())

    def get(self, job_id: str) -> dict[str, Any]:
        return self.status.handler(get_event(job_id), FakeLambdaContext())

    def delete(self, job_id: str) -> dict[str, Any]:
        return self.status.handler(delete_event(job_id), FakeLambdaContext())

    def result(self, job_id: str) -> dict[str, Any]:
        event = rest_event(
            "GET",
            content_type=None,
            resource="/jobs/{id}/result",
            path=f"/jobs/{job_id}/result",
            path_parameters={"id": job_id},
        )
        return self.status.handler(event, FakeLambdaContext())

    def list(self, **query: str) -> dict[str, Any]:
        return self.status.handler(
            list_event({name: [value] for name, value in query.items()}), FakeLambdaContext()
        )

    def work(self, handler: str, receive_count: int = 1) -> dict[str, Any]:
        """Run the worker with ``tests.unit.handlers.jobs.<handler>`` on the queue's messages."""
        worker = self.function("worker", ASYNC_JOB_HANDLER=f"tests.unit.handlers.jobs.{handler}")
        messages = self.aws.receive(visibility_timeout=30)
        records = [record_from_message(m, self.aws.queue_arn) for m in messages]
        for record in records:
            record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
        return worker.handler(sqs_event(*records), FakeLambdaContext())  # type: ignore[no-any-return]

    def posted(self, key: str | None = None) -> str:
        response = self.post(key=key)
        assert response["statusCode"] == 202
        return str(body(response)["id"])


def with_websocket(world: World) -> World:
    """The world with the API's WebSocket on: its REST answers link it (``Link: <wss://...>; rel="updates"``)."""
    world.function(
        "status", ASYNC_JOB_WEBSOCKET_URL="wss://ws123abcde.execute-api.us-east-1.amazonaws.com/prod"
    )
    return world


def while_running(world: World, look: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """What ``look(job_id)`` answers while the worker runs the job (after it reported 50 %)."""
    job_id = world.posted()
    seen: list[dict[str, Any]] = []
    jobs.DURING = lambda job: seen.append(look(job_id))
    world.work("during")
    return seen[0]


def broken_event(event: dict[str, Any]) -> dict[str, Any]:
    """An event no API Gateway sends (path parameters and headers as lists): the functions answer 500."""
    event["headers"] = ["Content-Type: application/json"]
    event["pathParameters"] = ["id"]
    return event


def conflicting(world: World) -> dict[str, Any]:
    dynamodb = clients.dynamodb()
    hook = transaction_conflict(3)
    dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", hook)
    try:
        return world.post(key=KEY)
    finally:
        dynamodb.meta.events.unregister("before-call.dynamodb.TransactWriteItems", hook)


def replay_of_a_finished_job(world: World) -> dict[str, Any]:
    world.posted(key=KEY)
    world.work("succeed")
    return world.post(key=KEY)


def replay_of_a_cancelled_job(world: World) -> dict[str, Any]:
    world.delete(world.posted(key=KEY))
    return world.post(key=KEY)


def read_after(handler: str, receive_count: int = 1) -> Callable[[World], dict[str, Any]]:
    def run(world: World) -> dict[str, Any]:
        job_id = world.posted()
        world.work(handler, receive_count)
        return world.get(job_id)

    return run


def dead_lettered(world: World) -> dict[str, Any]:
    job_id = world.posted()
    (message,) = world.aws.receive(visibility_timeout=30)
    world.function("dead_letter").handler(
        sqs_event(record_from_message(message, world.aws.dlq_arn)), FakeLambdaContext()
    )
    return world.get(job_id)


def finished_then_deleted(world: World) -> dict[str, Any]:
    job_id = world.posted()
    world.work("succeed")
    return world.delete(job_id)


def result_after(handler: str, **environment: str) -> Callable[[World], dict[str, Any]]:
    def run(world: World) -> dict[str, Any]:
        for name, value in environment.items():
            world._monkeypatch.setenv(name, value)
        job_id = world.posted()
        world.work(handler)
        return world.result(job_id)

    return run


def stored_result_and_files(world: World) -> dict[str, Any]:
    """GET /jobs/{id} of a job that saved files and whose result is in the bucket."""
    world._monkeypatch.setenv("ASYNC_JOB_BUCKET_NAME", world.aws.bucket)
    response = world.post(json.dumps({"files": {"a.csv": "1,2"}, "result_bytes": 500_000}))
    job_id = str(body(response)["id"])
    world.work("save_files")
    return world.get(job_id)


def a_page_of_every_state(world: World) -> dict[str, Any]:
    """GET /jobs over a queued, a running, a succeeded, a failed and a cancelled job, one page and a next."""
    for handler in ("succeed", "give_up"):
        world.posted()
        world.work(handler)
    world.delete(world.posted())
    # while one job runs, another is submitted (and stays QUEUED)
    running = while_running(world, lambda job_id: (world.posted(), world.list())[1])
    assert {job["status"] for job in body(running)["jobs"]} == {
        "QUEUED",
        "RUNNING",
        "SUCCEEDED",
        "FAILED",
        "CANCELLED",
    }
    return world.list(limit="2")


@dataclass(frozen=True)
class Scenario:
    method: str
    path: str
    status: int
    slug: str | None
    run: Callable[[World], dict[str, Any]]


JOBS, JOB, LIST, RESULT = "/{type}", "/jobs/{id}", "/jobs", "/jobs/{id}/result"
UNKNOWN = str(uuid.uuid4())
NO_TABLE = {"ASYNC_JOB_TABLE_NAME": "No-Such-Table"}

SCENARIOS: dict[str, Scenario] = {
    # ---------------------------------------------------------------------------------- POST /{type}
    "post-202": Scenario("POST", JOBS, 202, None, lambda w: w.post()),
    "post-202-typed": Scenario("POST", JOBS, 202, None, lambda w: w.post_typed("reports")),
    "post-202-websocket-link": Scenario("POST", JOBS, 202, None, lambda w: with_websocket(w).post()),
    "post-404-job-type-not-found": Scenario(
        "POST", JOBS, 404, "job-type-not-found", lambda w: w.post_typed("videos")
    ),
    "post-202-keyed": Scenario("POST", JOBS, 202, None, lambda w: w.post(key=KEY)),
    "post-202-replay-queued": Scenario(
        "POST", JOBS, 202, None, lambda w: (w.post(key=KEY), w.post(key=f'"{KEY}"'))[1]
    ),
    "post-202-replay-succeeded": Scenario("POST", JOBS, 202, None, replay_of_a_finished_job),
    "post-202-replay-cancelled": Scenario("POST", JOBS, 202, None, replay_of_a_cancelled_job),
    "post-400-empty-body": Scenario("POST", JOBS, 400, "empty-body", lambda w: w.post("")),
    "post-400-invalid-json": Scenario("POST", JOBS, 400, "invalid-json", lambda w: w.post("{")),
    "post-400-deep-json": Scenario(
        "POST", JOBS, 400, "invalid-json", lambda w: w.post("[" * 4_000 + "]" * 4_000)
    ),
    "post-400-body-not-object": Scenario("POST", JOBS, 400, "body-not-object", lambda w: w.post("[]")),
    "post-400-invalid-idempotency-key": Scenario(
        "POST", JOBS, 400, "invalid-idempotency-key", lambda w: w.post(key="é")
    ),
    "post-400-idempotency-key-required": Scenario(
        "POST",
        JOBS,
        400,
        "idempotency-key-required",
        lambda w: w.function("submit", ASYNC_JOB_IDEMPOTENCY_KEY_REQUIRED="true").handler(
            post_event("{}"), FakeLambdaContext()
        ),
    ),
    "post-400-invalid-callback-url": Scenario(
        "POST",
        JOBS,
        400,
        "invalid-callback-url",
        lambda w: w.submit.handler(
            post_event("{}", headers={"Callback-Url": "http://169.254.169.254/"}), FakeLambdaContext()
        ),
    ),
    "post-202-with-callback": Scenario(
        "POST",
        JOBS,
        202,
        None,
        lambda w: w.function("submit", ASYNC_JOB_WEBHOOK_ALLOWED_HOSTS='["hooks.example.com"]').handler(
            post_event("{}", headers={"Callback-Url": "https://hooks.example.com/jobs"}), FakeLambdaContext()
        ),
    ),
    "post-409-idempotency-key-in-use": Scenario("POST", JOBS, 409, "idempotency-key-in-use", conflicting),
    "post-413": Scenario(
        "POST", JOBS, 413, "payload-too-large", lambda w: w.post('{"s": "' + "x" * 9_000 + '"}')
    ),
    "post-415": Scenario(
        "POST",
        JOBS,
        415,
        "unsupported-media-type",
        lambda w: w.submit.handler(rest_event(body="{}", content_type="text/plain"), FakeLambdaContext()),
    ),
    "post-422": Scenario(
        "POST", JOBS, 422, "idempotency-key-reused", lambda w: (w.post("{}", KEY), w.post('{"n": 2}', KEY))[1]
    ),
    "post-500": Scenario(
        "POST",
        JOBS,
        500,
        "internal-error",
        lambda w: w.submit.handler(broken_event(post_event()), FakeLambdaContext()),
    ),
    "post-503-table": Scenario(
        "POST",
        JOBS,
        503,
        "service-unavailable",
        lambda w: w.function("submit", **NO_TABLE).handler(post_event(), FakeLambdaContext()),
    ),
    "post-503-queue": Scenario(
        "POST",
        JOBS,
        503,
        "service-unavailable",
        lambda w: w.function(
            "submit", ASYNC_JOB_QUEUE_URL=w.aws.queue_url.replace("Jobs-Queue", "Gone")
        ).handler(post_event("{}", KEY), FakeLambdaContext()),
    ),
    # -------------------------------------------------------------------------------- GET /jobs/{id}
    "get-200-queued": Scenario("GET", JOB, 200, None, lambda w: w.get(w.posted())),
    "get-200-websocket-link": Scenario("GET", JOB, 200, None, lambda w: with_websocket(w).get(w.posted())),
    "get-200-queued-after-a-failed-attempt": Scenario("GET", JOB, 200, None, read_after("crash")),
    "get-200-running": Scenario("GET", JOB, 200, None, lambda w: while_running(w, w.get)),
    "get-200-running-cancel-requested": Scenario(
        "GET", JOB, 200, None, lambda w: while_running(w, lambda job_id: (w.delete(job_id), w.get(job_id))[1])
    ),
    "get-200-succeeded": Scenario("GET", JOB, 200, None, read_after("succeed")),
    "get-200-failed": Scenario("GET", JOB, 200, None, read_after("give_up")),
    "get-200-failed-dead-lettered": Scenario("GET", JOB, 200, None, dead_lettered),
    "get-200-cancelled": Scenario("GET", JOB, 200, None, read_after("cancel_self")),
    "get-400": Scenario("GET", JOB, 400, "invalid-job-id", lambda w: w.get("../etc/passwd")),
    "get-404": Scenario("GET", JOB, 404, "job-not-found", lambda w: w.get(UNKNOWN)),
    "get-500": Scenario(
        "GET",
        JOB,
        500,
        "internal-error",
        lambda w: w.status.handler(broken_event(get_event(UNKNOWN)), FakeLambdaContext()),
    ),
    "get-503": Scenario(
        "GET",
        JOB,
        503,
        "service-unavailable",
        lambda w: w.function("status", **NO_TABLE).handler(get_event(UNKNOWN), FakeLambdaContext()),
    ),
    "get-200-succeeded-stored-result-and-files": Scenario("GET", JOB, 200, None, stored_result_and_files),
    # ------------------------------------------------------------------------------ GET /jobs/{id}/result
    "result-200": Scenario("GET", RESULT, 200, None, result_after("succeed")),
    "result-303": Scenario(
        "GET",
        RESULT,
        303,
        None,
        lambda w: (
            w._monkeypatch.setenv("ASYNC_JOB_BUCKET_NAME", w.aws.bucket),
            result_after("too_large")(w),
        )[1],
    ),
    "result-400": Scenario("GET", RESULT, 400, "invalid-job-id", lambda w: w.result("nope")),
    "result-404": Scenario("GET", RESULT, 404, "job-not-found", lambda w: w.result(UNKNOWN)),
    "result-409": Scenario("GET", RESULT, 409, "job-not-succeeded", lambda w: w.result(w.posted())),
    "result-500": Scenario(
        "GET",
        RESULT,
        500,
        "internal-error",
        lambda w: w.status.handler(
            broken_event(
                rest_event(
                    "GET", content_type=None, resource="/jobs/{id}/result", path=f"/jobs/{UNKNOWN}/result"
                )
            ),
            FakeLambdaContext(),
        ),
    ),
    "result-503": Scenario(
        "GET",
        RESULT,
        503,
        "service-unavailable",
        lambda w: w.function("status", **NO_TABLE).handler(
            rest_event(
                "GET",
                content_type=None,
                resource="/jobs/{id}/result",
                path=f"/jobs/{UNKNOWN}/result",
                path_parameters={"id": UNKNOWN},
            ),
            FakeLambdaContext(),
        ),
    ),
    # -------------------------------------------------------------------------------------- GET /jobs
    "list-200-empty": Scenario("GET", LIST, 200, None, lambda w: w.list()),
    "list-200-pages": Scenario("GET", LIST, 200, None, a_page_of_every_state),
    "list-400": Scenario("GET", LIST, 400, "invalid-query-parameter", lambda w: w.list(limit="0")),
    "list-403": Scenario("GET", LIST, 403, "owner-forbidden", lambda w: w.list(owner="someone-else")),
    "list-500": Scenario(
        "GET",
        LIST,
        500,
        "internal-error",
        lambda w: w.status.handler(broken_event(list_event()), FakeLambdaContext()),
    ),
    "list-503": Scenario(
        "GET",
        LIST,
        503,
        "service-unavailable",
        lambda w: w.function("status", **NO_TABLE).handler(list_event(), FakeLambdaContext()),
    ),
    # ----------------------------------------------------------------------------- DELETE /jobs/{id}
    "delete-200": Scenario("DELETE", JOB, 200, None, lambda w: w.delete(w.posted())),
    "delete-202": Scenario("DELETE", JOB, 202, None, lambda w: while_running(w, w.delete)),
    "delete-400": Scenario("DELETE", JOB, 400, "invalid-job-id", lambda w: w.delete("' OR 1=1 --")),
    "delete-404": Scenario("DELETE", JOB, 404, "job-not-found", lambda w: w.delete(UNKNOWN)),
    "delete-409": Scenario("DELETE", JOB, 409, "job-finished", finished_then_deleted),
    "delete-500": Scenario(
        "DELETE",
        JOB,
        500,
        "internal-error",
        lambda w: w.status.handler(broken_event(delete_event(UNKNOWN)), FakeLambdaContext()),
    ),
    "delete-503": Scenario(
        "DELETE",
        JOB,
        503,
        "service-unavailable",
        lambda w: w.function("status", **NO_TABLE).handler(delete_event(UNKNOWN), FakeLambdaContext()),
    ),
}


@pytest.fixture
def world(aws: Aws, entry_points: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch) -> World:
    return World(aws, entry_points, monkeypatch)


@pytest.mark.parametrize("scenario", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_the_response_is_as_documented(world: World, scenario: Scenario) -> None:
    response = scenario.run(world)

    checked = CONTRACT.check(scenario.method, scenario.path, response)

    assert (checked.status, checked.slug) == (scenario.status, scenario.slug)


def test_every_documented_error_is_produced_by_a_scenario() -> None:
    # GIVEN what each operation documents, and what the scenarios produce (each checked above)
    ids = {f"{m} {p}": op["operationId"] for m, p, op in CONTRACT.operations()}
    produced = {(ids[f"{s.method} {s.path}"], s.status, s.slug) for s in SCENARIOS.values()}
    missing = []

    # THEN every 4xx/5xx a function can answer, with each problem type it lists, has a scenario
    for documented in CONTRACT.documented():
        if documented.status < 400 or documented.answered_by_gateway:
            continue
        slugs = documented.slugs or {None}
        for slug in slugs:
            if not any(
                op == documented.operation and st == documented.status and sl == slug
                for op, st, sl in produced
            ):
                missing.append((documented.operation, documented.status, slug))
    assert missing == []
    # AND every success status too
    for documented in CONTRACT.documented():
        if documented.status < 300:
            assert (documented.operation, documented.status) in {(op, st) for op, st, _ in produced}


def test_only_gateway_answers_are_left_to_api_gateway() -> None:
    gateway = {(d.operation, d.status) for d in CONTRACT.documented() if d.answered_by_gateway}

    assert gateway == {
        *(
            (op, status)
            for op in ("submitJob", "getJob", "getJobResult", "cancelJob")
            for status in (403, 429)
        ),
        ("listJobs", 429),
    }


def test_documents_every_operation_and_the_security_scheme() -> None:
    operations = {(method, path) for method, path, _ in CONTRACT.operations()}
    scheme = CONTRACT.document["components"]["securitySchemes"]["sigv4"]

    assert operations == {
        ("POST", "/{type}"),
        ("GET", "/jobs"),
        ("GET", "/jobs/{id}"),
        ("GET", "/jobs/{id}/result"),
        ("DELETE", "/jobs/{id}"),
    }
    assert CONTRACT.document["security"] == [{"sigv4": []}]
    assert scheme["x-amazon-apigateway-authtype"] == "awsSigv4"
    parameters = CONTRACT.operation("POST", "/{type}")["parameters"]
    assert parameters == [
        {"$ref": "#/components/parameters/JobType"},
        {"$ref": "#/components/parameters/IdempotencyKey"},
        {"$ref": "#/components/parameters/CallbackUrl"},
    ]


def test_documents_the_job_type_names_of_the_runtime_contract() -> None:
    # GIVEN the name rule every layer shares WHEN the document gives a job type's name THEN it is that rule
    schemas = CONTRACT.document["components"]["schemas"]

    assert schemas["JobTypeName"]["pattern"] == f"^{runtime_contract.JOB_TYPE_NAME.pattern}$"
    assert CONTRACT.document["components"]["parameters"]["JobType"]["schema"] == {
        "$ref": "#/components/schemas/JobTypeName"
    }
    assert schemas["Job"]["properties"]["type"] == {"$ref": "#/components/schemas/JobTypeName"}
    assert "type" in schemas["Job"]["required"]


@pytest.mark.parametrize(
    ("response", "complaint"),
    [
        ({"statusCode": 418, "headers": {}, "body": "{}"}, "status not documented"),
        (
            {
                "statusCode": 404,
                "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
                "body": "{}",
            },
            "Content-Type",
        ),
        (
            {
                "statusCode": 404,
                "headers": {
                    "Content-Type": "application/problem+json",
                    "Cache-Control": "no-store",
                    "X-Debug": "1",
                },
                "body": "{}",
            },
            "headers not documented",
        ),
        (
            {
                "statusCode": 404,
                "headers": {"Content-Type": "application/problem+json", "Cache-Control": "no-store"},
                "body": '{"type": "urn:async-job:problem:invalid-job-id", "title": "t", "status": 404, "detail": "d"}',
            },
            "not valid",
        ),
        (
            {"statusCode": 503, "headers": {"Content-Type": "application/problem+json"}, "body": "{}"},
            "required header Retry-After missing",
        ),
    ],
    ids=["status", "media-type", "extra-header", "wrong-slug", "missing-header"],
)
def test_the_checker_catches_what_it_is_for(response: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ContractError, match=complaint):
        CONTRACT.check("GET", "/jobs/{id}", response)
