"""DynamoDB Streams event source mappings, locally: the template's mapping, event filtering, and the poller's
batches, retries and give-ups on embedded moto (a stand-in function records its invocations; one test runs a
real function in its own process through the whole runtime)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from async_job_local.api_spec import apis_of
from async_job_local.assembly import CloudAssembly
from async_job_local.backend import Backend, EmbeddedMotoBackend
from async_job_local.errors import AssemblyError
from async_job_local.event_filter import FilterPatternError, matches, matches_any, validate_pattern
from async_job_local.functions import FunctionLogs, InvokeResult
from async_job_local.runtime import LocalRuntime
from async_job_local.stream_poller import StreamEventSource, completed_records
from async_job_local.template import STREAM_LOCAL_MAXIMUM_RETRY_ATTEMPTS, StackSpec, StreamSourceSpec
from tests.unit.local.conftest import StackFactory
from tests.unit.local.templates import CODE_ASSET, api_template, function, make_assets, mark

TERMINAL = {
    "eventName": ["INSERT", "MODIFY"],
    "dynamodb": {"NewImage": {"status": {"S": ["SUCCEEDED", "FAILED", "CANCELLED"]}}},
}
RECORDER = """
import json
import os


def handler(event, context):
    with open(os.environ["RECORD_FILE"], "a", encoding="utf-8") as file:
        for record in event["Records"]:
            file.write(json.dumps(record) + "\\n")
    return {"batchItemFailures": []}
