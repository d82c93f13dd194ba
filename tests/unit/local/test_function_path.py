"""A local function imports what it would deployed: its requirements, its asset, its layers, the Lambda runtime.

The virtualenv running these tests has ``requests`` installed (and moto, aws-cdk-lib, pytest ...); a handler
must not see any of it unless its asset's requirements ask for it, as a deployed one would not.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from async_job_local import dependencies
from async_job_local.dependencies import (
    DependencyInstallError,
    local_requirements,
    runtime_standin,
    ships_durable_sdk,
)
from async_job_local.functions import FunctionLogs, InvokeResult, LocalFunction, function_sys_path
from async_job_local.handler_check import HandlerCheck, HandlerError, check_handlers
from async_job_local.template import FunctionSpec
from lambda_handlers.contract import BUNDLE_MANIFEST, LAMBDA_PROVIDED_DISTRIBUTIONS

FETCH = "import requests\n\ndef run(event, context):\n    return {'requests': requests.__version__}\n"
Invoke = Callable[[Path, str], InvokeResult]
RUNTIME = (
    "import boto3, botocore, aws_lambda_powertools, aws_xray_sdk\n\n"
    "def run(event, context):\n    return {'boto3': boto3.__version__}\n"
)


@pytest.fixture(autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """One cache for the module (the local install of requests is made once), never the user's; the stand-in
    found by tests run before these (in the user's cache) is forgotten, and this module's after it."""
    root = tmp_path_factory.getbasetemp() / "function-path-cache"
    monkeypatch.setenv("ASYNC_JOB_CACHE_DIR", str(root))
    runtime_standin.cache_clear()
    yield root
    runtime_standin.cache_clear()


def _asset(
    root: Path,
    module: str,
    source: str,
    requirements: str | None,
    *,
    bundled: bool,
    installed: dict[str, str] | None = None,
) -> Path:
    """A code asset as the construct stages it: the handler module, and requirements.txt with the bundler's
    manifest when ``bundled`` (a plain ``lambda_.Code.from_asset`` has no manifest)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(source)
    if requirements is not None:
        (root / "requirements.txt").write_text(requirements)
    if bundled:
        manifest = {
            "format": 1,
            "platform": "manylinux2014_x86_64",
            "excluded": list(LAMBDA_PROVIDED_DISTRIBUTIONS),
            "installed": installed or {},
        }
        (root / BUNDLE_MANIFEST).write_text(json.dumps(manifest))
    return root


def _spec(code_dir: Path, handler: str) -> FunctionSpec:
    return FunctionSpec(
        logical_id="Fn",
        handler=handler,
        runtime="python3.14",
        code_dir=code_dir,
        layer_dirs=(),
        timeout=30,
        memory_size=128,
        environment={},
        log_format=None,
        role=None,
    )


@pytest.fixture
def invoke() -> Iterator[Invoke]:
    """Invoke a handler once in a new local function (closed after the test)."""
    functions: list[LocalFunction] = []

    def run(code_dir: Path, handler: str) -> InvokeResult:
        function = LocalFunction(
            "Fn", _spec(code_dir, handler), {}, arn="arn:fn", max_environments=1, logs=FunctionLogs(None)
        )
        functions.append(function)
        return function.invoke({})

    yield run
    for function in functions:
        function.close()


def test_a_handler_importing_a_package_it_does_not_require_fails_as_deployed(
    invoke: Invoke, tmp_path: Path
) -> None:
    # GIVEN requests installed here, and a handler that imports it without listing it in requirements.txt
    import requests  # noqa: F401  (the point: it is importable in this process)

    code = _asset(tmp_path / "asset", "fetch", FETCH, None, bundled=False)

    # WHEN it is invoked locally THEN its cold start fails as Lambda's does
    result = invoke(code, "fetch.run")
    assert result.error is not None
    assert result.error["errorType"] == "Runtime.ImportModuleError"
    assert result.error["errorMessage"] == "Unable to import module 'fetch': No module named 'requests'"


def test_a_handler_whose_bundled_requirements_list_the_package_imports_it(
    invoke: Invoke, tmp_path: Path
) -> None:
    # GIVEN an asset bundled from a requirements.txt of requests
    code = _asset(tmp_path / "asset", "fetch", FETCH, "requests\n", bundled=True)

    # WHEN it is invoked locally THEN requests imports, from the local install of the requirements
    result = invoke(code, "fetch.run")
    assert result.error is None, result.error
    assert result.payload["requests"]
    path = function_sys_path(_spec(code, "fetch.run"))
    assert path[0] == str(local_requirements(code))
    assert path[1] == str(code)


def test_the_local_install_leaves_out_what_the_runtime_provides(tmp_path: Path) -> None:
    code = _asset(tmp_path / "asset", "fetch", FETCH, "requests\n", bundled=True)
    install = local_requirements(code)
    assert install is not None
    names = {path.name for path in install.iterdir()}
    assert {"requests", "charset_normalizer", "idna", "certifi"} <= names
    assert "urllib3" not in names  # the runtime stand-in's, as the deployed asset uses the runtime's
    assert "bin" not in names


def test_the_local_install_is_cached_by_the_requirements_and_the_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN one install of an asset's requirements
    first = local_requirements(_asset(tmp_path / "a", "fetch", FETCH, "requests\n", bundled=True))

    # WHEN another asset with the same requirements.txt needs them, pip unusable
    def no_pip(arguments: Sequence[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
        raise AssertionError(f"pip ran again: {arguments}")

    monkeypatch.setattr(dependencies, "_run_pip", no_pip)
    second = local_requirements(_asset(tmp_path / "b", "fetch", FETCH, "requests\n", bundled=True))

    # THEN the cached install serves it
    assert second == first


def test_the_local_install_takes_the_versions_the_bundle_holds(tmp_path: Path) -> None:
    # GIVEN an unpinned requirement that the bundle resolved to an older release than PyPI's newest
    code = _asset(
        tmp_path / "asset", "names", "import idna\n", "idna\n", bundled=True, installed={"idna": "3.6"}
    )

    # WHEN it is installed for the local interpreter THEN it is the bundle's release, not a newer one
    install = local_requirements(code)
    assert install is not None
    assert [path.name for path in install.glob("idna-*.dist-info")] == ["idna-3.6.dist-info"]


def test_an_asset_not_bundled_by_async_job_gets_no_install(invoke: Invoke, tmp_path: Path) -> None:
    # GIVEN lambda_.Code.from_asset of a folder with requirements.txt: deployed, nothing is installed from it
    code = _asset(tmp_path / "asset", "fetch", FETCH, "requests\n", bundled=False)

    # THEN locally neither
    assert local_requirements(code) is None
    result = invoke(code, "fetch.run")
    assert result.error is not None
    assert result.error["errorType"] == "Runtime.ImportModuleError"


def test_the_runtime_stand_in_gives_boto3_and_powertools(invoke: Invoke, tmp_path: Path) -> None:
    code = _asset(tmp_path / "asset", "uses_runtime", RUNTIME, None, bundled=False)
    result = invoke(code, "uses_runtime.run")
    assert result.error is None, result.error
    assert result.payload["boto3"]


def test_the_runtime_stand_in_holds_only_what_lambda_and_the_powertools_layer_provide() -> None:
    names = {path.name for path in runtime_standin().iterdir()}
    assert {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3"} <= names
    assert {"aws_lambda_powertools", "aws_xray_sdk", "wrapt", "typing_extensions.py"} <= names
    for installed_here in ("requests", "moto", "aws_cdk", "pytest", "async_job_local", "lambda_handlers"):
        assert installed_here not in names
    # links, not copies (Python may add __pycache__ for the single-file modules six.py, typing_extensions.py)
    assert all(path.is_symlink() for path in runtime_standin().iterdir() if path.name != "__pycache__")


def test_the_stand_in_of_python_3_13_and_later_holds_the_durable_sdk_they_ship() -> None:
    assert "aws_durable_execution_sdk_python" not in {path.name for path in runtime_standin().iterdir()}
    assert "aws_durable_execution_sdk_python" in {
        path.name for path in runtime_standin(durable=True).iterdir()
    }
    assert [ships_durable_sdk(r) for r in ("python3.11", "python3.12", "python3.13", "python3.14")] == [
        False,
        False,
        True,
        True,
    ]


def test_the_path_has_no_site_packages_of_this_interpreter(tmp_path: Path) -> None:
    code = _asset(tmp_path / "asset", "fetch", FETCH, None, bundled=False)
    path = function_sys_path(_spec(code, "fetch.run"))
    site_packages = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    assert not site_packages & set(path)
    assert str(runtime_standin(durable=True)) in path  # a python3.14 function's: the durable SDK with it
    assert not any(Path(entry).resolve() == Path.cwd().resolve() for entry in path)
    assert sys.prefix not in {entry for entry in path if "site-packages" in entry}


def test_fails_naming_the_requirements_if_pip_cannot_install_them_locally(tmp_path: Path) -> None:
    code = _asset(tmp_path / "asset", "fetch", FETCH, "this is not a requirement!\n", bundled=True)
    with pytest.raises(
        DependencyInstallError, match=r"cannot install .*requirements\.txt for the local Python"
    ) as refused:
        local_requirements(code)
    assert "Pin a version that installs on this Python" in str(refused.value)  # the error says the fix


def test_the_start_up_check_refuses_a_job_handler_importing_a_package_it_does_not_require(
    tmp_path: Path,
) -> None:
    # GIVEN a job type whose handler imports requests (installed here), not in any requirements.txt
    code = _asset(tmp_path / "asset", "fetch", FETCH, None, bundled=False)
    spec = _spec(code, "lambda_handlers.worker.handler")
    worker = LocalFunction(
        "Worker",
        spec,
        {"ASYNC_JOB_HANDLER": "fetch.run"},
        arn="arn:w",
        max_environments=1,
        logs=FunctionLogs(None),
    )

    # WHEN the local runtime checks it at start-up THEN it refuses, naming the missing package
    with pytest.raises(
        HandlerError, match=r"cannot import module 'fetch': ModuleNotFoundError: No module named 'requests'"
    ):
        check_handlers([HandlerCheck("Stack/Jobs, job type 'jobs'", worker)])
