"""Routing: a request to the method of the template that API Gateway would pick."""

from __future__ import annotations

import pytest

from async_job_local.api_spec import RouteSpec
from async_job_local.routing import LocalApi, LocalRoute
from tests.unit.local.conftest import StackFactory
from tests.unit.local.templates import api_template


def local_api(make_stack: StackFactory, *specs: RouteSpec) -> LocalApi:
    from async_job_local.api_spec import apis_of

    (spec,) = apis_of(make_stack(api_template()), set())
    return LocalApi(spec=spec, routes=[LocalRoute(spec=route, function=None) for route in specs])


def route(path: str, method: str) -> RouteSpec:
    return RouteSpec(resource_path=path, http_method=method, authorization_type="AWS_IAM", function="Fn")


def test_a_path_parameter_matches_one_segment_and_is_decoded(make_stack: StackFactory) -> None:
    # GIVEN GET /jobs/{id}
    api = local_api(make_stack, route("/jobs/{id}", "GET"))

    # WHEN requests are matched THEN one segment matches, percent-decoded, and two do not
    matched = api.match("GET", "/jobs/a%20b")
    assert matched is not None
    assert matched[1] == {"id": "a b"}
    assert api.match("GET", "/jobs/a/b") is None
    assert api.match("GET", "/jobs") is None


def test_a_method_no_route_has_does_not_match(make_stack: StackFactory) -> None:
    # GIVEN GET /jobs/{id} only
    api = local_api(make_stack, route("/jobs/{id}", "GET"))

    # WHEN a PUT is matched THEN there is no route (API Gateway's 403)
    assert api.match("PUT", "/jobs/1") is None


def test_literal_segments_win_over_parameters_and_the_method_over_any(make_stack: StackFactory) -> None:
    # GIVEN /jobs/{id} (GET), /jobs/stats (ANY) and /jobs/stats (GET)
    api = local_api(
        make_stack, route("/jobs/{id}", "GET"), route("/jobs/stats", "ANY"), route("/jobs/stats", "GET")
    )

    # WHEN GET and POST /jobs/stats are matched
    get, post = api.match("GET", "/jobs/stats"), api.match("POST", "/jobs/stats")

    # THEN the literal route wins, its own method before ANY
    assert get is not None
    assert (get[0].resource_path, get[0].http_method) == ("/jobs/stats", "GET")
    assert post is not None
    assert (post[0].resource_path, post[0].http_method) == ("/jobs/stats", "ANY")


def test_a_greedy_parameter_takes_the_rest_of_the_path(make_stack: StackFactory) -> None:
    # GIVEN ANY /files/{proxy+}
    api = local_api(make_stack, route("/files/{proxy+}", "ANY"))

    # WHEN a deep path is matched THEN the parameter holds all of it
    matched = api.match("DELETE", "/files/a/b/c")
    assert matched is not None
    assert matched[1] == {"proxy": "a/b/c"}


def test_several_post_routes_each_match_their_own_path(make_stack: StackFactory) -> None:
    # GIVEN POST /reports and POST /thumbs
    api = local_api(make_stack, route("/reports", "POST"), route("/thumbs", "POST"))

    # WHEN both are matched THEN each goes to its own route
    reports, thumbs = api.match("POST", "/reports"), api.match("POST", "/thumbs")
    assert reports is not None
    assert reports[0].resource_path == "/reports"
    assert thumbs is not None
    assert thumbs[0].resource_path == "/thumbs"


def test_the_jobs_url_is_the_default_types_route_under_the_prefix(make_stack: StackFactory) -> None:
    # GIVEN an API served at a base URL
    api = local_api(make_stack)
    api.base_url = "http://127.0.0.1:3000/stack-media"

    # THEN jobs are submitted at /jobs under it
    assert api.jobs_url == "http://127.0.0.1:3000/stack-media/jobs"


def typed_api(make_stack: StackFactory, types: tuple[str, ...]) -> LocalApi:
    from async_job_local.api_spec import apis_of

    (spec,) = apis_of(make_stack(api_template(types=types, typed=True)), set())
    api = LocalApi(spec=spec, routes=[])
    api.base_url = "http://127.0.0.1:3000/stack-media"
    return api


def test_the_submit_url_of_a_type_is_its_own_path(make_stack: StackFactory) -> None:
    # GIVEN an API with types reports and thumbs
    api = typed_api(make_stack, ("reports", "thumbs"))

    # THEN each is submitted at /{name}
    assert api.job_types == ("reports", "thumbs")
    assert api.submit_url("thumbs") == "http://127.0.0.1:3000/stack-media/thumbs"


def test_the_submit_url_without_a_type_is_the_only_types(make_stack: StackFactory) -> None:
    api = typed_api(make_stack, ("reports",))
    assert api.submit_url() == "http://127.0.0.1:3000/stack-media/reports"


def test_fails_if_no_type_is_named_and_the_api_has_several(make_stack: StackFactory) -> None:
    api = typed_api(make_stack, ("reports", "thumbs"))
    with pytest.raises(KeyError, match="name one of: reports, thumbs"):
        api.submit_url()


def test_fails_if_the_type_named_is_not_one_of_the_apis(make_stack: StackFactory) -> None:
    api = typed_api(make_stack, ("reports", "thumbs"))
    with pytest.raises(KeyError, match="no job type 'videos'; its types: reports, thumbs"):
        api.submit_url("videos")
