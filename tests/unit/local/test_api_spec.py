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


def test_an_api_with_two_job_types_has_each_types_worker_queues_and_mappings(
    make_stack: StackFactory,
) -> None:
    # GIVEN a template with types reports (batch 1, concurrency 2) and thumbs (batch 5), marked jobType
    template = api_template(
        types=("reports", "thumbs"), typed=True, batch_sizes=[1, 5], concurrencies=[2, None]
    )

    # WHEN its APIs are read
    (api,) = apis_of(make_stack(template), set())

    # THEN each type has its own worker, queues and mapping; the shared functions are the API's
    assert list(api.job_types) == ["reports", "thumbs"]
    reports, thumbs = api.job_types["reports"], api.job_types["thumbs"]
    assert (reports.worker.logical_id, reports.queue, reports.dead_letter_queue) == (
        "WorkerReports",
        "QueueReports",
        "DlqReports",
    )
    assert (thumbs.worker.logical_id, thumbs.handler) == ("WorkerThumbs", "thumbs.run")
    assert [(s.batch_size, s.maximum_concurrency) for s in reports.event_sources] == [(1, 2)]
    assert [(s.batch_size, s.maximum_concurrency) for s in thumbs.event_sources] == [(5, None)]
    assert set(api.functions) == {"submit", "status", "dead-letter"}
    assert "worker" not in api.roles


def test_the_dead_letter_function_polls_every_types_dead_letter_queue(make_stack: StackFactory) -> None:
    # GIVEN a two-type template WHEN it is read
    (api,) = apis_of(make_stack(api_template(types=("reports", "thumbs"), typed=True)), set())

    # THEN the API's mappings are each worker's and the dead-letter function's, one per DLQ
    pairs = {(source.function, source.queue) for source in api.event_sources}
    assert pairs == {
        ("WorkerReports", "QueueReports"),
        ("WorkerThumbs", "QueueThumbs"),
        ("DeadLetter", "DlqReports"),
        ("DeadLetter", "DlqThumbs"),
    }


def test_unmarked_per_type_resources_are_the_jobs_type_with_todays_roles(make_stack: StackFactory) -> None:
    # GIVEN today's single-type template (no jobType anywhere)
    (api,) = apis_of(make_stack(api_template()), set())

    # THEN it has one type, jobs, and its worker and queues keep their roles on the API
    assert list(api.job_types) == ["jobs"]
    assert api.job_types["jobs"].handler == "jobs.run"
    assert (api.roles["worker"], api.roles["queue"], api.roles["dead-letter-queue"]) == (
        "WorkerJobs",
        "QueueJobs",
        "DlqJobs",
    )


def test_fails_if_two_resources_of_one_type_have_one_role(make_stack: StackFactory) -> None:
    # GIVEN a second worker marked for type reports
    template = api_template(types=("reports",), typed=True)
    template["Resources"]["WorkerReports2"] = template["Resources"]["WorkerReports"]

    # WHEN it is read THEN the error names both
    with pytest.raises(
        AssemblyError, match=r"job type 'reports' has two worker resources \(WorkerReports, WorkerReports2\)"
    ):
        list(apis_of(make_stack(template), set()))


def test_fails_if_a_job_type_has_no_worker(make_stack: StackFactory) -> None:
    # GIVEN type thumbs with queues but no worker
    template = api_template(types=("reports", "thumbs"), typed=True)
    del template["Resources"]["WorkerThumbs"]
    del template["Resources"]["EsmThumbs"]

    # WHEN it is read THEN the error names the type
    with pytest.raises(AssemblyError, match=r"no worker for job type\(s\) thumbs"):
        list(apis_of(make_stack(template), set()))
