"""A code folder's ``requirements.txt``, bundled for the worker's runtime and architecture without Docker.

``code="jobs"`` (a folder, not a ``lambda_.Code``) becomes ``lambda_.Code.from_asset("jobs", bundling=...)``
with a *local* bundler (``aws_cdk.ILocalBundling``) when the folder has a ``requirements.txt`` at its root. The
bundler runs pip for Lambda's platform, not this machine's::

    pip install --platform manylinux2014_x86_64 (or _aarch64) --implementation cp --python-version 3.14
                --only-binary=:all: --target DIR -r requirements.txt

so the wheels are those Lambda can load, whatever the machine synthesizing is, and a package that publishes no
such wheel fails synth, named (``DependencyBundlingError``). What the deployed worker finds without bundling it
(``lambda_handlers.contract.LAMBDA_PROVIDED_DISTRIBUTIONS``: the runtime's boto3 and the Powertools layer) is
installed by pip, as what requires it asks, then deleted, unless ``requirements.txt`` names it.

The install is cached under ``$ASYNC_JOB_CACHE_DIR`` (default ``$XDG_CACHE_HOME/async-job-construct``, else
``~/.cache/async-job-construct``) by the requirements' content and the target, so pip runs once per change of
``requirements.txt``, runtime or architecture; CDK's asset hash (the folder's content and the same target, as
an extra hash) names the staged asset. docs/dependencies.md tells the whole story.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from async_job_construct.validation import PropValueError
from lambda_handlers.contract import BUNDLE_MANIFEST, LAMBDA_PROVIDED_DISTRIBUTIONS, REQUIREMENTS_FILE

__all__ = [
    "BundleTarget",
    "DependencyBundlingError",
    "cache_root",
    "code_from_folder",
    "install_dependencies",
    "normalize_name",
    "requirement_names",
]

#: Bumped when what the bundler writes changes, so that older cache entries and asset hashes are not reused.
BUNDLE_FORMAT: Final = 1
#: The environment variable that moves the cache (``~/.cache/async-job-construct`` by default).
CACHE_DIR_VARIABLE: Final = "ASYNC_JOB_CACHE_DIR"
#: Never used: the bundler runs locally and returns True. CDK requires an image for bundling options.
_UNUSED_IMAGE: Final = "public.ecr.aws/sam/build-{runtime}"
#: pip's message for a requirement that no candidate satisfies (no wheel for the target, or no such package).
_NO_MATCH: Final = re.compile(r"No matching distribution found for ([A-Za-z0-9][A-Za-z0-9._-]*)")
_NAME: Final = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_INCLUDE: Final = re.compile(r"^\s*(?:-r|-c|--requirement|--constraint)[\s=]+(\S+)")
_EXTRA_ONLY: Final = re.compile(r";.*\bextra\s*==")
_LOG: Final = "pip-install.log"
_SITE: Final = "site"


class DependencyBundlingError(PropValueError):
    """A code folder's ``requirements.txt`` cannot be installed for the worker's runtime and architecture.

    Attributes
    ----------
    package
        The requirement pip found no wheel for, when it said which (else None).

    Examples
    --------
    >>> raise DependencyBundlingError(Path("jobs"), "docopt", "manylinux2014_x86_64, CPython 3.14", pip_stderr)
    Traceback (most recent call last):
    DependencyBundlingError: code needs 'docopt' (requirements.txt), which has no wheel for the worker's ...
    """

    def __init__(self, folder: Path, package: str | None, target: str, pip_output: str) -> None:
        self.package = package
        tail = "\n".join(pip_output.strip().splitlines()[-8:])
        if package is not None:
            problem = (
                f"needs '{package}' ({REQUIREMENTS_FILE}), which has no wheel for the worker's platform "
                f"({target}) on the package index, or does not exist there"
            )
            fix = (
                f"Pin a version of '{package}' that publishes a manylinux wheel for this Python, replace it, or "
                f"vendor a pure-Python copy of it into the folder (and drop it from {REQUIREMENTS_FILE}). "
                f"Lambda cannot build an sdist at deploy. pip said:\n{tail}"
            )
        else:
            problem = f"has a {REQUIREMENTS_FILE} that pip could not install for the worker ({target})"
            fix = f"Fix {folder / REQUIREMENTS_FILE} (pip said:\n{tail})"
        super().__init__("code", f"'{folder}'", problem, fix)


@dataclass(frozen=True)
class BundleTarget:
    """The platform pip installs for: Lambda's Linux, the worker's CPU and its runtime's CPython.

    Examples
    --------
    >>> BundleTarget.of(lambda_.Runtime.PYTHON_3_14, lambda_.Architecture.ARM_64)
    BundleTarget(platform='manylinux2014_aarch64', python_version='3.14')
    """

    platform: str
    python_version: str

    @staticmethod
    def of(runtime: lambda_.Runtime, architecture: lambda_.Architecture) -> BundleTarget:
        """The target of a worker of ``runtime`` (``python3.x``) on ``architecture``."""
        machine = "aarch64" if architecture.name == lambda_.Architecture.ARM_64.name else "x86_64"
        return BundleTarget(
            platform=f"manylinux2014_{machine}", python_version=runtime.name.removeprefix("python")
        )

    def describe(self) -> str:
        """``manylinux2014_x86_64, CPython 3.14``: for messages."""
        return f"{self.platform}, CPython {self.python_version}"

    def pip_options(self) -> list[str]:
        """pip's options that select wheels for this target, and only wheels."""
        return [
            "--platform",
            self.platform,
            "--implementation",
            "cp",
            "--python-version",
            self.python_version,
            "--only-binary=:all:",
        ]


