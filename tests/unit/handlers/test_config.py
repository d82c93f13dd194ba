"""lambda_handlers.config: every variable read, every invalid value refused with its name and the fix."""

from __future__ import annotations

import re

import pytest

from lambda_handlers.config import (
    ConfigError,
    DeadLetterConfig,
    JobTypeConfig,
    StatusConfig,
    SubmitConfig,
    WorkerConfig,
    load,
)

COMMON = {
    "ASYNC_JOB_TABLE_NAME": "Jobs-Table",
    "POWERTOOLS_METRICS_NAMESPACE": "AsyncJobs",
    "ASYNC_JOB_TTL_SECONDS": "604800",
}
SUBMIT = {
    **COMMON,
    "ASYNC_JOB_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/Jobs-Queue",
    "ASYNC_JOB_MAX_PAYLOAD_BYTES": "262144",
    "ASYNC_JOB_TTL_SECONDS": "604800",
    "ASYNC_JOB_RETRY_AFTER_SECONDS": "5",
}
WORKER = {**COMMON, "ASYNC_JOB_HANDLER": "reports.jobs.generate", "ASYNC_JOB_MAX_RECEIVE_COUNT": "3"}


def test_reads_every_kind() -> None:
    assert load(SubmitConfig, SUBMIT) == SubmitConfig(
        table_name="Jobs-Table",
        metrics_namespace="AsyncJobs",
        job_types={"jobs": JobTypeConfig("jobs", SUBMIT["ASYNC_JOB_QUEUE_URL"], 262_144)},
        ttl_seconds=604_800,
        bucket_name=None,
        retry_after_seconds=5,
    )
    assert load(StatusConfig, {**COMMON, "ASYNC_JOB_RETRY_AFTER_SECONDS": "5"}).operators == frozenset()
    assert load(WorkerConfig, WORKER).handler == "reports.jobs.generate"
    assert load(WorkerConfig, WORKER).max_receive_count == 3
    assert (load(WorkerConfig, WORKER).retry_base_seconds, load(WorkerConfig, WORKER).retry_max_seconds) == (
        10,
        900,
    )
    assert load(DeadLetterConfig, COMMON).table_name == "Jobs-Table"
    assert load(WorkerConfig, {**WORKER, "ASYNC_JOB_BUCKET_NAME": "jobs-bucket"}).bucket_name == "jobs-bucket"


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in WORKER.items():
        monkeypatch.setenv(name, value)

    assert load(WorkerConfig).handler == "reports.jobs.generate"


def test_reads_operators() -> None:
    environ = {**COMMON, "ASYNC_JOB_RETRY_AFTER_SECONDS": "5", "ASYNC_JOB_OPERATORS": '["arn:a", " sub-1 "]'}

    assert load(StatusConfig, environ).operators == frozenset({"arn:a", "sub-1"})


@pytest.mark.parametrize("name", sorted(SUBMIT))
def test_fails_if_a_submit_variable_is_missing(name: str) -> None:
    environ = {k: v for k, v in SUBMIT.items() if k != name}

    with pytest.raises(ConfigError, match=f"{name} is not set.*AsyncJobApi sets it"):
        load(SubmitConfig, environ)


@pytest.mark.parametrize("name", sorted(WORKER))
def test_fails_if_a_worker_variable_is_blank(name: str) -> None:
    with pytest.raises(ConfigError, match=f"{name} is not set"):
        load(WorkerConfig, {**WORKER, name: "  "})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ASYNC_JOB_MAX_PAYLOAD_BYTES", "0"),
        ("ASYNC_JOB_MAX_PAYLOAD_BYTES", "5242881"),
        ("ASYNC_JOB_MAX_PAYLOAD_BYTES", "256KB"),
        ("ASYNC_JOB_TTL_SECONDS", "-1"),
        ("ASYNC_JOB_TTL_SECONDS", "1.5"),
        ("ASYNC_JOB_RETRY_AFTER_SECONDS", "0"),
        ("ASYNC_JOB_QUEUE_URL", "Jobs-Queue"),
        ("ASYNC_JOB_TABLE_NAME", "Jobs Table"),
    ],
)
def test_fails_if_a_submit_variable_is_invalid(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"{name} must be .*\(given '{re.escape(value)}'\)"):
        load(SubmitConfig, {**SUBMIT, name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ASYNC_JOB_HANDLER", "generate"),
        ("ASYNC_JOB_HANDLER", "reports/generate"),
        ("ASYNC_JOB_HANDLER", "reports.generate()"),
        ("ASYNC_JOB_HANDLER", "1reports.generate"),
        ("ASYNC_JOB_MAX_RECEIVE_COUNT", "0"),
        ("ASYNC_JOB_MAX_RECEIVE_COUNT", "1001"),
    ],
)
def test_fails_if_a_worker_variable_is_invalid(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"{name} must be .*\(given '{re.escape(value)}'\)"):
        load(WorkerConfig, {**WORKER, name: value})


