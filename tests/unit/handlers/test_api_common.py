"""lambda_handlers.api_common and problems: reading proxy events, identities, URLs, problem responses."""

from __future__ import annotations

import json

import pytest

from lambda_handlers.api_common import (
    caller_identity,
    header,
    header_values,
    is_operator,
    jobs_url,
    request_job_type,
    request_url,
)
from lambda_handlers.problems import ProblemError, problem
from tests.unit.handlers.events import DOMAIN, rest_event


def test_reads_headers_in_any_case() -> None:
    event = {"headers": {"content-TYPE": "application/json"}, "multiValueHeaders": {"X-Trace": ["a", "b"]}}

    assert header(event, "Content-Type") == "application/json"
    assert header(event, "x-trace") == "b"
    assert header(event, "Accept") is None
    assert header({"headers": None, "multiValueHeaders": None}, "Accept") is None


def test_reads_every_value_of_a_repeated_header() -> None:
    event = {
        "headers": {"Idempotency-Key": "b"},
        "multiValueHeaders": {"idempotency-key": ["a", "b"], "Other": ["x"]},
    }

    assert header_values(event, "Idempotency-Key") == ["a", "b"]
    assert header_values({"headers": {"idempotency-key": "a"}}, "Idempotency-Key") == ["a"]
    assert header_values({"headers": None, "multiValueHeaders": None}, "Idempotency-Key") == []


@pytest.mark.parametrize(
    ("context", "identity"),
    [
        ({"authorizer": {"principalId": "p", "claims": {"sub": "s"}}, "identity": {"userArn": "u"}}, "p"),
        ({"authorizer": {"claims": {"sub": "s"}}, "identity": {"userArn": "u"}}, "s"),
        ({"authorizer": {"principalId": ""}, "identity": {"userArn": "u", "cognitoIdentityId": "c"}}, "u"),
        ({"identity": {"userArn": None, "cognitoIdentityId": "c", "caller": "k"}}, "c"),
        ({"identity": {"caller": "k", "apiKeyId": "a"}}, "k"),
        ({"identity": {"apiKeyId": "a"}}, "a"),
        ({"identity": {}}, "anonymous"),
        ({}, "anonymous"),
    ],
)
def test_takes_the_first_identity_present(context: dict[str, object], identity: str) -> None:
    assert caller_identity({"requestContext": context}) == identity


@pytest.mark.parametrize(
    ("identity", "operators", "expected"),
    [
        ("sub-1", {"sub-1"}, True),
        ("sub-2", {"sub-1"}, False),
        ("arn:aws:sts::111122223333:assumed-role/Ops/alice", {"arn:aws:iam::111122223333:role/Ops"}, True),
        (
            "arn:aws:sts::111122223333:assumed-role/Ops/alice",
            {"arn:aws:iam::111122223333:role/a/b/Ops"},
            True,
        ),
        (
            "arn:aws:sts::111122223333:assumed-role/Ops/alice",
            {"arn:aws:sts::111122223333:assumed-role/Ops/alice"},
            True,
        ),
        ("arn:aws:sts::111122223333:assumed-role/Ops/alice", {"arn:aws:iam::111122223333:role/Opsx"}, False),
        ("arn:aws:sts::111122223333:assumed-role/Ops/alice", {"arn:aws:iam::444455556666:role/Ops"}, False),
        (
            "arn:aws-cn:sts::111122223333:assumed-role/Ops/alice",
            {"arn:aws:iam::111122223333:role/Ops"},
            False,
        ),
        ("arn:aws:iam::111122223333:role/Ops", {"arn:aws:iam::111122223333:role/Ops"}, True),
        ("arn:aws:iam::111122223333:user/Ops", {"arn:aws:iam::111122223333:role/Ops"}, False),
        ("anonymous", set(), False),
    ],
)
def test_recognises_operators_and_their_role_sessions(
    identity: str, operators: set[str], expected: bool
) -> None:
    assert is_operator(identity, operators) is expected


@pytest.mark.parametrize(
    ("proto", "path", "url"),
    [
        ("https", "/jobs", f"https://{DOMAIN}/prod/jobs"),
        ("http", "/jobs/", f"http://{DOMAIN}/prod/jobs"),
        (None, "/jobs", f"https://{DOMAIN}/prod/jobs"),
        ("gopher", "/jobs", f"https://{DOMAIN}/prod/jobs"),
        ("HTTP, https", "/jobs", f"http://{DOMAIN}/prod/jobs"),
    ],
)
def test_builds_the_request_url_as_the_caller_sees_it(proto: str | None, path: str, url: str) -> None:
    assert request_url(rest_event(path=path, forwarded_proto=proto)) == url


def test_a_custom_domain_keeps_its_base_path() -> None:
    event = rest_event()
    event["requestContext"].update(domainName="jobs.example.com", path="/v1/jobs")

    assert request_url(event) == "https://jobs.example.com/v1/jobs"


@pytest.mark.parametrize(
    ("event", "job_type"),
    [
        ({"resource": "/reports"}, "reports"),
        ({"resource": "/jobs"}, "jobs"),
        ({"resource": "/api/thumbnails/"}, "thumbnails"),
        ({"resource": "/{type}", "pathParameters": {"type": "videos"}}, "videos"),
        ({"resource": "/{type}", "pathParameters": None}, ""),
        ({}, "jobs"),
        ({"resource": "/"}, "jobs"),
    ],
)
def test_reads_the_job_type_from_the_resource(event: dict[str, object], job_type: str) -> None:
    assert request_job_type(event) == job_type


@pytest.mark.parametrize(
    ("path", "url"),
    [
        ("/prod/reports", "/prod/jobs"),
        ("/prod/jobs", "/prod/jobs"),
        ("/reports/", "/jobs"),
        ("/v1/a/b", "/v1/a/jobs"),
    ],
)
def test_the_jobs_url_is_beside_the_requested_resource(path: str, url: str) -> None:
    event = rest_event(path="/x")
    event["requestContext"]["path"] = path

    assert jobs_url(event) == f"https://{DOMAIN}{url}"


def test_builds_rfc_9457_problems() -> None:
    response = problem(
        413, "payload-too-large", "Payload too large", "Too big.", {"Retry-After": "1"}, maxBytes=9
    )

    assert response["statusCode"] == 413
    assert response["headers"] == {"Content-Type": "application/problem+json", "Retry-After": "1"}
    assert json.loads(response["body"]) == {
        "type": "urn:async-job:problem:payload-too-large",
        "title": "Payload too large",
        "status": 413,
        "detail": "Too big.",
        "maxBytes": 9,
    }


def test_a_problem_error_carries_its_response() -> None:
    error = ProblemError(400, "empty-body", "Empty body", "Send a body.")

    assert error.response == problem(400, "empty-body", "Empty body", "Send a body.")
    assert (error.status, error.slug) == (400, "empty-body")
