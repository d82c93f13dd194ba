"""The distribution as pip installs it from an index: an sdist, a wheel built from that sdist, a fresh venv.

`python -m build` builds the sdist first and the wheel from the unpacked sdist, as pip does with an sdist from an
index: a package missing from the sdist is missing from the wheel too, even when the wheel target lists it. So
everything here is built that way, once per module, and installed into a venv of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import tomllib
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
PACKAGES: list[str] = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
SHIPPED_SUFFIXES = (".py", ".typed")


@dataclass(frozen=True)
class Dist:
    sdist: Path
    wheel: Path
    log: str


@dataclass(frozen=True)
class Venv:
    root: Path
    python: Path
    site: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    (sdist,) = out.glob("async_job_construct-*.tar.gz")
    (wheel,) = out.glob("async_job_construct-*.whl")
    return Dist(sdist, wheel, built.stdout)


@pytest.fixture(scope="module")
def sdist_names(dist: Dist) -> set[str]:
    prefix = f"async_job_construct-{VERSION}/"
    with tarfile.open(dist.sdist) as archive:
        names = archive.getnames()
    assert all(n.startswith(prefix) for n in names)
    return {n.removeprefix(prefix) for n in names}


@pytest.fixture(scope="module")
def wheel_names(dist: Dist) -> set[str]:
    return set(zipfile.ZipFile(dist.wheel).namelist())


def source_files(package: str) -> set[str]:
    """The files of ``package`` that a distribution ships, as paths relative to the repository."""
    return {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / package).rglob("*")
        if p.is_file() and p.suffix in SHIPPED_SUFFIXES and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module")
def venv(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh venv with the wheel installed by pip (scripts and all); its dependencies come from this venv.

    The wheel is installed with ``--no-deps --no-index`` (our files come only from it); the heavy dependencies
    (aws-cdk-lib, 430 MB) are this environment's, through a ``.pth`` read after the venv's own site-packages.
    That ``.pth`` adds a path, not a site dir, so this venv's editable install of the project is not seen.
    """
    root = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-index",
            str(dist.wheel),
        ],
        check=True,
        capture_output=True,
    )
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    return Venv(root, python, site, env)


def run_in(venv: Venv, args: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    # cwd is outside the repository: `python -c` puts the working directory first on sys.path.
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=venv.env, timeout=120
    )


def test_build_makes_the_wheel_from_the_sdist(dist: Dist) -> None:
    assert "Building sdist" in dist.log
    assert "Building wheel from sdist" in dist.log


def test_sdist_has_every_package_the_wheel_lists(sdist_names: set[str]) -> None:
    for package in PACKAGES:
        missing = source_files(package) - sdist_names
        assert not missing, f"{package} files missing from the sdist: {sorted(missing)[:5]}"
        assert f"{package}/py.typed" in sdist_names


def test_sdist_has_license_changelog_readme_and_docs(sdist_names: set[str]) -> None:
    assert {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "PKG-INFO"} <= sdist_names
    docs = {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").iterdir() if p.is_file()}
    assert "docs/upgrading.md" in docs
    assert docs <= sdist_names


def test_sdist_leaves_out_tests_samples_and_tooling(sdist_names: set[str]) -> None:
    top_level = {n.split("/", 1)[0] for n in sdist_names}
    assert not top_level & {"tests", "examples", "bench", "sample_jobs", "app.py", "node_modules", ".venv"}


def test_wheel_ships_the_construct_the_runtime_and_the_local_runtime(wheel_names: set[str]) -> None:
    for package in PACKAGES:
        assert source_files(package) <= wheel_names, package
    for module in ("submit", "status", "worker", "dead_letter", "job", "store"):
        assert f"lambda_handlers/{module}.py" in wheel_names
    assert "async_job_construct/async_job_api.py" in wheel_names
    assert "async_job_local/cli.py" in wheel_names


def test_wheel_ships_no_tests_sample_app_or_examples(wheel_names: set[str]) -> None:
    top_level = {n.split("/", 1)[0] for n in wheel_names}
    assert top_level == {*PACKAGES, f"async_job_construct-{VERSION}.dist-info"}
    assert not [n for n in wheel_names if "__pycache__" in n or n.endswith(".pyc")]


def test_wheel_metadata_has_license_urls_and_the_script(dist: Dist, wheel_names: set[str]) -> None:
    info = f"async_job_construct-{VERSION}.dist-info"
    assert f"{info}/licenses/LICENSE" in wheel_names
    with zipfile.ZipFile(dist.wheel) as archive:
        metadata = HeaderParser().parsestr(archive.read(f"{info}/METADATA").decode())
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        license_text = archive.read(f"{info}/licenses/LICENSE").decode()
    assert metadata["Version"] == VERSION
    assert metadata["License-Expression"] == "Apache-2.0"
    assert "Apache License\n                           Version 2.0, January 2004" in license_text
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL"))
    assert set(urls) == {"Homepage", "Documentation", "Changelog", "Issues"}
    base = "https://github.com/async-job-construct/async-job-construct"
    assert all(url.startswith(base) for url in urls.values()), urls
    assert "async-job = async_job_local.cli:main" in entry_points


def test_installed_script_runs_help(venv: Venv, tmp_path: Path) -> None:
    result = run_in(venv, [venv.root / "bin" / "async-job", "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "usage: async-job" in result.stdout
    assert "local" in result.stdout


def test_installed_script_prints_the_distribution_version(venv: Venv, tmp_path: Path) -> None:
    result = run_in(venv, [venv.root / "bin" / "async-job", "--version"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"async-job {VERSION}"


def test_installed_packages_import_from_the_venv_with_their_version(venv: Venv, tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import json
        import async_job_local, async_job_local.cli, lambda_handlers, async_job_construct
        print(json.dumps({
            "files": [m.__file__ for m in (async_job_local, async_job_local.cli, lambda_handlers, async_job_construct)],
            "version": async_job_construct.__version__,
        }))
        """
    )
    result = run_in(venv, [venv.python, "-c", script], tmp_path)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(f.startswith(str(venv.site)) for f in found["files"]), found["files"]
    assert found["version"] == VERSION


def test_installed_wheel_stages_its_runtime_into_lambda_assets(venv: Venv, tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import json, pathlib, sys
        import aws_cdk as cdk
        from aws_cdk import aws_lambda as lambda_
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
    result = run_in(venv, [venv.python, "-c", script, tmp_path / "cdk.out"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["construct"].startswith(str(venv.site))
    assert found["runtime"].startswith(str(venv.site))
    for staged in (found["function"], found["layer"]):
        assert {"submit.py", "status.py", "worker.py", "dead_letter.py"} <= set(staged)
        assert "__pycache__" not in staged
    staged_assets = [p for p in (tmp_path / "cdk.out").iterdir() if p.name.startswith("asset.")]
    assert any((p / "lambda_handlers" / "worker.py").is_file() for p in staged_assets)
    assert any((p / "python" / "lambda_handlers" / "worker.py").is_file() for p in staged_assets)
