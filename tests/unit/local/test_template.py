"""The template model: functions, queues and event source mappings read as CloudFormation creates them."""

from __future__ import annotations

import pytest

from async_job_local.errors import AssemblyError
from async_job_local.template import LAMBDA_DEFAULT_MEMORY, LAMBDA_DEFAULT_TIMEOUT, mark_of
from tests.unit.local.conftest import StackFactory
from tests.unit.local.templates import CODE_ASSET, RUNTIME_ASSET, api_template


def test_a_function_is_read_with_its_code_asset_layers_and_settings(make_stack: StackFactory) -> None:
    # GIVEN the worker of a template, with a directory asset and the runtime layer
    stack = make_stack(api_template())

    # WHEN it is read
    worker = stack.function("WorkerJobs")

    # THEN its code, layer, handler, timeout, memory and environment are the template's
    assert worker.code_dir == stack.directory / CODE_ASSET
    assert worker.layer_dirs == (stack.directory / RUNTIME_ASSET,)
    assert worker.handler == "lambda_handlers.worker.handler"
    assert (worker.timeout, worker.memory_size) == (30, 256)
    assert worker.environment["ASYNC_JOB_HANDLER"] == "jobs.run"
    assert worker.role == "worker"


def test_a_function_without_timeout_or_memory_gets_cloudformations_defaults(make_stack: StackFactory) -> None:
    # GIVEN a function whose template leaves out Timeout and MemorySize
    template = api_template()
    del template["Resources"]["Status"]["Properties"]["Timeout"]
    del template["Resources"]["Status"]["Properties"]["MemorySize"]

    # WHEN it is read
    status = make_stack(template).function("Status")

    # THEN it has Lambda's defaults: 3 s and 128 MiB
    assert (status.timeout, status.memory_size) == (LAMBDA_DEFAULT_TIMEOUT, LAMBDA_DEFAULT_MEMORY)


def test_fails_if_a_function_is_not_python(make_stack: StackFactory) -> None:
    # GIVEN a Node.js function
    template = api_template()
    template["Resources"]["Status"]["Properties"]["Runtime"] = "nodejs20.x"

    # WHEN it is read THEN the error names the runtime
    with pytest.raises(AssemblyError, match=r"Stack/Status: runtime nodejs20\.x is not Python"):
        make_stack(template).function("Status")


def test_fails_if_a_timeout_is_a_deploy_time_value(make_stack: StackFactory) -> None:
    # GIVEN a timeout the local runtime cannot evaluate
    template = api_template()
    template["Resources"]["Status"]["Properties"]["Timeout"] = {"Ref": "TimeoutParameter"}

    # WHEN it is read THEN the error names the property and the fix
    with pytest.raises(AssemblyError, match=r"Timeout is .*pass a number"):
        make_stack(template).function("Status")


def test_a_queue_knows_its_visibility_timeout_and_redrive_target(make_stack: StackFactory) -> None:
    # GIVEN a job queue that redrives to its DLQ after 3 receives
    stack = make_stack(api_template())

    # WHEN it is read
    queue = stack.queue("QueueJobs")

    # THEN the redrive policy and visibility timeout are the template's
    assert (queue.visibility_timeout, queue.max_receive_count, queue.dead_letter_target) == (60, 3, "DlqJobs")
    assert stack.queue("DlqJobs").visibility_timeout == 30  # SQS's default


def test_event_sources_of_a_function_carry_batch_size_concurrency_and_response_types(
    make_stack: StackFactory,
) -> None:
    # GIVEN a worker mapping with batch size 5 and maximum concurrency 2
    stack = make_stack(api_template(batch_sizes=[5], concurrencies=[2]))

    # WHEN the worker's event sources are read
    (source,) = stack.event_sources("WorkerJobs")

    # THEN they are the template's
    assert (source.queue, source.batch_size, source.maximum_concurrency) == ("QueueJobs", 5, 2)
    assert source.report_batch_item_failures is True
    assert source.enabled is True


def test_mark_of_reads_the_api_the_role_and_the_job_type() -> None:
    # GIVEN a marked resource, an unmarked one and a half-marked one
    marked = {"Metadata": {"AsyncJob": {"api": "S/M", "role": "queue", "jobType": "thumbs"}}}

    # WHEN their marks are read THEN only a complete mark counts
    assert mark_of(marked) == {"api": "S/M", "role": "queue", "jobType": "thumbs"}
    assert mark_of({"Metadata": {}}) is None
    assert mark_of({"Metadata": {"AsyncJob": {"role": "queue"}}}) is None
