"""The start-up check: every job type's handler imported in its worker's environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from async_job_local.functions import FunctionLogs, LocalFunction
from async_job_local.handler_check import HandlerCheck, HandlerError, check_handlers
from async_job_local.template import FunctionSpec


def worker(code_dir: Path, handler: str | None, **environment: str) -> LocalFunction:
    spec = FunctionSpec(
        logical_id="Worker",
        handler="lambda_handlers.worker.handler",
        runtime="python3.13",
        code_dir=code_dir,
        layer_dirs=(),
        timeout=3,
        memory_size=128,
        environment={},
        log_format=None,
        role="worker",
    )
    variables = dict(environment)
    if handler is not None:
        variables["ASYNC_JOB_HANDLER"] = handler
    return LocalFunction(
        "Worker", spec, variables, arn="arn:worker", max_environments=1, logs=FunctionLogs(None)
    )


@pytest.fixture
def code(tmp_path: Path) -> Path:
    (tmp_path / "good.py").write_text(
        "import os\nGREETING = os.environ.get('GREETING')\ndef run(payload, job):\n    return 1\n"
    )
    (tmp_path / "broken.py").write_text("import module_that_is_not_installed\n")
    (tmp_path / "typo.py").write_text("def rnu(payload, job):\n    return 1\n")
    (tmp_path / "needs_env.py").write_text(
        "import os\nif os.environ['GREETING'] != 'hi':\n    raise RuntimeError('no')\ndef run(p, j):\n    pass\n"
    )
    return tmp_path


def test_a_handler_that_loads_passes(code: Path) -> None:
    # GIVEN a handler in the worker's code, importable with the worker's environment
    check = HandlerCheck("Stack/Media, job type 'reports'", worker(code, "needs_env.run", GREETING="hi"))

    # WHEN it is checked THEN nothing is raised
    check_handlers([check])


def test_fails_naming_the_type_the_handler_and_the_import_error(code: Path) -> None:
    # GIVEN a handler whose module imports a missing package, and one that loads
    checks = [
        HandlerCheck("Stack/Media, job type 'thumbs'", worker(code, "broken.run")),
        HandlerCheck("Stack/Media, job type 'reports'", worker(code, "good.run")),
    ]

    # WHEN they are checked THEN the error names the broken one, its handler and why, and only it
    with pytest.raises(HandlerError) as raised:
        check_handlers(checks)
    message = str(raised.value)
    assert message.startswith("Stack/Media, job type 'thumbs': handler 'broken.run' cannot be loaded: ")
    assert "ModuleNotFoundError: No module named 'module_that_is_not_installed'" in message
    assert "reports" not in message


def test_fails_if_the_module_has_no_such_function(code: Path) -> None:
    check = HandlerCheck("Stack/Media, job type 'jobs'", worker(code, "typo.run"))
    with pytest.raises(
        HandlerError, match=r"handler 'typo\.run' cannot be loaded: module 'typo' has no function 'run'"
    ):
        check_handlers([check])


def test_fails_if_the_module_is_not_in_the_code_asset(code: Path) -> None:
    check = HandlerCheck("Stack/Media, job type 'jobs'", worker(code, "missing.run"))
    with pytest.raises(HandlerError, match="cannot import module 'missing': ModuleNotFoundError"):
        check_handlers([check])


def test_fails_if_the_import_raises_with_the_workers_environment(code: Path) -> None:
    # GIVEN a module that needs a variable the worker's environment sets otherwise
    check = HandlerCheck("Stack/Media, job type 'jobs'", worker(code, "needs_env.run", GREETING="bye"))

    # WHEN it is checked THEN the import's own error is named
    with pytest.raises(HandlerError, match="RuntimeError: no"):
        check_handlers([check])


def test_a_worker_without_a_team_handler_is_not_checked(code: Path) -> None:
    check_handlers([HandlerCheck("Stack/Other", worker(code, None))])
