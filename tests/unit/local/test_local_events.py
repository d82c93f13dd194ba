"""EventBridge locally: event buses of the template created on embedded moto, and the events put on the buses
the functions name in ``ASYNC_JOB_EVENT_BUS`` shown in the function logs and written to ``events_file``."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest

from async_job_local.api_spec import apis_of
from async_job_local.assembly import CloudAssembly
from async_job_local.event_watcher import EventBusWatcher, EventLog, bus_name_of
from async_job_local.functions import FunctionLogs
from async_job_local.runtime import LocalRuntime
from async_job_local.template import StackSpec
from tests.unit.local.templates import CODE_ASSET, api_template, function, make_assets, mark

STACK = "EventsStack"
BUS = "EventsStackJobEventsBus1A2B3C"
PUBLISHER = """
import json
import os

import boto3


def handler(event, context):
    entry = {
        "Source": "async-job",
        "DetailType": "Job Succeeded",
        "Detail": json.dumps({"jobId": event["jobId"]}),
        "EventBusName": os.environ["ASYNC_JOB_EVENT_BUS"],
    }
    return boto3.client("events").put_events(Entries=[entry])["FailedEntryCount"]
"""


def _template() -> dict[str, Any]:
    template = api_template()
    resources = template["Resources"]
    resources["JobEventsBus"] = {
        "Type": "AWS::Events::EventBus",
        "Metadata": mark("event-bus"),
        "Properties": {"Name": BUS},
    }
    resources["Publisher"] = function(
        "publisher.handler", "events", environment={"ASYNC_JOB_EVENT_BUS": {"Ref": "JobEventsBus"}}
    )
    resources["Status"]["Properties"]["Environment"]["Variables"]["ASYNC_JOB_EVENT_BUS"] = "default"
    return template


class Runtime:
    """The started runtime, its events file and what it wrote to the function logs."""

    def __init__(self, runtime: LocalRuntime, events_file: Path, logs: io.StringIO) -> None:
        self.runtime = runtime
        self.events_file = events_file
        self.logs = logs

    def events(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The events of the file, once it holds at least ``count``."""
        deadline = time.monotonic() + timeout
        while True:
            lines = (
                self.events_file.read_text(encoding="utf-8").splitlines() if self.events_file.exists() else []
            )
            if len(lines) >= count or time.monotonic() > deadline:
                return [json.loads(line) for line in lines]
            time.sleep(0.05)


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """The API with an event bus and a publishing function, started once for the module."""
    directory = tmp_path_factory.mktemp("assembly")
    make_assets(directory)
    (directory / CODE_ASSET / "publisher.py").write_text(PUBLISHER, encoding="utf-8")
    events_file = directory / "events.jsonl"
    logs = io.StringIO()
    stack = StackSpec(artifact_id=STACK, stack_name=STACK, template=_template(), directory=directory)
    assembly = CloudAssembly(
        directory=directory, stacks=(stack,), apis=tuple(apis_of(stack, set())), warnings=()
    )
    with LocalRuntime(
        assembly,
        port=0,
        logs=FunctionLogs(logs),
        check_handlers=False,
        warn=lambda _: None,
        events_file=events_file,
    ) as runtime:
        yield Runtime(runtime, events_file, logs)


def _client(runtime: LocalRuntime) -> Any:
    env = runtime.backend.child_environment()
    return boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
        region_name=env["AWS_REGION"],
    ).client("events", endpoint_url=env["AWS_ENDPOINT_URL"])


def test_the_event_bus_is_created_and_ref_is_its_name(started: Runtime) -> None:
    # GIVEN the running API
    runtime = started.runtime
    api = runtime.api()

    # WHEN the bus's Ref and attributes are read
    name = runtime.attribute(api, "JobEventsBus")
    arn = runtime.attribute(api, "JobEventsBus", "Arn")

    # THEN Ref is its name, the bus exists with that ARN, and the publisher names it
    assert name == runtime.attribute(api, "JobEventsBus", "Name") == BUS
    assert _client(runtime).describe_event_bus(Name=BUS)["Arn"] == arn
    assert runtime.functions[(STACK, "Publisher")].environment["ASYNC_JOB_EVENT_BUS"] == BUS


def test_the_buses_the_functions_name_are_watched(started: Runtime) -> None:
    # GIVEN the publisher (the template's bus) and the status function (the default bus)
    # WHEN the runtime's watchers are listed
    buses = sorted(watcher.bus for watcher in started.runtime.event_watchers)

    # THEN each bus is watched once
    assert buses == sorted([BUS, "default"])


