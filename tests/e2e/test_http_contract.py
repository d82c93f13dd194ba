"""Status codes, headers and bodies as deployed: the functions' answers and API Gateway's own."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from urllib.parse import urlsplit

import pytest

from async_job_local.client import HttpResponse
from tests.e2e.conftest import E2eRuntime
from tests.e2e.e2e_app.e2e_settings import MAX_PAYLOAD_BYTES

PROBLEM = "application/problem+json"


def _problem(response: HttpResponse, status: int) -> dict[str, object]:
    assert response.status == status, (response.status, response.body)
    assert response.content_type == PROBLEM, response.headers
    body: dict[str, object] = response.json()
    assert str(body["type"]).startswith("urn:async-job:problem:"), body
    assert body["title"], body
    return body


def test_unknown_job_id_is_404_problem(e2e: E2eRuntime) -> None:
    response = e2e.client().status(str(uuid.uuid4()))

    body = _problem(response, 404)
    assert body["type"] == "urn:async-job:problem:job-not-found"


def test_malformed_job_id_is_400_problem(e2e: E2eRuntime) -> None:
    body = _problem(e2e.client().status("not-a-job-id"), 400)

    assert body["type"] == "urn:async-job:problem:invalid-job-id"


def test_another_principal_gets_the_same_404_as_for_an_unknown_job(e2e: E2eRuntime) -> None:
    owner = e2e.client("alice")
    accepted = owner.submit({"mode": "ok", "steps": 1, "delay": 0})
    assert accepted.status == 202, accepted.body
    job_id = accepted.json()["id"]

    as_owner = owner.status(job_id)
    as_other = e2e.client("mallory").status(job_id)
    as_default = e2e.client(None).status(job_id)  # no header: the runtime's default principal, local-user

    assert as_owner.status == 200
    assert as_owner.json()["id"] == job_id
    assert _problem(as_other, 404)["type"] == "urn:async-job:problem:job-not-found"
    assert _problem(as_default, 404)["type"] == "urn:async-job:problem:job-not-found"


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        pytest.param(b"[1, 2]", "application/json", 400, id="array: rejected by the submit function"),
        pytest.param(b'"text"', "application/json", 400, id="string: rejected by the submit function"),
        pytest.param(
            b"{not json", "application/json", 400, id="not JSON: rejected by the API's request model"
        ),
        pytest.param(b"", "application/json", 400, id="empty"),
        pytest.param(b'{"a": 1}', "text/plain", 415, id="not a JSON media type"),
        pytest.param(
            json.dumps({"pad": "x" * MAX_PAYLOAD_BYTES}).encode(), "application/json", 413, id="too large"
        ),
    ],
)
def test_bad_submissions_are_problems_and_create_no_job(
    e2e: E2eRuntime, body: bytes, content_type: str, status: int
) -> None:
    response = e2e.client().submit(body, content_type=content_type)

    _problem(response, status)
    assert response.header("Location") is None


def test_body_that_is_not_json_is_rejected_by_the_gateway_response_of_the_construct(e2e: E2eRuntime) -> None:
    response = e2e.client().submit(b"{not json")

    body = _problem(response, 400)
    assert body["type"] == "urn:async-job:problem:invalid-json"
    assert body["status"] == 400
    # A constant detail: API Gateway would not JSON-escape the validator's own message into the template.
    assert body["detail"] == (
        "The body is not JSON (RFC 8259: UTF-8 text, no NaN or Infinity); API Gateway rejected it before any "
        "function ran."
    )


def test_json_that_is_not_an_object_passes_the_gateway_and_is_rejected_by_the_submit_function(
    e2e: E2eRuntime,
) -> None:
    body = _problem(e2e.client().submit(b"[1, 2]"), 400)

    assert body["type"] == "urn:async-job:problem:body-not-object"
    assert body["detail"] == "The body is an array; send a JSON object."


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/jobs"),
        ("PATCH", "/jobs/00000000-0000-4000-8000-000000000000"),
        ("DELETE", "/jobs"),
        ("PUT", "/jobs"),
        ("GET", "/nothing/here"),
        ("GET", "/"),
    ],
)
def test_unknown_routes_and_methods_get_api_gateways_403_through_its_own_gateway_response(
    e2e: E2eRuntime, method: str, path: str
) -> None:
    base = e2e.jobs_url.removesuffix("/jobs")

    response = e2e.client().request(method, base + path)

    body = _problem(response, 403)
    assert body == {
        "type": "urn:async-job:problem:gateway-MISSING_AUTHENTICATION_TOKEN",
        "title": "Request rejected by the API gateway",
        "status": 403,
        "detail": "Missing Authentication Token",
    }
    assert response.header("x-amzn-ErrorType") == "MissingAuthenticationTokenException"


def test_a_path_outside_every_api_says_where_the_apis_are(e2e: E2eRuntime) -> None:
    split = urlsplit(e2e.jobs_url)

    response = e2e.client().request("GET", f"http://{split.netloc}/no-such-api/jobs")

    assert response.status == 404
    assert e2e.jobs_url in response.json()["detail"]


def test_kept_alive_connections_answer_without_the_delayed_ack_stall(e2e: E2eRuntime) -> None:
    # Without TCP_NODELAY every response on a kept-alive connection waits ~40 ms for the client's delayed ACK.
    split = urlsplit(e2e.jobs_url)
    connection = http.client.HTTPConnection(split.hostname or "", split.port, timeout=10)
    timings = []
    try:
        for _ in range(15):
            started = time.perf_counter()
            connection.request("GET", f"{split.path}/{uuid.uuid4()}")
            response = connection.getresponse()
            response.read()
            timings.append(time.perf_counter() - started)
            assert response.status == 404
    finally:
        connection.close()

    assert min(timings) < 0.035, timings
