"""The built wheel ships the Lambda runtime, and the construct finds it after `pip install` in a fresh venv."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("async_job_construct-*.whl")
    return built


def test_wheel_ships_construct_and_runtime(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("submit", "status", "worker", "dead_letter", "job", "store"):
        assert f"lambda_handlers/{module}.py" in names
    assert "lambda_handlers/py.typed" in names
    assert "async_job_construct/async_job_api.py" in names
    assert "async_job_construct/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "app.py", "sample_jobs/"))]


def test_installed_wheel_stages_its_runtime_into_lambda_assets(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # Install the wheel itself (our files come only from it); take the heavy dependencies (aws-cdk-lib, 430 MB)
    # from this environment through a .pth appended after the venv's own site-packages.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    script = textwrap.dedent(
        """
        import json, pathlib, sys
        import aws_cdk as cdk
        from aws_cdk import aws_lambda as lambda_
        from aws_cdk.assertions import Template
        import async_job_construct, lambda_handlers
        from async_job_construct import AsyncJobApi
        from async_job_construct.runtime_assets import runtime_assets
        app = cdk.App(outdir=sys.argv[1])
        stack = cdk.Stack(app, "FromWheel")
        AsyncJobApi(stack, "Jobs", handler="m.f", code=lambda_.Code.from_inline("def f(p, j): return p"))
        app.synth()
        assets = runtime_assets()
        print(json.dumps({
            "construct": async_job_construct.__file__,
            "runtime": lambda_handlers.__file__,
            "function": sorted(p.name for p in (assets.function_dir / "lambda_handlers").iterdir()),
            "layer": sorted(p.name for p in (assets.layer_dir / "python" / "lambda_handlers").iterdir()),
        }))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    result = subprocess.run(
        [python, "-c", script, str(tmp_path / "cdk.out")],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    import json

    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["construct"].startswith(str(site))
    assert found["runtime"].startswith(str(site))
    for staged in (found["function"], found["layer"]):
        assert {"submit.py", "status.py", "worker.py", "dead_letter.py"} <= set(staged)
        assert "__pycache__" not in staged
    staged_assets = [p for p in (tmp_path / "cdk.out").iterdir() if p.name.startswith("asset.")]
    assert any((p / "lambda_handlers" / "worker.py").is_file() for p in staged_assets)
    assert any((p / "python" / "lambda_handlers" / "worker.py").is_file() for p in staged_assets)