def test_events_put_on_a_watched_bus_appear_in_the_file_and_the_logs(started: Runtime) -> None:
    # GIVEN a client of the backend, and the file so far
    before = len(started.events(0, timeout=0))
    events = _client(started.runtime)
    arn = started.runtime.attribute(started.runtime.api(), "JobEventsBus", "Arn")

    # WHEN events are put on the bus by name and by ARN, and on the default bus
    entries = [
        {
            "Source": "async-job",
            "DetailType": "Job Succeeded",
            "Detail": '{"jobId": "j-1"}',
            "EventBusName": BUS,
        },
        {
            "Source": "async-job",
            "DetailType": "Job Failed",
            "Detail": '{"jobId": "j-2"}',
            "EventBusName": arn,
        },
        {"Source": "other.app", "DetailType": "Ping", "Detail": "{}", "EventBusName": "default"},
    ]
    assert events.put_events(Entries=entries)["FailedEntryCount"] == 0

    # THEN each is in the file, as EventBridge delivers it, and a line of the logs names its bus
    written = started.events(before + 3)[before:]
    assert sorted((e["source"], e["detail-type"], json.dumps(e["detail"])) for e in written) == [
        ("async-job", "Job Failed", '{"jobId": "j-2"}'),
        ("async-job", "Job Succeeded", '{"jobId": "j-1"}'),
        ("other.app", "Ping", "{}"),
    ]
    assert all({"id", "time", "region", "version"} <= event.keys() for event in written)
    log_lines = started.logs.getvalue().splitlines()
    assert any(line.startswith(f"events:{BUS} | ") and '"j-1"' in line for line in log_lines)
    assert any(line.startswith("events:default | ") and "other.app" in line for line in log_lines)


def test_an_event_a_function_puts_in_its_own_process_is_seen(started: Runtime) -> None:
    # GIVEN the publisher function, which puts on its ASYNC_JOB_EVENT_BUS
    before = len(started.events(0, timeout=0))
    publisher = started.runtime.functions[(STACK, "Publisher")]

    # WHEN it runs
    result = publisher.invoke({"jobId": "j-3"})

    # THEN its event is in the file
    assert result.ok, result.error
    assert result.payload == 0
    (event,) = started.events(before + 1)[before:]
    assert (event["source"], event["detail-type"], event["detail"]) == (
        "async-job",
        "Job Succeeded",
        {"jobId": "j-3"},
    )


def test_a_runtime_whose_functions_name_no_bus_watches_none(tmp_path: Path) -> None:
    # GIVEN an API without ASYNC_JOB_EVENT_BUS
    make_assets(tmp_path)
    stack = StackSpec(artifact_id="NoBus", stack_name="NoBus", template=api_template(), directory=tmp_path)
    assembly = CloudAssembly(
        directory=tmp_path, stacks=(stack,), apis=tuple(apis_of(stack, set())), warnings=()
    )

    # WHEN it runs
    with LocalRuntime(
        assembly, port=0, logs=FunctionLogs(None), check_handlers=False, warn=lambda _: None
    ) as runtime:
        watchers = list(runtime.event_watchers)

    # THEN nothing is watched
    assert watchers == []


class Collected(EventLog):
    """An event log that keeps the events in a list."""

    def __init__(self) -> None:
        super().__init__(FunctionLogs(None))
        self.seen: list[Mapping[str, Any]] = []

    def write(self, bus: str, event: Mapping[str, Any]) -> None:
        self.seen.append(event)


def test_a_stopped_watcher_delivers_what_is_left_and_removes_its_rule_and_queue(started: Runtime) -> None:
    # GIVEN a watcher of a bus of its own, with an event put just before it stops
    backend = started.runtime.backend
    backend.ensure_event_bus("cleanup-bus")
    log = Collected()
    watcher = EventBusWatcher(backend, "cleanup-bus", log)
    watcher.start()
    entry = {
        "Source": "async-job",
        "DetailType": "Job Cancelled",
        "Detail": "{}",
        "EventBusName": "cleanup-bus",
    }
    _client(started.runtime).put_events(Entries=[entry])

    # WHEN it stops
    watcher.stop()
    watcher.join(5)

    # THEN the event was delivered, and the bus has no rule of the runtime left, nor the queue
    assert [event["detail-type"] for event in log.seen] == ["Job Cancelled"]
    assert _client(started.runtime).list_rules(EventBusName="cleanup-bus")["Rules"] == []
    queues = backend.client("sqs").list_queues(QueueNamePrefix="async-job-local-events-cleanup-bus")
    assert queues.get("QueueUrls", []) == []


def test_bus_names_are_read_from_arns() -> None:
    assert bus_name_of("arn:aws:events:eu-west-1:123456789012:event-bus/my-bus") == "my-bus"
    assert bus_name_of("my-bus") == "my-bus"


def test_two_watchers_of_one_bus_in_one_process_each_see_every_event(started: Runtime) -> None:
    # GIVEN two watchers of the same bus on one backend (two runtimes of one process share moto's state)
    backend = started.runtime.backend
    backend.ensure_event_bus("shared-bus")
    logs = [Collected(), Collected()]
    watchers = [EventBusWatcher(backend, "shared-bus", log) for log in logs]
    for watcher in watchers:
        watcher.start()

    # WHEN an event is put on the bus
    entry = {
        "Source": "async-job",
        "DetailType": "Job Succeeded",
        "Detail": "{}",
        "EventBusName": "shared-bus",
    }
    _client(started.runtime).put_events(Entries=[entry])
    for watcher in watchers:
        watcher.stop()
        watcher.join(5)

    # THEN each watcher got it (their rules and queues are their own, not one shared by name)
    assert [[event["detail-type"] for event in log.seen] for log in logs] == [
        ["Job Succeeded"],
        ["Job Succeeded"],
    ]
