"""The problems the local server answers itself."""

from __future__ import annotations

from http import HTTPStatus

from async_job_local.local_problems import local_problem, no_such_api_problem


def test_a_local_problem_has_its_type_title_status_and_the_fix() -> None:
    # GIVEN a request line that is too long WHEN its problem is made
    problem = local_problem(HTTPStatus.REQUEST_URI_TOO_LONG, "The request line is over 65536 bytes.")

    # THEN it is an RFC 9457 problem of a local-* type, whose detail says how to send it instead
    assert problem["type"] == "urn:async-job:problem:local-request-line-too-long"
    assert (problem["title"], problem["status"]) == ("Request line too long", 414)
    assert problem["detail"] == (
        "The request line is over 65536 bytes. Keep the request line (method, path and query) under 65536 bytes."
    )


def test_a_status_without_its_own_problem_gets_a_generic_local_type() -> None:
    problem = local_problem(HTTPStatus.METHOD_NOT_ALLOWED, "No")
    assert (problem["type"], problem["title"]) == (
        "urn:async-job:problem:local-http-405",
        "Method Not Allowed",
    )


def test_a_path_under_no_api_lists_the_apis() -> None:
    problem = no_such_api_problem("/nope/jobs", ["http://h/a/jobs", "http://h/b/jobs"])
    assert problem["status"] == 404
    assert problem["detail"].endswith("its APIs: http://h/a/jobs, http://h/b/jobs")
