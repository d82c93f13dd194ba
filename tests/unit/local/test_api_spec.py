"""The API model: an ``AsyncJobApi`` found in a template by its marks, with its routes and responses."""

from __future__ import annotations

import pytest

from async_job_local.api_spec import apis_of, slug_of
from async_job_local.errors import AssemblyError
from tests.unit.local.conftest import StackFactory
from tests.unit.local.templates import api_template


def test_a_single_type_api_is_found_with_its_functions_and_routes(make_stack: StackFactory) -> None:
    # GIVEN today's single-type template
    stack = make_stack(api_template())

    # WHEN its APIs are read
    (api,) = apis_of(stack, set())

    # THEN it has its functions by role and the template's routes, each to its function
    assert api.path == "Stack/Media"
    assert api.slug == "stack-media"
    assert {role: spec.logical_id for role, spec in api.functions.items()} == {
        "submit": "Submit",
        "status": "Status",
        "worker": "WorkerJobs",
        "dead-letter": "DeadLetter",
    }
    assert [(r.http_method, r.resource_path, r.function) for r in api.routes] == [
        ("POST", "/jobs", "Submit"),
        ("DELETE", "/jobs/{id}", "Status"),
        ("GET", "/jobs/{id}", "Status"),
    ]
    assert {source.queue for source in api.event_sources} == {"QueueJobs", "DlqJobs"}


def test_nested_resources_and_several_post_methods_are_all_routes(make_stack: StackFactory) -> None:
    # GIVEN a template with a POST per job type at the root and a nested /jobs/{id}
    stack = make_stack(api_template(types=("reports", "thumbs"), typed=True))

    # WHEN its routes are read
    (api,) = apis_of(stack, set())
    routes = {(r.http_method, r.resource_path): r.function for r in api.routes}

    # THEN every method of every resource is one
    assert routes == {
        ("POST", "/reports"): "Submit",
        ("POST", "/thumbs"): "Submit",
        ("GET", "/jobs/{id}"): "Status",
        ("DELETE", "/jobs/{id}"): "Status",
    }


def test_gateway_responses_are_read_by_type(make_stack: StackFactory) -> None:
    # GIVEN a template with a DEFAULT_4XX gateway response
    (api,) = apis_of(make_stack(api_template()), set())

    # THEN it is the API's, with its template
    assert api.gateway_responses["DEFAULT_4XX"].templates == {
        "application/json": '{"title": $context.error.messageString}'
    }


def test_fails_if_a_marked_api_lacks_a_function(make_stack: StackFactory) -> None:
    # GIVEN a template whose status function is gone
    template = api_template()
    del template["Resources"]["Status"]

    # WHEN its APIs are read THEN the error names what is missing
    with pytest.raises(AssemblyError, match="Stack/Media: the template has no status of this AsyncJobApi"):
        list(apis_of(make_stack(template), set()))


def test_two_apis_with_one_slug_get_distinct_prefixes(make_stack: StackFactory) -> None:
    # GIVEN a slug already taken
    taken = {"stack-media"}

    # WHEN the API is read
    (api,) = apis_of(make_stack(api_template()), taken)

    # THEN it gets the next free one
    assert api.slug == "stack-media-2"


@pytest.mark.parametrize(
    ("path", "slug"),
    [("AsyncJobSample/Reports", "asyncjobsample-reports"), ("A/B c_d", "a-b-c-d"), ("///", "api")],
)
def test_slug_is_the_lowercased_construct_path(path: str, slug: str) -> None:
    assert slug_of(path) == slug
