"""lambda_handlers.durable_config: the durable worker's and the starter's variables, each bad one refused by name."""

from __future__ import annotations

import pytest

from lambda_handlers.config import ConfigError, load
from lambda_handlers.durable_config import DurableWorkerConfig, StarterConfig

COMMON = {
    "ASYNC_JOB_TABLE_NAME": "Jobs-Table",
    "POWERTOOLS_METRICS_NAMESPACE": "AsyncJobs",
    "ASYNC_JOB_TTL_SECONDS": "604800",
}
WORKER = {
    **COMMON,
    "ASYNC_JOB_HANDLER": "exports.run",
    "ASYNC_JOB_MAX_RECEIVE_COUNT": "4",
    "ASYNC_JOB_TYPE": "exports",
    "ASYNC_JOB_EXECUTION_TIMEOUT_SECONDS": "21600",
}
VERSION = "arn:aws:lambda:eu-west-1:123456789012:function:Exports-Worker:7"
STARTER = {
    **COMMON,
    "ASYNC_JOB_DURABLE_FUNCTION": VERSION,
    "ASYNC_JOB_SWEEP_WINDOW_SECONDS": str(21_600 + 86_400),
    "ASYNC_JOB_TYPE": "exports",
}


def test_reads_the_durable_worker_s_settings_as_a_worker_s_and_its_run_limit() -> None:
    settings = load(DurableWorkerConfig, WORKER)

    assert (settings.handler, settings.max_receive_count, settings.job_type) == ("exports.run", 4, "exports")
    assert (settings.retry_base_seconds, settings.retry_max_seconds) == (10, 900)
    assert settings.execution_timeout_seconds == 21_600


@pytest.mark.parametrize("value", [None, "0", "many", str(367 * 86_400)])
def test_fails_if_the_execution_timeout_is_missing_or_out_of_range(value: str | None) -> None:
    environ = {k: v for k, v in WORKER.items() if k != "ASYNC_JOB_EXECUTION_TIMEOUT_SECONDS"}
    if value is not None:
        environ["ASYNC_JOB_EXECUTION_TIMEOUT_SECONDS"] = value

    with pytest.raises(ConfigError, match="ASYNC_JOB_EXECUTION_TIMEOUT_SECONDS"):
        load(DurableWorkerConfig, environ)


def test_fails_if_the_durable_worker_lacks_a_worker_s_setting() -> None:
    with pytest.raises(ConfigError, match="ASYNC_JOB_HANDLER is not set"):
        load(DurableWorkerConfig, {k: v for k, v in WORKER.items() if k != "ASYNC_JOB_HANDLER"})


def test_reads_the_starter_s_settings() -> None:
    settings = load(
        StarterConfig, {**STARTER, "ASYNC_JOB_MAX_RUNNING": "5", "ASYNC_JOB_MAX_RECEIVE_COUNT": "3"}
    )

    assert settings.durable_function == VERSION
    assert settings.function_arn == "arn:aws:lambda:eu-west-1:123456789012:function:Exports-Worker"
    assert (settings.max_running, settings.max_receive_count) == (5, 3)
    assert settings.sweep_window_seconds == 108_000
    assert settings.job_type == "exports"


def test_a_starter_without_a_limit_runs_every_job_at_once() -> None:
    settings = load(StarterConfig, STARTER)

    assert (settings.max_running, settings.max_receive_count) == (None, None)


@pytest.mark.parametrize(
    "value",
    [
        "arn:aws:lambda:eu-west-1:123456789012:function:Exports-Worker",
        "arn:aws:lambda:eu-west-1:123456789012:function:Exports-Worker:$LATEST",
        "arn:aws:lambda:eu-west-1:123456789012:function:Exports-Worker:live",
        "Exports-Worker:7",
    ],
    ids=["unqualified", "latest", "alias", "name"],
)
def test_fails_if_the_durable_function_is_not_a_version_arn(value: str) -> None:
    with pytest.raises(ConfigError, match=r"ASYNC_JOB_DURABLE_FUNCTION must be a function version's ARN"):
        load(StarterConfig, {**STARTER, "ASYNC_JOB_DURABLE_FUNCTION": value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ASYNC_JOB_MAX_RUNNING", "0"),
        ("ASYNC_JOB_SWEEP_WINDOW_SECONDS", "10"),
        ("ASYNC_JOB_SWEEP_WINDOW_SECONDS", None),
        ("ASYNC_JOB_TYPE", "Exports!"),
    ],
)
def test_fails_if_a_starter_setting_is_bad(name: str, value: str | None) -> None:
    environ = {k: v for k, v in STARTER.items() if k != name}
    if value is not None:
        environ[name] = value

    with pytest.raises(ConfigError, match=name):
        load(StarterConfig, environ)
