"""The saved Logs Insights queries name only fields the logs really write, and the alarms' metrics are emitted.

The real entry points run on moto (submit, status, worker, dead-letter consumer) while the Powertools logger's
JSON lines are captured; every field a query uses (``fields``, ``filter``, ``stats``, ``sort``) must be among
the keys printed. The access-log queries are checked against the stage's access log format
(``gateway.ACCESS_LOG_FIELDS``). The EMF documents printed give the metrics' names and dimensions the alarms read.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

from async_job_construct.gateway import ACCESS_LOG_FIELDS
from async_job_construct.monitoring import ACCESS_LOG_QUERIES, FUNCTION_LOG_QUERIES, JOB_ID_PLACEHOLDER
from lambda_handlers.contract import JOB_TYPE_DIMENSION
from tests.unit.handlers.conftest import MAX_RECEIVE_COUNT, Aws
from tests.unit.handlers.events import (
    FakeLambdaContext,
    body,
    emitted_series,
    get_event,
    record_from_message,
    rest_event,
    sqs_event,
)
from tests.unit.handlers.test_worker import delivery, given_queued_job

# Every entry point runs in this one process, so the worker's default jobType dimension meets the submit
# function's own; in Lambda each function has its own process and Powertools' singletons.
pytestmark = pytest.mark.filterwarnings("ignore:Dimension 'jobType' has already been added")

_KEYWORDS = frozenset({"and", "or", "not", "like", "in", "by", "asc", "desc", "as", "is", "null"})
_COMMANDS = frozenset({"fields", "filter", "stats", "sort", "display", "dedup"})
_LITERALS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|/(?:[^/\\]|\\.)+/")
_IDENTIFIER = re.compile(r"[@A-Za-z_][A-Za-z0-9_.@]*(?=\s*(\()?)")


def fields_of(query: str) -> set[str]:
    """The log fields a Logs Insights query reads: no ``@`` system field, function, keyword or alias.

    >>> sorted(fields_of("fields a, f(b) as c | filter d like /x|y/ | stats count(*) as n by e | sort n desc"))
    ['a', 'b', 'd', 'e']
    """
    text = _LITERALS.sub(" '' ", query)
    found: set[str] = set()
    aliases: set[str] = set()
    for command in text.split("|"):
        words = command.split(None, 1)
        if not words or words[0] not in _COMMANDS:
            assert not words or words[0] == "limit", f"unknown command {words[0]!r} in {query!r}"
            continue
        rest = words[1] if len(words) > 1 else ""
        aliases.update(re.findall(r"\bas\s+([A-Za-z_][A-Za-z0-9_]*)", rest))
        rest = re.sub(r"\bas\s+[A-Za-z_][A-Za-z0-9_]*", " ", rest)
        for match in _IDENTIFIER.finditer(rest):
            name, call = match.group(0), match.group(1)
            if call or name.startswith("@") or name.lower() in _KEYWORDS or name.replace(".", "").isdigit():
                continue
            found.add(name)
    return found - aliases


def test_fields_of_reads_the_fields_of_each_clause() -> None:
    query = (
        "fields @timestamp, a, coalesce(b, 'x|y') as c\n| filter d = \"q\" and ispresent(e) and f like /^5|x/\n"
        "| stats count(*) as n, latest(g) as h by c, i\n| sort n desc\n| limit 20"
    )
    assert fields_of(query) == {"a", "b", "d", "e", "f", "g", "i"}


# ------------------------------------------------------------------------------------- what the logs write


@dataclass
class Written:
    """The JSON lines the functions logged, and the EMF documents they printed."""

    lines: list[dict[str, Any]]
    stdout: str
    job_id: str

    @property
    def keys(self) -> set[str]:
        return {key for line in self.lines for key in line}


@pytest.fixture
def log_lines(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[dict[str, Any]]]:
    """Read the Powertools logger's JSON lines written so far (its handler's stream, put back afterwards)."""
    from lambda_handlers import observability  # after the fixtures set Powertools' environment

    buffer = io.StringIO()
    monkeypatch.setattr(observability.logger.registered_handler, "stream", buffer)

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]

    return read


@pytest.fixture
def written(
    submit: ModuleType,
    status: ModuleType,
    dead_letter: ModuleType,
    load_worker: Callable[..., ModuleType],
    aws: Aws,
    lambda_context: FakeLambdaContext,
    log_lines: Callable[[], list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> Written:
    """A job's whole journey (submit, poll, three crashing attempts: FAILED), a handler that fails its job and
    a job dead-lettered after its worker died; everything the functions logged meanwhile."""
    worker = load_worker("crash")
    accepted = submit.handler(rest_event(body='{"report": "Q3"}'), lambda_context)
    job_id = body(accepted)["id"]
    status.handler(get_event(job_id), lambda_context)
    (message,) = aws.receive(visibility_timeout=30)
    record = record_from_message(message, aws.queue_arn)
    for attempt in range(1, MAX_RECEIVE_COUNT + 1):
        aws.dynamodb.update_item(  # the backoff has elapsed: the retry may run
            TableName=aws.table_name,
            Key={"pk": {"S": job_id}},
            UpdateExpression="REMOVE retryAt",
        )
        worker.handler(sqs_event(delivery(record, attempt)), FakeLambdaContext())
    status.handler(get_event(job_id), lambda_context)
    assert body(status.handler(get_event(job_id), lambda_context))["status"] == "FAILED"

    gives_up = load_worker("give_up")
    _, give_up_record = given_queued_job(aws)
    gives_up.handler(sqs_event(give_up_record), FakeLambdaContext())
    succeeds = load_worker("succeed")
    _, succeed_record = given_queued_job(aws)
    succeeds.handler(sqs_event(succeed_record), FakeLambdaContext())
    _, dead_record = given_queued_job(aws)
    dead_letter.handler(sqs_event(dead_record), lambda_context)
    return Written(lines=log_lines(), stdout=capsys.readouterr().out, job_id=job_id)


@pytest.mark.parametrize("suffix", sorted(FUNCTION_LOG_QUERIES))
def test_each_function_log_query_names_fields_the_functions_write(written: Written, suffix: str) -> None:
    used = fields_of(FUNCTION_LOG_QUERIES[suffix])
    assert used, "a query that reads no field checks nothing"
    assert used <= written.keys, f"{suffix} reads {sorted(used - written.keys)}, which no function writes"


def test_the_journey_query_finds_every_step_of_one_job_by_its_id(written: Written) -> None:
    assert f"job_id = '{JOB_ID_PLACEHOLDER}'" in FUNCTION_LOG_QUERIES["jobs/job-journey"]
    journey = [line["message"] for line in written.lines if line.get("job_id") == written.job_id]
    for step in ("job accepted", "job claimed", "attempt failed; the job will be retried", "job failed"):
        assert step in journey, f"{step!r} is not among the job's lines: {journey}"


def test_the_failed_by_error_type_query_matches_each_failure_line_and_its_error_type(
    written: Written,
) -> None:
    assert "filter message like /^job failed/" in FUNCTION_LOG_QUERIES["jobs/failed-by-error-type"]
    failed = [line for line in written.lines if str(line.get("message", "")).startswith("job failed")]
    by_type = {line.get("error_type", "DeadLettered") for line in failed}
    assert by_type == {"RuntimeError", "JobFailedError", "DeadLettered"}
    assert all("job_id" in line and "function_name" in line for line in failed)


@pytest.mark.parametrize("suffix", sorted(ACCESS_LOG_QUERIES))
def test_each_access_log_query_names_fields_of_the_access_log_format(suffix: str) -> None:
    used = fields_of(ACCESS_LOG_QUERIES[suffix])
    assert used, "a query that reads no field checks nothing"
    assert used <= set(ACCESS_LOG_FIELDS), f"{suffix} reads {sorted(used - set(ACCESS_LOG_FIELDS))}"


# ------------------------------------------------------------------------------------- what the alarms read


def test_the_alarms_metrics_are_emitted_with_the_service_and_job_type_dimensions(written: Written) -> None:
    series = emitted_series(written.stdout)
    dimensions = {name: set(dims) for name, dims, _ in series}
    for name in (
        "JobsSubmitted",
        "JobsSucceeded",
        "JobsFailed",
        "JobsDeadLettered",
        "JobsRetried",
        "JobDuration",
    ):
        assert dimensions.get(name) == {"service", JOB_TYPE_DIMENSION}, (name, dimensions.get(name))
    services = {dims["service"] for _, dims, _ in series}
    assert services == {"async-job-tests"}  # POWERTOOLS_SERVICE_NAME: the construct's api.service_name


def test_submit_errors_are_emitted_with_the_service_and_job_type_dimensions(
    aws: Aws,
    entry_points: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a submit function whose queue does not exist: SQS refuses every message
    monkeypatch.setenv("ASYNC_JOB_QUEUE_URL", aws.queue_url.replace("Jobs-Queue", f"gone-{uuid.uuid4().hex}"))
    submit = entry_points("lambda_handlers.submit")

    response = submit.handler(rest_event(body="{}"), lambda_context)

    assert response["statusCode"] == 503
    series = emitted_series(capsys.readouterr().out)
    assert [(set(dims), value) for name, dims, value in series if name == "SubmitErrors"] == [
        ({"service", JOB_TYPE_DIMENSION}, 1.0)
    ]