@pytest.mark.parametrize("value", ["arn:a", '{"a": 1}', "[1]", '[""]', "[not json"])
def test_fails_if_operators_are_not_a_list_of_identities(value: str) -> None:
    environ = {**COMMON, "ASYNC_JOB_RETRY_AFTER_SECONDS": "5", "ASYNC_JOB_OPERATORS": value}

    with pytest.raises(ConfigError, match="ASYNC_JOB_OPERATORS must be a JSON list"):
        load(StatusConfig, environ)


def test_an_entry_point_fails_its_cold_start_without_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    # GIVEN a worker environment without a handler
    for name, value in WORKER.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ASYNC_JOB_HANDLER")
    sys.modules.pop("lambda_handlers.worker", None)

    # WHEN Lambda imports the entry point THEN the import itself fails, naming the variable
    try:
        with pytest.raises(ConfigError, match="ASYNC_JOB_HANDLER is not set"):
            importlib.import_module("lambda_handlers.worker")
    finally:
        sys.modules.pop("lambda_handlers.worker", None)


@pytest.mark.parametrize(
    ("value", "required"),
    [(None, False), ("", False), ("false", False), ("true", True), ("TRUE", True), ("False", False)],
)
def test_reads_whether_the_idempotency_key_is_required(value: str | None, required: bool) -> None:
    environ = dict(SUBMIT) if value is None else {**SUBMIT, "ASYNC_JOB_IDEMPOTENCY_KEY_REQUIRED": value}

    assert load(SubmitConfig, environ).idempotency_key_required is required


@pytest.mark.parametrize("value", ["yes", "1", "on", "tru"])
def test_fails_if_the_idempotency_setting_is_not_a_boolean(value: str) -> None:
    with pytest.raises(
        ConfigError,
        match=rf"ASYNC_JOB_IDEMPOTENCY_KEY_REQUIRED must be 'true' or 'false' \(given '{value}'\)",
    ):
        load(SubmitConfig, {**SUBMIT, "ASYNC_JOB_IDEMPOTENCY_KEY_REQUIRED": value})


def test_reads_the_retry_delays() -> None:
    environ = {**WORKER, "ASYNC_JOB_RETRY_BASE_SECONDS": "2", "ASYNC_JOB_RETRY_MAX_SECONDS": "43200"}

    worker = load(WorkerConfig, environ)

    assert (worker.retry_base_seconds, worker.retry_max_seconds) == (2, 43_200)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ASYNC_JOB_RETRY_BASE_SECONDS", "0"),
        ("ASYNC_JOB_RETRY_BASE_SECONDS", "1.5"),
        ("ASYNC_JOB_RETRY_MAX_SECONDS", "43201"),
        ("ASYNC_JOB_RETRY_MAX_SECONDS", "15m"),
    ],
)
def test_fails_if_a_retry_delay_is_invalid(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"{name} must be .*\(given '{re.escape(value)}'\)"):
        load(WorkerConfig, {**WORKER, name: value})


def test_fails_if_the_retry_cap_is_below_the_base() -> None:
    environ = {**WORKER, "ASYNC_JOB_RETRY_BASE_SECONDS": "60", "ASYNC_JOB_RETRY_MAX_SECONDS": "30"}

    with pytest.raises(
        ConfigError, match=r"ASYNC_JOB_RETRY_MAX_SECONDS must be at least .*\(given 30 and 60\)"
    ):
        load(WorkerConfig, environ)
