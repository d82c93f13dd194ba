"""lambda_handlers.config: the job types (``ASYNC_JOB_TYPES``), their legacy single-type form, the worker's type."""

from __future__ import annotations

import json

import pytest

from lambda_handlers.config import (
    ConfigError,
    DeadLetterConfig,
    JobTypeConfig,
    SubmitConfig,
    WorkerConfig,
    load,
)
from lambda_handlers.contract import DEFAULT_JOB_TYPE, Env

COMMON = {
    Env.TABLE_NAME: "Jobs-Table",
    "POWERTOOLS_METRICS_NAMESPACE": "AsyncJobs",
    Env.TTL_SECONDS: "604800",
}
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/Media-Reports"
TYPES = {
    "reports": {"queueUrl": QUEUE, "maxPayloadBytes": 262_144, "maxReceiveCount": 3},
    "thumbnails": {"queueUrl": QUEUE + "-2", "maxPayloadBytes": 1024, "maxReceiveCount": 5},
}
SUBMIT = {**COMMON, Env.RETRY_AFTER_SECONDS: "5", Env.JOB_TYPES: json.dumps(TYPES)}
LEGACY_SUBMIT = {
    **COMMON,
    Env.RETRY_AFTER_SECONDS: "5",
    Env.QUEUE_URL: QUEUE,
    Env.MAX_PAYLOAD_BYTES: "2048",
}
WORKER = {**COMMON, Env.HANDLER: "reports.generate", Env.MAX_RECEIVE_COUNT: "3"}


def test_submit_reads_every_job_type() -> None:
    # GIVEN the construct's JSON of two job types WHEN the submit function loads THEN it has both, as given
    config = load(SubmitConfig, SUBMIT)

    assert config.job_types == {
        "reports": JobTypeConfig("reports", QUEUE, 262_144, 3),
        "thumbnails": JobTypeConfig("thumbnails", QUEUE + "-2", 1024, 5),
    }
    assert config.job_type("thumbnails") == JobTypeConfig("thumbnails", QUEUE + "-2", 1024, 5)
    assert config.job_type("videos") is None


def test_the_job_types_win_over_the_legacy_variables() -> None:
    config = load(SubmitConfig, {**LEGACY_SUBMIT, **SUBMIT})

    assert sorted(config.job_types) == ["reports", "thumbnails"]


def test_submit_without_job_types_reads_the_legacy_single_type() -> None:
    # GIVEN a template made before job types (one queue, one payload limit)
    # WHEN the submit function loads THEN it serves one type, named "jobs"
    config = load(SubmitConfig, LEGACY_SUBMIT)

    assert config.job_types == {DEFAULT_JOB_TYPE: JobTypeConfig(DEFAULT_JOB_TYPE, QUEUE, 2048, None)}


def test_submit_without_job_types_needs_the_legacy_queue() -> None:
    environ = {k: v for k, v in LEGACY_SUBMIT.items() if k != Env.QUEUE_URL}

    with pytest.raises(ConfigError, match="ASYNC_JOB_QUEUE_URL is not set"):
        load(SubmitConfig, environ)


def test_dead_letter_reads_each_types_attempts() -> None:
    config = load(DeadLetterConfig, {**COMMON, Env.JOB_TYPES: json.dumps(TYPES)})

    assert config.max_receive_counts == {"reports": 3, "thumbnails": 5}


@pytest.mark.parametrize(
    ("extra", "counts"),
    [({}, {}), ({Env.MAX_RECEIVE_COUNT: "4"}, {DEFAULT_JOB_TYPE: 4})],
)
def test_dead_letter_without_job_types_reads_the_legacy_attempts(
    extra: dict[str, str], counts: dict[str, int]
) -> None:
    assert load(DeadLetterConfig, {**COMMON, **extra}).max_receive_counts == counts


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not json", "must be a JSON object"),
        ("[]", "must be a JSON object"),
        ("{}", "must name at least one job type"),
        (json.dumps({"Reports": TYPES["reports"]}), r"job type name 'Reports' .*\[a-z\]"),
        (json.dumps({"a" * 41: TYPES["reports"]}), "job type name 'a{41}'"),
        (json.dumps({"reports": "q"}), r"job type 'reports' must be a JSON object"),
        (json.dumps({"reports": {"queueUrl": QUEUE, "maxPayloadBytes": 1}}), "lacks 'maxReceiveCount'"),
        (json.dumps({"reports": {**TYPES["reports"], "timeout": 3}}), "has unknown key 'timeout'"),
        (json.dumps({"reports": {**TYPES["reports"], "queueUrl": "Queue"}}), "queueUrl must be an SQS"),
        (json.dumps({"reports": {**TYPES["reports"], "maxPayloadBytes": "2"}}), "maxPayloadBytes must be"),
        (json.dumps({"reports": {**TYPES["reports"], "maxPayloadBytes": 5_242_881}}), "maxPayloadBytes must"),
        (json.dumps({"reports": {**TYPES["reports"], "maxReceiveCount": True}}), "maxReceiveCount must be"),
        (json.dumps({"reports": {**TYPES["reports"], "maxReceiveCount": 0}}), "maxReceiveCount must be"),
    ],
)
@pytest.mark.parametrize("kind", [SubmitConfig, DeadLetterConfig])
def test_fails_if_the_job_types_are_invalid(
    kind: type[SubmitConfig] | type[DeadLetterConfig], value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=f"ASYNC_JOB_TYPES.*{message}"):
        load(kind, {**SUBMIT, Env.JOB_TYPES: value})


def test_the_worker_runs_the_default_type_unless_told() -> None:
    assert load(WorkerConfig, WORKER).job_type == DEFAULT_JOB_TYPE
    assert load(WorkerConfig, {**WORKER, Env.JOB_TYPE: "thumbnails"}).job_type == "thumbnails"


@pytest.mark.parametrize("value", ["Thumbnails", "1st", "a_b", "a" * 41])
def test_fails_if_the_workers_type_is_not_a_name(value: str) -> None:
    with pytest.raises(ConfigError, match=rf"ASYNC_JOB_TYPE must be a job type name.*\(given '{value}'\)"):
        load(WorkerConfig, {**WORKER, Env.JOB_TYPE: value})
