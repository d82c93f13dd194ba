"""A code folder's requirements.txt, bundled for the worker's platform without Docker (real pip, real PyPI).

One synthesis of a stack whose job types share one folder (``requests`` and a package that pulls in boto3),
for x86_64 and for arm64, plus the same folder as a plain ``lambda_.Code``; then a second synthesis with pip
made unusable, which must not need it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

from async_job_construct import AsyncJobApi, PropValueError, bundling
from async_job_construct.bundling import BundleTarget, DependencyBundlingError, install_dependencies
from async_job_local.dependencies import local_requirements
from async_job_local.functions import FunctionLogs, LocalFunction
from async_job_local.template import FunctionSpec
from lambda_handlers.contract import BUNDLE_MANIFEST
from tests.unit.construct.helpers import props

API = "Stack/Jobs"
HANDLER = "fetch.run"
#: requests (compiled charset_normalizer, and urllib3, which Lambda's runtime has) and a package whose only
#: dependency is boto3 (and so botocore, s3transfer, jmespath, dateutil, six, urllib3).
REQUIREMENTS = "requests\naws-assume-role-lib\n"
FETCH = """import charset_normalizer, requests

def run(event, context):
    return {"requests": requests.__version__, "charset_normalizer": charset_normalizer.__file__}
"""


def _code_folder(root: Path, requirements: str) -> Path:
    folder = root / "jobs"
    folder.mkdir()
    (folder / "fetch.py").write_text(FETCH)
    (folder / "requirements.txt").write_text(requirements)
    return folder


def _synth(folder: Path, outdir: Path) -> tuple[dict[str, Any], Path]:
    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "Stack")
    jobs = AsyncJobApi(stack, "Jobs")
    jobs.add_job_type("intel", handler=HANDLER, code=str(folder))  # a str, on the default x86_64
    jobs.add_job_type("graviton", handler=HANDLER, code=folder, architecture=lambda_.Architecture.ARM_64)
    jobs.add_job_type("plain", handler=HANDLER, code=lambda_.Code.from_asset(str(folder)))
    app.synth()
    return Template.from_stack(stack).to_json(), outdir


class Synthesized:
    def __init__(self, root: Path) -> None:
        self.folder = _code_folder(root, REQUIREMENTS)
        self.template, self.outdir = _synth(self.folder, root / "cdk.out")

    def asset(
        self, job_type: str, template: dict[str, Any] | None = None, outdir: Path | None = None
    ) -> Path:
        """The staged asset folder of the worker of ``job_type``."""
        code = props(template or self.template, API, "worker", job_type)["Code"]
        return (outdir or self.outdir) / f"asset.{code['S3Key'].removesuffix('.zip')}"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cache of this module's own: the first synthesis must run pip."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(bundling.CACHE_DIR_VARIABLE, str(root))
        yield root


@pytest.fixture(scope="module")
def synth(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return Synthesized(tmp_path_factory.mktemp("app"))


def _top_level(asset: Path) -> set[str]:
    # __pycache__: written by a local run of the asset (test_the_arm64_asset_runs_locally...), not staged
    return {path.name for path in asset.iterdir() if path.name != "__pycache__"}


def _compiled(asset: Path, package: str) -> list[str]:
    return sorted(path.name for path in (asset / package).glob("*.so"))


def test_an_x86_64_worker_gets_requests_and_its_dependencies_built_for_x86_64(synth: Synthesized) -> None:
    asset = synth.asset("intel")
    assert {"requests", "charset_normalizer", "idna", "certifi", "aws_assume_role_lib"} <= _top_level(asset)
    compiled = _compiled(asset, "charset_normalizer")
    assert compiled, "charset_normalizer ships compiled modules for CPython 3.14"
    assert all(name.endswith(".cpython-314-x86_64-linux-gnu.so") for name in compiled), compiled


def test_an_arm64_worker_gets_the_same_requirements_built_for_aarch64(synth: Synthesized) -> None:
    asset = synth.asset("graviton")
    assert {"requests", "charset_normalizer", "idna", "certifi"} <= _top_level(asset)
    compiled = _compiled(asset, "charset_normalizer")
    assert compiled
    assert all(name.endswith(".cpython-314-aarch64-linux-gnu.so") for name in compiled), compiled
    assert synth.asset("graviton") != synth.asset("intel")


def test_what_the_lambda_runtime_provides_is_not_bundled_again(synth: Synthesized) -> None:
    for job_type in ("intel", "graviton"):
        names = _top_level(synth.asset(job_type))
        provided = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3"}
        assert not names & provided, names & provided
        assert not any(name.startswith(("boto3-", "botocore-", "urllib3-")) for name in names)


def test_the_asset_keeps_the_folder_its_requirements_and_a_manifest_of_the_bundle(synth: Synthesized) -> None:
    asset = synth.asset("graviton")
    assert (asset / "fetch.py").is_file()
    assert (asset / "requirements.txt").read_text() == REQUIREMENTS
    assert "bin" not in _top_level(asset)  # console scripts of this machine's interpreter
    manifest = json.loads((asset / BUNDLE_MANIFEST).read_text())
    assert manifest["platform"] == "manylinux2014_aarch64"
    assert manifest["pythonVersion"] == "3.14"
    assert {"requests", "charset-normalizer", "aws-assume-role-lib"} <= set(manifest["installed"])
    assert {"boto3", "botocore", "urllib3"} <= set(manifest["removed"])
    assert "boto3" in manifest["excluded"]


def test_a_lambda_code_object_is_used_as_it_is(synth: Synthesized) -> None:
    asset = synth.asset("plain")
    assert _top_level(asset) == {"fetch.py", "requirements.txt"}


def test_pip_ran_once_per_target_and_left_its_log_in_the_cache(synth: Synthesized, cache: Path) -> None:
    logs = [log.read_text() for log in (cache / "lambda-deps").glob("*/pip-install.log")]
    platforms = sorted(log.split("--platform ", 1)[1].split()[0] for log in logs)
    assert platforms == ["manylinux2014_aarch64", "manylinux2014_x86_64"]


def test_the_arm64_asset_runs_locally_on_wheels_for_this_machine(synth: Synthesized) -> None:
    # GIVEN the arm64 asset (its charset_normalizer compiled for aarch64), run by the local runtime here
    asset = synth.asset("graviton")
    spec = FunctionSpec(
        logical_id="Fn",
        handler=HANDLER,
        runtime="python3.14",
        code_dir=asset,
        layer_dirs=(),
        timeout=60,
        memory_size=128,
        environment={},
        log_format=None,
        role=None,
    )
    function = LocalFunction("Fn", spec, {}, arn="arn:fn", max_environments=1, logs=FunctionLogs(None))
    try:
        # WHEN it is invoked
        result = function.invoke({})
    finally:
        function.close()

    # THEN requests imports, its compiled dependency from the local install of the asset's requirements.txt,
    # which comes before the asset on the path
    assert result.error is None, result.error
    install = local_requirements(asset)
    assert install is not None
    assert Path(result.payload["charset_normalizer"]).is_relative_to(install)


def test_a_second_synth_reuses_the_cache_without_running_pip(
    synth: Synthesized, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN pip made unusable
    def no_pip(arguments: Sequence[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
        raise AssertionError(f"pip ran again: {arguments}")

    monkeypatch.setattr(bundling, "_run_pip", no_pip)

    # WHEN the same app is synthesized again, into a new cloud assembly
    template, outdir = _synth(synth.folder, tmp_path / "cdk.out")

    # THEN the assets are the same (same hash, same files), staged from the cache
    for job_type in ("intel", "graviton"):
        again = synth.asset(job_type, template, outdir)
        assert again.name == synth.asset(job_type).name
        assert _top_level(again) == _top_level(synth.asset(job_type))


def test_fails_if_a_requirement_has_no_wheel_for_lambda(cache: Path, tmp_path: Path) -> None:
    # GIVEN docopt, which PyPI publishes as an sdist only (checked: pip --only-binary=:all: finds no version)
    folder = _code_folder(tmp_path, "docopt==0.6.2\n")
    stack = cdk.Stack(cdk.App(), "Stack")

    # WHEN a job type uses the folder THEN the error names the prop, the package and the fix
    with pytest.raises(DependencyBundlingError, match=r"^code needs 'docopt' \(requirements.txt\)") as raised:
        AsyncJobApi(stack, "Jobs", handler=HANDLER, code=folder)
    assert raised.value.package == "docopt"
    assert isinstance(raised.value, PropValueError)
    assert "manylinux2014_x86_64, CPython 3.14" in str(raised.value)
    assert "Pin a version of 'docopt'" in str(raised.value)


def test_fails_if_code_is_a_path_that_is_not_a_folder(tmp_path: Path) -> None:
    stack = cdk.Stack(cdk.App(), "Stack")
    with pytest.raises(PropValueError, match=r"^code must be a folder when given as a path"):
        AsyncJobApi(stack, "Jobs", handler=HANDLER, code=tmp_path / "missing")


def test_a_provided_distribution_named_in_requirements_is_kept_with_what_it_requires(
    cache: Path, tmp_path: Path
) -> None:
    # GIVEN requirements that name python-dateutil (which the runtime has, as botocore's dependency)
    folder = _code_folder(tmp_path, "python-dateutil==2.9.0.post0\n")

    # WHEN they are installed for Lambda
    entry = install_dependencies(folder, BundleTarget("manylinux2014_x86_64", "3.14"))

    # THEN it is bundled, with six (which it requires), as the team asked: their version wins over the runtime's
    manifest = json.loads((entry / "manifest.json").read_text())
    assert set(manifest["installed"]) == {"python-dateutil", "six"}
    assert manifest["removed"] == []
    assert {"dateutil", "six.py"} <= {path.name for path in (entry / "site").iterdir()}


@pytest.mark.parametrize(
    ("lines", "names"),
    [
        (
            ["requests>=2", "# a comment", "", "Python_Dateutil==2.9 ; python_version>'3'"],
            {"requests", "python-dateutil"},
        ),
        (
            ["-r other.txt", "--index-url https://example.com", "./local-pkg", "pkg @ https://x/pkg.whl"],
            {"pkg"},
        ),
        (["git+https://github.com/o/r.git#egg=r", "six  # pinned by botocore"], {"six"}),
    ],
)
def test_requirement_names_reads_the_distribution_names(lines: list[str], names: set[str]) -> None:
    assert bundling.requirement_names(lines) == names