def normalize_name(name: str) -> str:
    """A distribution's name as PEP 503 compares them (``Python_Dateutil`` -> ``python-dateutil``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: Iterable[str]) -> set[str]:
    """The distribution names that requirement lines ask for (options, URLs and comments skipped)."""
    names = set()
    for raw in requirements:
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")) or "://" in line.split(";", 1)[0].split("@", 1)[0]:
            continue
        match = _NAME.match(line)
        if match is not None and not line.startswith((".", "/")):
            names.add(normalize_name(match[1]))
    return names


def cache_root() -> Path:
    """Where installs are cached: ``$ASYNC_JOB_CACHE_DIR``, else ``$XDG_CACHE_HOME/async-job-construct``, else
    ``~/.cache/async-job-construct``."""
    explicit = os.environ.get(CACHE_DIR_VARIABLE)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "async-job-construct"


def _requirement_files(requirements: Path) -> list[Path]:
    """``requirements`` and every file it includes (``-r`` / ``-c``), which pip reads relative to it."""
    files: list[Path] = []
    pending = [requirements]
    while pending:
        path = pending.pop()
        if path in files or not path.is_file():
            continue
        files.append(path)
        for line in path.read_text(encoding="utf-8").splitlines():
            match = _INCLUDE.match(line)
            if match is not None and "://" not in match[1]:
                pending.append((path.parent / match[1]).resolve())
    return files


def dependencies_key(folder: Path, target: BundleTarget) -> str:
    """The cache key of ``folder``'s requirements for ``target``: what pip reads, the target, what is pruned."""
    digest = hashlib.sha256()
    digest.update(json.dumps([BUNDLE_FORMAT, target.platform, target.python_version]).encode())
    digest.update(json.dumps(sorted(LAMBDA_PROVIDED_DISTRIBUTIONS)).encode())
    requirements = folder / REQUIREMENTS_FILE
    for path in _requirement_files(requirements):
        digest.update(b"\0" + path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:32]


def _source_files(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.relative_to(folder).parts and path.suffix != ".pyc"
    )


