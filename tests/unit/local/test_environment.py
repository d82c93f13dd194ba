"""Environment resolution: template variables to local values, ``ASYNC_JOB_TYPES`` included."""

from __future__ import annotations

import json

from async_job_local.environment import lambda_reserved_environment, resolve_environment
from async_job_local.errors import UnresolvableError
from tests.unit.local.conftest import StackFactory
from tests.unit.local.templates import api_template

QUEUES = {
    "QueueReports": "http://127.0.0.1:5000/123456789012/Stack-QueueReports",
    "QueueThumbs": "http://127.0.0.1:5000/123456789012/Stack-QueueThumbs",
    "Table": "Stack-Table",
}


def lookup(logical_id: str, attribute: str | None) -> str:
    if attribute is None and logical_id in QUEUES:
        return QUEUES[logical_id]
    raise UnresolvableError(f"{logical_id} does not exist locally")


def test_job_types_joined_by_to_json_string_resolve_to_a_json_object_of_local_queues(
    make_stack: StackFactory,
) -> None:
    # GIVEN the submit function of a two-type API, whose ASYNC_JOB_TYPES is an Fn::Join of queue tokens
    stack = make_stack(api_template(types=("reports", "thumbs"), typed=True))
    submit = stack.function("Submit")
    warnings: list[str] = []

    # WHEN its environment is resolved
    resolved = resolve_environment(submit.environment, lookup, warnings.append)

    # THEN ASYNC_JOB_TYPES is JSON naming each type's local queue
    types = json.loads(resolved["ASYNC_JOB_TYPES"])
    assert types == {
        "reports": {"queueUrl": QUEUES["QueueReports"], "maxPayloadBytes": 262144, "maxReceiveCount": 3},
        "thumbs": {"queueUrl": QUEUES["QueueThumbs"], "maxPayloadBytes": 262144, "maxReceiveCount": 3},
    }
    assert resolved["ASYNC_JOB_TABLE_NAME"] == "Stack-Table"
    assert warnings == []


def test_a_variable_that_refers_to_nothing_local_is_dropped_with_a_warning() -> None:
    # GIVEN a variable referring to a bucket, and a literal
    variables = {"BUCKET": {"Ref": "Bucket"}, "GREETING": "hello"}
    warnings: list[str] = []

    # WHEN the environment is resolved
    resolved = resolve_environment(variables, lookup, warnings.append)

    # THEN the literal stays and the bucket is dropped, named in a warning
    assert resolved == {"GREETING": "hello"}
    assert warnings == ["environment variable BUCKET dropped: Bucket does not exist locally"]


def test_a_joined_document_that_is_not_json_once_resolved_is_passed_with_a_warning() -> None:
    # GIVEN a Join that looks like JSON but is not, once resolved
    variables = {"BROKEN": {"Fn::Join": ["", ['{"url": ', {"Ref": "QueueReports"}, "}"]]}}
    warnings: list[str] = []

    # WHEN the environment is resolved
    resolved = resolve_environment(variables, lookup, warnings.append)

    # THEN the value is passed as it is, and the warning says so
    assert resolved["BROKEN"].startswith('{"url": http://')
    assert len(warnings) == 1
    assert "BROKEN is not JSON once resolved" in warnings[0]


def test_lambda_reserved_variables_name_the_function_its_handler_and_no_tracing(
    make_stack: StackFactory,
) -> None:
    # GIVEN a function of a template
    spec = make_stack(api_template()).function("WorkerJobs")

    # WHEN Lambda's reserved variables are made for it
    reserved = lambda_reserved_environment(spec, "Stack-WorkerJobs", "/sandbox")

    # THEN they are Lambda's, for this function, with tracing off and no ~/.aws files
    assert reserved["AWS_LAMBDA_FUNCTION_NAME"] == "Stack-WorkerJobs"
    assert reserved["_HANDLER"] == "lambda_handlers.worker.handler"
    assert reserved["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert reserved["LAMBDA_TASK_ROOT"] == str(spec.code_dir)
    assert reserved["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.13"
    assert reserved["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert reserved["AWS_CONFIG_FILE"] == reserved["AWS_SHARED_CREDENTIALS_FILE"] == "/dev/null"
    assert "AWS_LAMBDA_LOG_FORMAT" not in reserved
