"""The runtime's wiring of an API with two job types, on embedded moto (a hand-written template, no synthesis).

moto's in-process state is shared by every embedded backend of the process: the runtime's table and queues are
deleted after the module, so that later runtimes of the session (the fault suite's) find only their own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from async_job_local.api_spec import apis_of
from async_job_local.assembly import CloudAssembly
from async_job_local.functions import FunctionLogs
from async_job_local.runtime import LocalRuntime
from async_job_local.template import StackSpec
from tests.unit.local.templates import api_template, make_assets


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    """Types reports (batch 1, maximum concurrency 2) and thumbs (batch 5, no maximum), served on a free port
    (started once for the module: a runtime starts in seconds)."""
    directory = tmp_path_factory.mktemp("assembly")
    make_assets(directory)
    template = api_template(
        types=("reports", "thumbs"), typed=True, batch_sizes=[1, 5], concurrencies=[2, None]
    )
    stack = StackSpec(artifact_id="Stack", stack_name="Stack", template=template, directory=directory)
    assembly = CloudAssembly(
        directory=stack.directory, stacks=(stack,), apis=tuple(apis_of(stack, set())), warnings=()
    )
    with LocalRuntime(
        assembly, port=0, concurrency=4, logs=FunctionLogs(None), check_handlers=False, warn=lambda _: None
    ) as started:
        try:
            yield started
        finally:
            _delete_resources(started)


def _delete_resources(runtime: LocalRuntime) -> None:
    """moto's state is per process: leave no table or queue behind for the next runtime of the test session."""
    api = runtime.api()
    runtime.backend.client("dynamodb").delete_table(TableName=runtime.table_name(api))
    sqs = runtime.backend.client("sqs")
    for job_type in api.job_types:
        for role in ("queue", "dead-letter-queue"):
            sqs.delete_queue(QueueUrl=runtime.queue(api, role, job_type).url)


def test_each_types_queue_feeds_its_own_worker_with_its_batch_size_and_concurrency(
    runtime: LocalRuntime,
) -> None:
    # GIVEN the two-type API running
    api = runtime.api()

    # WHEN its event sources are listed
    sources = {
        (source.function.name, source.queue.url): (source.batch_size, source.pollers)
        for source in runtime.event_sources
    }

    # THEN each type's queue is polled for its own worker, as its mapping says (concurrency 2 < --concurrency 4)
    reports, thumbs = runtime.queue(api, job_type="reports"), runtime.queue(api, job_type="thumbs")
    assert sources[("Stack-WorkerReports", reports.url)] == (1, 2)
    assert sources[("Stack-WorkerThumbs", thumbs.url)] == (5, 4)


def test_the_dead_letter_function_polls_every_types_dead_letter_queue(runtime: LocalRuntime) -> None:
    api = runtime.api()
    polled = {
        source.queue.url for source in runtime.event_sources if source.function.name == "Stack-DeadLetter"
    }
    assert polled == {
        runtime.queue(api, "dead-letter-queue", "reports").url,
        runtime.queue(api, "dead-letter-queue", "thumbs").url,
    }


def test_the_submit_functions_job_types_name_the_local_queues(runtime: LocalRuntime) -> None:
    # GIVEN the submit function's environment, whose ASYNC_JOB_TYPES was an Fn::Join of queue tokens
    api = runtime.api()
    environment = runtime.functions[("Stack", "Submit")].environment

    # THEN it is JSON naming each type's local queue
    types = json.loads(environment["ASYNC_JOB_TYPES"])
    assert {name: value["queueUrl"] for name, value in types.items()} == {
        "reports": runtime.queue(api, job_type="reports").url,
        "thumbs": runtime.queue(api, job_type="thumbs").url,
    }


def test_each_type_is_submitted_at_its_own_route(runtime: LocalRuntime) -> None:
    api = runtime.api()
    posts = {route.resource_path for route in api.routes if route.http_method == "POST"}
    assert posts == {"/reports", "/thumbs"}
    assert api.submit_url("reports") == f"{api.base_url}/reports"


def test_fails_if_no_type_is_named_for_the_queue_of_a_two_type_api(runtime: LocalRuntime) -> None:
    with pytest.raises(KeyError, match="has job types reports, thumbs: name one"):
        runtime.queue(runtime.api())