def asset_hash(folder: Path, target: BundleTarget) -> str:
    """The code asset's hash: the folder's files (as the asset copies them) and ``dependencies_key``."""
    digest = hashlib.sha256(dependencies_key(folder, target).encode())
    for path in _source_files(folder):
        digest.update(b"\0" + path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _run_pip(arguments: Sequence[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run this interpreter's pip (the one point tests replace to prove the cache is used)."""
    return subprocess.run(
        [sys.executable, "-m", "pip", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def _kept_provided(site: Path, requirements: Path) -> set[str]:
    """The provided distributions to keep: those ``requirements`` names, and the provided ones they require."""
    named = requirement_names(
        line for path in _requirement_files(requirements) for line in path.read_text("utf-8").splitlines()
    )
    installed = {
        normalize_name(d.metadata["Name"]): d for d in importlib.metadata.distributions(path=[str(site)])
    }
    provided = {normalize_name(name) for name in LAMBDA_PROVIDED_DISTRIBUTIONS}
    kept = named & provided
    pending = list(kept)
    while pending:
        distribution = installed.get(pending.pop())
        for requirement in (distribution.requires or []) if distribution is not None else []:
            if _EXTRA_ONLY.search(requirement):
                continue  # an extra's requirement: not installed unless asked for, and then named
            for dependency in requirement_names([requirement]) & provided:
                if dependency not in kept:
                    kept.add(dependency)
                    pending.append(dependency)
    return kept


def remove_distributions(site: Path, names: set[str]) -> list[str]:
    """Delete the distributions ``names`` from the ``pip --target`` folder ``site``; return those deleted."""
    removed = []
    for distribution in importlib.metadata.distributions(path=[str(site)]):
        name = normalize_name(distribution.metadata["Name"])
        if name not in names:
            continue
        folders: set[Path] = set()
        for file in distribution.files or []:
            path = Path(str(distribution.locate_file(file))).resolve()
            if site.resolve() not in path.parents:
                continue  # a script outside the folder (bin/ is removed separately)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            folders.update(p for p in path.parents if site.resolve() in p.parents)
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only once empty: a namespace folder another distribution shares is kept
        removed.append(name)
    return sorted(removed)


def install_dependencies(folder: Path, target: BundleTarget) -> Path:
    """Install ``folder``'s ``requirements.txt`` for ``target`` into the cache (once); return the entry.

    The entry holds ``site/`` (what the asset gets beside the folder's files), ``manifest.json`` and
    ``pip-install.log``. Raises ``DependencyBundlingError`` naming the requirement pip found no wheel for.
    """
    entry = cache_root() / "lambda-deps" / dependencies_key(folder, target)
    if (entry / "manifest.json").is_file():
        return entry
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=entry.parent))
    try:
        site = staging / _SITE
        arguments = [
            "install",
            *target.pip_options(),
            "--target",
            str(site),
            "--requirement",
            str(folder / REQUIREMENTS_FILE),
            "--no-compile",  # bytecode of this interpreter, not the runtime's
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
        ]
        result = _run_pip(arguments, cwd=folder)
        log = f"$ pip {' '.join(arguments)}\n{result.stdout}\n{result.stderr}"
        (staging / _LOG).write_text(log, encoding="utf-8")
        if result.returncode != 0:
            match = _NO_MATCH.search(result.stderr)
            raise DependencyBundlingError(
                folder, match[1] if match else None, target.describe(), result.stderr or result.stdout
            )
        site.mkdir(exist_ok=True)  # an empty requirements.txt installs nothing
        shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts, with this machine's shebang
        provided = {normalize_name(name) for name in LAMBDA_PROVIDED_DISTRIBUTIONS}
        excluded = provided - _kept_provided(site, folder / REQUIREMENTS_FILE)
        removed = remove_distributions(site, excluded)
        manifest = {
            "format": BUNDLE_FORMAT,
            "platform": target.platform,
            "implementation": "cp",
            "pythonVersion": target.python_version,
            "installed": {
                normalize_name(d.metadata["Name"]): d.version
                for d in sorted(
                    importlib.metadata.distributions(path=[str(site)]), key=lambda d: d.metadata["Name"]
                )
            },
            "removed": removed,
            "excluded": sorted(excluded),
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        # Another synth that installed the same requirements first made an identical entry: keep theirs.
        with contextlib.suppress(OSError):
            os.replace(staging, entry)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return entry


@jsii.implements(ILocalBundling)
class _LocalDependencyBundler:
    """CDK's local bundling of one code folder: its files, and its dependencies from the cache."""

    def __init__(self, folder: Path, target: BundleTarget) -> None:
        self._folder = folder
        self._target = target

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: Any) -> bool:
        """Fill ``output_dir`` with the folder's files and its installed requirements; always True."""
        entry = install_dependencies(self._folder, self._target)
        output = Path(output_dir)
        shutil.copytree(entry / _SITE, output, dirs_exist_ok=True, symlinks=True)
        # The folder's own files last: a handler module wins over a dependency's file of the same name.
        shutil.copytree(
            self._folder, output, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        shutil.copyfile(entry / "manifest.json", output / BUNDLE_MANIFEST)
        return True


def code_from_folder(
    folder: str | os.PathLike[str], runtime: lambda_.Runtime, architecture: lambda_.Architecture
) -> lambda_.Code:
    """The code asset of a worker whose ``code`` is a folder: bundled with its requirements when it has them.

    Installs the requirements now (or finds them in the cache), so that a package with no wheel for Lambda
    fails here, as a ``DependencyBundlingError`` of the ``code`` prop.

    Examples
    --------
    >>> code_from_folder("jobs", lambda_.Runtime.PYTHON_3_14, lambda_.Architecture.ARM_64)
    """
    path = Path(folder).resolve()
    if not path.is_dir():
        raise PropValueError(
            "code",
            f"'{folder}'",
            "must be a folder when given as a path (the root of the worker's code)",
            "Pass the folder that holds the handler's module, or a lambda_.Code (e.g. lambda_.Code.from_asset).",
        )
    if not (path / REQUIREMENTS_FILE).is_file():
        return lambda_.Code.from_asset(str(path), exclude=["**/__pycache__"])
    target = BundleTarget.of(runtime, architecture)
    install_dependencies(path, target)
    return lambda_.Code.from_asset(
        str(path),
        # The folder's files and what pip installs for the target: the same folder bundled for another
        # runtime or CPU is another asset, and an unchanged one is not bundled again into the same cdk.out.
        asset_hash=asset_hash(path, target),
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=BundlingOptions(
            image=DockerImage.from_registry(_UNUSED_IMAGE.format(runtime=runtime.name)),
            local=_LocalDependencyBundler(path, target),
        ),
    )
