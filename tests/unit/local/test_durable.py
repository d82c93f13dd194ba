"""The local durable execution service: the SDK's own executor, each invocation in a child process, and the
Lambda endpoint the functions call (``AWS_ENDPOINT_URL_LAMBDA``), driven through a real boto3 Lambda client.

The durable function here is a tiny ``@durable_execution`` handler of the real SDK (no job logic), so these
tests hold whatever the async-job durable worker does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from async_job_local.durable import DurableFunction, LocalDurableService
from async_job_local.functions import FunctionLogs, LocalFunction
from async_job_local.template import FunctionSpec

HANDLER = """
import os
import time
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration


@durable_execution
def handler(event, context: DurableContext):
    total = 0
    for i in range(event.get("steps", 2)):
        # each step sleeps `sleep` s: steps beyond this invocation's room need the next one
        total = context.step(lambda _, i=i: (time.sleep(event.get("sleep", 0)), i + 1)[1], name=f"step-{i}")
    if event.get("wait"):
        context.wait(Duration.from_seconds(event["wait"]))
    if event.get("hang"):
        time.sleep(60)
    return {"total": total, "pid": os.getpid()}
"""

REGION = "us-east-1"
ACCOUNT = "123456789012"


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.append(text)
        return len(text)

    def flush(self) -> None:
        pass


#: What the function and the service write to the function logs.
LINES = _Lines()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDurableService]:
    code = tmp_path_factory.mktemp("durable-code")
    (code / "tiny.py").write_text(HANDLER)
    spec = FunctionSpec(
        logical_id="Tiny",
        handler="tiny.handler",
        runtime="python3.14",
        code_dir=code,
        layer_dirs=(),
        timeout=3,
        memory_size=128,
        environment={},
        log_format=None,
        role="worker",
    )
    logs = LINES
    durable = LocalDurableService(region=REGION, account_id=ACCOUNT, logs=FunctionLogs(logs))  # type: ignore[arg-type]
    function = LocalFunction(
        "tiny",
        spec,
        {},
        arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:tiny",
        max_environments=2,
        logs=FunctionLogs(logs),  # type: ignore[arg-type]
    )
    # "brief": the same code, whose executions time out after 2 s
    brief = LocalFunction(
        "brief",
        spec,
        {},
        arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:brief",
        max_environments=1,
        logs=FunctionLogs(logs),  # type: ignore[arg-type]
    )
    durable.add_function(DurableFunction(function, version="1", execution_timeout=20, retention_days=14))
    durable.add_function(DurableFunction(brief, version="3", execution_timeout=2, retention_days=1))
    durable.start()
    for each in (function, brief):
        each.environment.update(
            {
                "AWS_ENDPOINT_URL_LAMBDA": durable.endpoint_url,
                "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
            }
        )
    try:
        yield durable
    finally:
        durable.close()
        function.close()
        brief.close()


@pytest.fixture(scope="module")
def client(service: LocalDurableService) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=service.endpoint_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 0}),
    )


VERSION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:tiny:1"


def _start(client: Any, name: str, payload: dict[str, Any]) -> str:
    response = client.invoke(
        FunctionName=VERSION_ARN,
        InvocationType="Event",
        DurableExecutionName=name,
        Payload=json.dumps(payload),
    )
    assert response["StatusCode"] == 202
    return str(response["DurableExecutionArn"])


def _wait_for(client: Any, arn: str, statuses: set[str], timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        execution = client.get_durable_execution(DurableExecutionArn=arn)
        if execution["Status"] in statuses or time.monotonic() > deadline:
            return dict(execution)
        time.sleep(0.2)


def test_an_event_invoke_starts_an_execution_that_runs_to_its_result(client: Any) -> None:
    # WHEN an execution of two steps and a 1 s wait is started through Invoke
    started = time.monotonic()
    arn = _start(client, "plain", {"steps": 2, "wait": 1})

    # THEN it succeeds with the handler's result, after the wait
    execution = _wait_for(client, arn, {"SUCCEEDED", "FAILED"})
    assert execution["Status"] == "SUCCEEDED", execution
    assert json.loads(execution["Result"])["total"] == 2
    assert time.monotonic() - started >= 1
    assert execution["DurableExecutionName"] == "plain"
    assert execution["FunctionArn"] == VERSION_ARN


def test_an_execution_longer_than_the_timeout_runs_through_several_invocations(client: Any) -> None:
    # GIVEN a function timeout of 3 s WHEN the steps take 4 x 1 s with a 1 s wait between halves
    arn = _start(client, "long", {"steps": 2, "sleep": 1.2, "wait": 1})
    execution = _wait_for(client, arn, {"SUCCEEDED", "FAILED"})

    # THEN it succeeds; the history shows more than one invocation
    assert execution["Status"] == "SUCCEEDED", execution
    history = client.get_durable_execution_history(DurableExecutionArn=arn)
    kinds = [event["EventType"] for event in history["Events"]]
    assert kinds.count("InvocationCompleted") >= 2, kinds


def test_the_same_name_and_payload_answers_the_same_execution(client: Any) -> None:
    # WHEN the same execution name is invoked twice with the same payload
    first = _start(client, "twice", {"steps": 1})
    second = _start(client, "twice", {"steps": 1})

    # THEN one execution exists
    assert first == second
    listed = client.list_durable_executions_by_function(
        FunctionName=VERSION_ARN, DurableExecutionName="twice"
    )
    assert [e["DurableExecutionArn"] for e in listed["DurableExecutions"]] == [first]


def test_fails_if_the_same_name_is_started_with_another_payload(client: Any) -> None:
    _start(client, "other", {"steps": 1})
    with pytest.raises(client.exceptions.DurableExecutionAlreadyStartedException, match="another payload"):
        _start(client, "other", {"steps": 2})


def test_fails_if_the_function_is_invoked_without_its_version(client: Any) -> None:
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="published version"):
        client.invoke(FunctionName="tiny", InvocationType="Event", DurableExecutionName="bare", Payload=b"{}")


def test_fails_if_the_function_does_not_exist(client: Any) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="nope:1", InvocationType="Event", Payload=b"{}")


def test_stop_ends_a_running_execution_stopped(client: Any) -> None:
    # GIVEN an execution waiting 30 s
    arn = _start(client, "stopped", {"steps": 1, "wait": 30})
    _wait_for(client, arn, {"RUNNING"})
    time.sleep(1)

    # WHEN it is stopped THEN it is STOPPED (and stays so)
    client.stop_durable_execution(DurableExecutionArn=arn)
    assert client.get_durable_execution(DurableExecutionArn=arn)["Status"] == "STOPPED"


def test_an_invocation_past_the_function_timeout_is_a_failed_invocation(client: Any) -> None:
    # GIVEN a handler that hangs past the 3 s timeout on every invocation
    arn = _start(client, "hangs", {"steps": 1, "hang": True})

    # WHEN its first invocation has timed out (the environment killed, the service told)
    deadline = time.monotonic() + 20
    while "Sandbox.Timedout" not in "".join(LINES.lines) and time.monotonic() < deadline:
        time.sleep(0.2)

    # THEN the function logs show the timeout and the service's failed invocation, and the execution is still
    # RUNNING: the timed-out invocation is no result, the service invokes again after its backoff
    text = "".join(LINES.lines)
    assert "Task timed out after 3.00 seconds" in text
    assert "durable | WARNING" in text
    assert "Sandbox.Timedout" in text
    assert client.get_durable_execution(DurableExecutionArn=arn)["Status"] == "RUNNING"
    client.stop_durable_execution(DurableExecutionArn=arn)


def test_list_by_function_filters_statuses_and_start_time(client: Any) -> None:
    # GIVEN one succeeded and one stopped execution
    done = _start(client, "listed-done", {"steps": 1})
    _wait_for(client, done, {"SUCCEEDED"})
    stopped = _start(client, "listed-stopped", {"steps": 1, "wait": 30})
    _wait_for(client, stopped, {"RUNNING"})
    client.stop_durable_execution(DurableExecutionArn=stopped)

    # WHEN listed by several statuses, started within the last minute
    listed = client.list_durable_executions_by_function(
        FunctionName=VERSION_ARN,
        Statuses=["STOPPED", "FAILED", "TIMED_OUT"],
        StartedAfter=time.time() - 60,
    )

    # THEN the stopped one is there, the succeeded one is not
    arns = {e["DurableExecutionArn"] for e in listed["DurableExecutions"]}
    assert stopped in arns
    assert done not in arns
    running = client.list_durable_executions_by_function(FunctionName="tiny", Statuses=["RUNNING"])
    assert stopped not in {e["DurableExecutionArn"] for e in running["DurableExecutions"]}


def test_child_processes_checkpoint_through_the_endpoint(service: LocalDurableService) -> None:
    # The handler's steps were checkpointed by the child over HTTP: a finished execution's state lists them
    client = boto3.client(
        "lambda",
        endpoint_url=service.endpoint_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    arn = _start(client, "state", {"steps": 3})
    _wait_for(client, arn, {"SUCCEEDED"})
    history = client.get_durable_execution_history(DurableExecutionArn=arn)
    names = {event.get("Name") for event in history["Events"]}
    assert {"step-0", "step-1", "step-2"} <= names


def test_an_execution_past_its_execution_timeout_ends_timed_out(client: Any) -> None:
    # GIVEN brief's 2 s execution timeout WHEN an execution waits 30 s
    arn = client.invoke(
        FunctionName=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:brief:3",
        InvocationType="Event",
        DurableExecutionName="too-long",
        Payload=json.dumps({"steps": 1, "wait": 30}),
    )["DurableExecutionArn"]

    # THEN it ends TIMED_OUT, and is listed so (by the function's unqualified ARN)
    assert _wait_for(client, arn, {"TIMED_OUT", "SUCCEEDED", "FAILED"}, timeout=15)["Status"] == "TIMED_OUT"
    listed = client.list_durable_executions_by_function(
        FunctionName=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:brief", Statuses=["TIMED_OUT"]
    )
    assert [e["DurableExecutionArn"] for e in listed["DurableExecutions"]] == [arn]
    assert listed["DurableExecutions"][0]["FunctionArn"].endswith("function:brief:3")


def test_list_by_function_pages_with_markers(client: Any) -> None:
    names = [f"paged-{i}" for i in range(3)]
    arns = {_start(client, name, {"steps": 1}) for name in names}
    seen: list[str] = []
    kwargs: dict[str, Any] = {"FunctionName": "tiny", "MaxItems": 2}
    while True:
        page = client.list_durable_executions_by_function(**kwargs)
        assert len(page["DurableExecutions"]) <= 2
        seen.extend(e["DurableExecutionArn"] for e in page["DurableExecutions"])
        if "NextMarker" not in page:
            break
        kwargs["Marker"] = page["NextMarker"]
    assert arns <= set(seen)
    assert len(seen) == len(set(seen))