"""


def _template(*, filters: list[dict[str, Any]] | None = None, **mapping: Any) -> dict[str, Any]:
    """The single-type API whose table has a stream read by an ``events`` function."""
    template = api_template()
    resources = template["Resources"]
    resources["Table"]["Properties"]["StreamSpecification"] = {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    resources["Events"] = function("recorder.handler", "events")
    properties: dict[str, Any] = {
        "FunctionName": {"Ref": "Events"},
        "EventSourceArn": {"Fn::GetAtt": ["Table", "StreamArn"]},
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": 10,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        **mapping,
    }
    if filters is not None:
        properties["FilterCriteria"] = {"Filters": [{"Pattern": json.dumps(f)} for f in filters]}
    resources["EventsStream"] = {"Type": "AWS::Lambda::EventSourceMapping", "Properties": properties}
    resources["Table"]["Metadata"] = mark("table")
    return template


# ------------------------------------------------------------------------------------------- the template


def test_the_stream_mapping_of_an_events_function_is_read_with_its_settings(make_stack: StackFactory) -> None:
    # GIVEN a template whose events function reads the table's stream, with every setting
    stack = make_stack(
        _template(
            filters=[TERMINAL],
            MaximumBatchingWindowInSeconds=2,
            MaximumRetryAttempts=3,
            BisectBatchOnFunctionError=True,
        )
    )

    # WHEN its API is read
    (api,) = apis_of(stack, set())

    # THEN the events function is one of the API's, and its mapping is a stream source
    assert "Events" in api.extra_functions
    (source,) = api.stream_sources
    assert source == StreamSourceSpec(
        logical_id="EventsStream",
        function="Events",
        table="Table",
        starting_position="TRIM_HORIZON",
        batch_size=10,
        maximum_batching_window=2,
        maximum_retry_attempts=3,
        bisect_batch_on_function_error=True,
        report_batch_item_failures=True,
        filter_patterns=(TERMINAL,),
        enabled=True,
    )
    assert all(s.function != "Events" for s in api.event_sources)


def test_retries_are_bounded_locally_when_the_mapping_retries_forever(make_stack: StackFactory) -> None:
    # GIVEN a mapping with MaximumRetryAttempts -1 (Lambda: until the records expire)
    stack = make_stack(_template(MaximumRetryAttempts=-1))

    # WHEN it is read
    (source,) = stack.stream_sources("Events")

    # THEN the local bound applies
    assert source.maximum_retry_attempts == STREAM_LOCAL_MAXIMUM_RETRY_ATTEMPTS


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("{not json", "is not a JSON object"),
        (json.dumps({"dynamodb": {"NewImage": {"size": {"N": [{"numeric": [">", 1]}]}}}}), "'numeric'"),
        (json.dumps({"eventName": "INSERT"}), "lists of rules"),
    ],
)
def test_fails_if_a_filter_pattern_cannot_be_evaluated_locally(
    make_stack: StackFactory, pattern: str, message: str
) -> None:
    # GIVEN a mapping whose filter is malformed or uses an operator the runtime does not implement
    template = _template()
    template["Resources"]["EventsStream"]["Properties"]["FilterCriteria"] = {
        "Filters": [{"Pattern": pattern}]
    }
    stack = make_stack(template)

    # WHEN / THEN reading it fails, naming the mapping
    with pytest.raises(AssemblyError, match=message):
        stack.stream_sources("Events")


# ------------------------------------------------------------------------------------------- filtering


def _record(name: str, status: str | None = None, old: str | None = None) -> dict[str, Any]:
    dynamodb: dict[str, Any] = {"Keys": {"pk": {"S": "job-1"}}, "SequenceNumber": "1"}
    if status is not None:
        dynamodb["NewImage"] = {"pk": {"S": "job-1"}, "status": {"S": status}}
    if old is not None:
        dynamodb["OldImage"] = {"pk": {"S": "job-1"}, "status": {"S": old}}
    return {"eventName": name, "dynamodb": dynamodb}


@pytest.mark.parametrize(
    ("pattern", "record", "expected"),
    [
        (TERMINAL, _record("MODIFY", "SUCCEEDED", "RUNNING"), True),
        (TERMINAL, _record("MODIFY", "RUNNING", "QUEUED"), False),
        (TERMINAL, _record("REMOVE", old="SUCCEEDED"), False),
        ({"dynamodb": {"OldImage": [{"exists": False}]}}, _record("INSERT", "QUEUED"), True),
        ({"dynamodb": {"OldImage": [{"exists": False}]}}, _record("MODIFY", "RUNNING", "QUEUED"), False),
        ({"dynamodb": {"OldImage": [{"exists": True}]}}, _record("MODIFY", "RUNNING", "QUEUED"), True),
        ({"eventName": [{"anything-but": ["REMOVE"]}]}, _record("INSERT", "QUEUED"), True),
        ({"eventName": [{"anything-but": "REMOVE"}]}, _record("REMOVE", old="QUEUED"), False),
        ({"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "job-"}]}}}}, _record("INSERT", "QUEUED"), True),
        ({"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "run-"}]}}}}, _record("INSERT", "QUEUED"), False),
        ({"eventName": [{"anything-but": {"prefix": "MOD"}}]}, _record("MODIFY", "X", "Y"), False),
        ({"tags": ["a"]}, {"tags": ["b", "a"]}, True),
        ({"count": [1]}, {"count": True}, False),
    ],
)
def test_event_patterns_match_as_lambda_filters_do(
    pattern: dict[str, Any], record: dict[str, Any], expected: bool
) -> None:
    # GIVEN a pattern and a record
    validate_pattern(pattern)

    # WHEN / THEN it matches as Lambda's filtering would
    assert matches(pattern, record) is expected


def test_patterns_are_alternatives_and_none_lets_everything_through() -> None:
    # GIVEN two patterns, and none
    patterns: list[dict[str, Any]] = [{"eventName": ["REMOVE"]}, TERMINAL]

    # WHEN / THEN one matching is enough, and no pattern filters nothing
    assert matches_any(patterns, _record("REMOVE", old="QUEUED"))
    assert not matches_any(patterns, _record("INSERT", "QUEUED"))
    assert matches_any([], _record("INSERT", "QUEUED"))


def test_fails_if_a_rule_uses_an_unsupported_operator() -> None:
    with pytest.raises(FilterPatternError, match="'equals-ignore-case' is not supported"):
        validate_pattern({"eventName": [{"equals-ignore-case": "insert"}]})


# -------------------------------------------------------------------------------------------- responses


def _result(payload: Any = None, error: dict[str, Any] | None = None) -> InvokeResult:
    return InvokeResult(request_id="r", payload=payload, error=error, duration_ms=1.0)


def _batch(*sequence_numbers: str) -> list[dict[str, Any]]:
    return [{"dynamodb": {"SequenceNumber": number}} for number in sequence_numbers]


@pytest.mark.parametrize(
    ("result", "report", "expected"),
    [
        (_result(None), True, 3),
        (_result({"batchItemFailures": []}), True, 3),
        (_result({"batchItemFailures": [{"itemIdentifier": "12"}]}), True, 1),
        (_result({"batchItemFailures": [{"itemIdentifier": "13"}, {"itemIdentifier": "12"}]}), True, 1),
        (_result({"batchItemFailures": [{"itemIdentifier": "99"}]}), True, 0),
        (_result({"batchItemFailures": [{"itemIdentifier": ""}]}), True, 0),
        (_result({"batchItemFailures": [{"itemIdentifier": "12"}]}), False, 3),
        (_result(error={"errorType": "Sandbox.Timedout"}), True, 0),
    ],
)
def test_a_batch_is_completed_up_to_the_lowest_reported_failure(
    result: InvokeResult, report: bool, expected: int
) -> None:
    assert completed_records(_batch("11", "12", "13"), result, report) == expected


# -------------------------------------------------------------------------------------------- the poller


class Recorder:
    """A stand-in function: records each batch and answers with ``respond(batch, call number)``."""

    name = "recorder"

    def __init__(self, respond: Callable[[list[dict[str, Any]], int], InvokeResult] | None = None) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self._respond = respond or (lambda batch, call: _result(None))
        self._lock = threading.Lock()

    def invoke(self, event: Any) -> InvokeResult:
        with self._lock:
            self.batches.append(event["Records"])
            call = len(self.batches)
        return self._respond(event["Records"], call)

    def wait_for(
        self, condition: Callable[[list[list[dict[str, Any]]]], bool], timeout: float = 10.0
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if condition(list(self.batches)):
                    return
            time.sleep(0.05)
        raise AssertionError(f"not met in {timeout} s; batches: {self.batches}")

    def statuses(self) -> list[list[str]]:
        return [
            [r["dynamodb"].get("NewImage", {}).get("status", {}).get("S", "-") for r in b]
            for b in self.batches
        ]


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    started = EmbeddedMotoBackend()
    yield started
    started.close()


_tables = iter(range(1000))


@pytest.fixture
def table(backend: Backend) -> Iterator[tuple[str, str]]:
    """A table of its own with a NEW_AND_OLD_IMAGES stream: (name, stream ARN)."""
    name = f"stream-test-{next(_tables)}"
    backend.ensure_table(
        name,
        {
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
            "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
        },
    )
    arn = backend.stream_arn(name)
    assert arn is not None
    yield name, arn
    backend.client("dynamodb").delete_table(TableName=name)


SPEC = StreamSourceSpec(
    logical_id="EventsStream",
    function="Events",
    table="Table",
    starting_position="TRIM_HORIZON",
    batch_size=10,
    maximum_batching_window=0,
    maximum_retry_attempts=3,
    bisect_batch_on_function_error=False,
    report_batch_item_failures=True,
    filter_patterns=(),
    enabled=True,
)


def _put(backend: Backend, table: str, job: str, status: str) -> None:
    backend.client("dynamodb").put_item(TableName=table, Item={"pk": {"S": job}, "status": {"S": status}})


def _run(
    backend: Backend, arn: str, function: Recorder, spec: StreamSourceSpec, logs: list[str]
) -> StreamEventSource:
    source = StreamEventSource(backend=backend, stream_arn=arn, function=function, spec=spec, log=logs.append)
    source.start()
    return source


def _stop(source: StreamEventSource) -> None:
    source.stop()
    source.join(5)


def test_records_arrive_in_order_in_lambdas_shape(backend: Backend, table: tuple[str, str]) -> None:
    # GIVEN a job's item inserted, modified and deleted before the poller starts (TRIM_HORIZON)
    name, arn = table
    _put(backend, name, "job-1", "QUEUED")
    _put(backend, name, "job-1", "SUCCEEDED")
    backend.client("dynamodb").delete_item(TableName=name, Key={"pk": {"S": "job-1"}})
    function, logs = Recorder(), list[str]()

    # WHEN the poller runs
    source = _run(backend, arn, function, SPEC, logs)
    try:
        function.wait_for(lambda batches: sum(map(len, batches)) >= 3)
    finally:
        _stop(source)

    # THEN the three records come in one batch, in order, as Lambda builds them
    (batch,) = function.batches
    assert [r["eventName"] for r in batch] == ["INSERT", "MODIFY", "REMOVE"]
    first, second, third = batch
    assert first["eventVersion"] == "1.1"
    assert first["eventSource"] == "aws:dynamodb"
    assert first["eventSourceARN"] == arn
    assert first["awsRegion"] == backend.region
    assert first["dynamodb"]["Keys"] == {"pk": {"S": "job-1"}}
    assert first["dynamodb"]["NewImage"] == {"pk": {"S": "job-1"}, "status": {"S": "QUEUED"}}
    assert "OldImage" not in first["dynamodb"]
    assert second["dynamodb"]["OldImage"]["status"] == {"S": "QUEUED"}
    assert "NewImage" not in third["dynamodb"]
    assert first["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert isinstance(first["dynamodb"]["ApproximateCreationDateTime"], int)
    assert int(first["dynamodb"]["SequenceNumber"]) < int(second["dynamodb"]["SequenceNumber"])
    json.dumps(batch)  # the event is JSON, as Lambda's
    assert logs == []


def test_latest_starts_after_what_the_stream_holds(backend: Backend, table: tuple[str, str]) -> None:
    # GIVEN a record written before a LATEST poller starts
    name, arn = table
    _put(backend, name, "old", "QUEUED")
    function = Recorder()
    source = _run(backend, arn, function, replace(SPEC, starting_position="LATEST"), [])

    # WHEN another is written after it started
    try:
        _put(backend, name, "new", "RUNNING")
        function.wait_for(lambda batches: len(batches) >= 1)
    finally:
        _stop(source)

    # THEN only the later one is delivered
    assert [[r["dynamodb"]["Keys"]["pk"]["S"] for r in b] for b in function.batches] == [["new"]]


def test_filtered_out_records_are_dropped_not_delivered(backend: Backend, table: tuple[str, str]) -> None:
    # GIVEN a job going QUEUED -> RUNNING -> SUCCEEDED, and a mapping filtering terminal statuses
    name, arn = table
    for status in ("QUEUED", "RUNNING", "SUCCEEDED"):
        _put(backend, name, "job-1", status)
    _put(backend, name, "job-2", "FAILED")
    function = Recorder()

    # WHEN the poller runs
    source = _run(backend, arn, function, replace(SPEC, filter_patterns=(TERMINAL,)), [])
    try:
        function.wait_for(lambda batches: sum(map(len, batches)) >= 2)
        time.sleep(0.5)
    finally:
        _stop(source)

    # THEN only the terminal records were delivered
    assert function.statuses() == [["SUCCEEDED", "FAILED"]]


def test_a_reported_item_failure_is_retried_from_that_record(
    backend: Backend, table: tuple[str, str]
) -> None:
    # GIVEN a function that reports the second record of its first batch as failed
    name, arn = table
    for job in ("a", "b", "c"):
        _put(backend, name, job, f"status-{job}")

    def respond(batch: list[dict[str, Any]], call: int) -> InvokeResult:
        if call == 1:
            return _result(
                {"batchItemFailures": [{"itemIdentifier": batch[1]["dynamodb"]["SequenceNumber"]}]}
            )
        return _result({"batchItemFailures": []})

    function = Recorder(respond)

    # WHEN the poller runs
    source = _run(backend, arn, function, SPEC, [])
    try:
        function.wait_for(lambda batches: len(batches) >= 2)
        time.sleep(0.5)
    finally:
        _stop(source)

    # THEN the retry starts at the failed record, and nothing is delivered again after it succeeded
    assert function.statuses() == [["status-a", "status-b", "status-c"], ["status-b", "status-c"]]


def test_a_failing_batch_is_given_up_after_the_maximum_retries_and_the_shard_goes_on(
    backend: Backend, table: tuple[str, str]
) -> None:
    # GIVEN a function that fails on a poison record, at most 2 retries, batches of 1
    name, arn = table
    _put(backend, name, "poison", "bad")
    _put(backend, name, "fine", "good")

    def respond(batch: list[dict[str, Any]], call: int) -> InvokeResult:
        if batch[0]["dynamodb"]["NewImage"]["status"]["S"] == "bad":
            return _result(error={"errorType": "ValueError", "errorMessage": "poison"})
        return _result(None)

    function, logs = Recorder(respond), list[str]()
    spec = replace(SPEC, batch_size=1, maximum_retry_attempts=2)

    # WHEN the poller runs
    source = _run(backend, arn, function, spec, logs)
    try:
        function.wait_for(lambda batches: function.statuses()[-1:] == [["good"]])
    finally:
        _stop(source)

    # THEN the poison record was tried 1 + 2 times, given up with a log line, then the next delivered
    assert function.statuses() == [["bad"], ["bad"], ["bad"], ["good"]]
    (line,) = logs
    assert "gave up 1 record(s)" in line
    assert "after 2 retries" in line
    assert "ValueError: poison" in line


def test_bisection_halves_a_batch_after_a_function_error(backend: Backend, table: tuple[str, str]) -> None:
    # GIVEN four records, a function that fails while the batch holds the poison one, and bisection
    name, arn = table
    for index, status in enumerate(("ok-1", "ok-2", "bad", "ok-3")):
        _put(backend, name, f"job-{index}", status)

    def respond(batch: list[dict[str, Any]], call: int) -> InvokeResult:
        if any(r["dynamodb"]["NewImage"]["status"]["S"] == "bad" for r in batch):
            return _result(error={"errorType": "ValueError", "errorMessage": "poison"})
        return _result(None)

    function = Recorder(respond)
    spec = replace(SPEC, batch_size=4, bisect_batch_on_function_error=True, maximum_retry_attempts=5)

    # WHEN the poller runs until the first half succeeds
    source = _run(backend, arn, function, spec, [])
    try:
        function.wait_for(lambda batches: len(batches) >= 3)
    finally:
        _stop(source)

    # THEN the batch was halved after the error, and the half without the poison record went through
    assert function.statuses()[:3] == [["ok-1", "ok-2", "bad", "ok-3"], ["ok-1", "ok-2"], ["bad", "ok-3"]]


# ------------------------------------------------------------------------------------------- the runtime


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[tuple[LocalRuntime, Path]]:
    """A runtime whose events function (a real one, in its own process) appends its records to a file."""
    directory = tmp_path / "assembly"
    make_assets(directory)
    (directory / CODE_ASSET / "recorder.py").write_text(RECORDER, encoding="utf-8")
    records = tmp_path / "records.jsonl"
    template = _template(filters=[TERMINAL])
    template["Resources"]["Events"]["Properties"]["Environment"]["Variables"]["RECORD_FILE"] = str(records)
    stack = StackSpec(
        artifact_id="StreamStack", stack_name="StreamStack", template=template, directory=directory
    )
    assembly = CloudAssembly(
        directory=directory, stacks=(stack,), apis=tuple(apis_of(stack, set())), warnings=()
    )
    with LocalRuntime(
        assembly, port=0, logs=FunctionLogs(None), check_handlers=False, warn=lambda _: None
    ) as started:
        try:
            yield started, records
        finally:
            started.backend.client("dynamodb").delete_table(TableName=started.table_name(started.api()))


def test_the_runtime_feeds_the_events_function_from_the_status_tables_stream(
    runtime: tuple[LocalRuntime, Path],
) -> None:
    # GIVEN the runtime, whose table has a stream (StreamArn) read by the events function
    started, records = runtime
    table = started.table_name(started.api())
    (source,) = started.stream_sources
    assert source.stream_arn == started.backend.stream_arn(table)
    assert started.attribute(started.api(), "Table", "StreamArn") == source.stream_arn

    # WHEN a job is written QUEUED, then SUCCEEDED
    _put(started.backend, table, "job-1", "QUEUED")
    _put(started.backend, table, "job-1", "SUCCEEDED")

    # THEN the function, in its own process, received the terminal record only
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (records.exists() and records.read_text().strip()):
        time.sleep(0.1)
    time.sleep(0.5)
    lines = [json.loads(line) for line in records.read_text(encoding="utf-8").splitlines()]
    assert [(r["eventName"], r["dynamodb"]["NewImage"]["status"]["S"]) for r in lines] == [
        ("MODIFY", "SUCCEEDED")
    ]
