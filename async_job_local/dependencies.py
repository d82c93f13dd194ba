"""What a function imports locally: its own requirements, its asset, its layers and a Lambda runtime stand-in.

Deployed, a worker's ``sys.path`` holds its code asset (``/var/task``: the team's files and the requirements
the bundler installed for Lambda's platform), its layers (``/opt/python``: the async-job runtime, Powertools)
and the Lambda runtime (boto3 and the standard library). Locally, ``function_path`` gives the same, in the same
order, and nothing else from the virtualenv running the local runtime:

1. the asset's ``requirements.txt`` installed for *this* interpreter (only for an asset the bundler built,
   which holds ``BUNDLE_MANIFEST``), cached by the requirements' content and the interpreter; first, so its
   wheels for this machine shadow the manylinux ones bundled in the asset, and without the distributions the
   bundler left out (the manifest's ``excluded``), as in the asset;
2. the asset, then its layers' ``python/`` folders;
3. the runtime stand-in: a cached folder of symbolic links to exactly the distributions Lambda's runtime and the
   Powertools layer provide (``LAMBDA_PROVIDED_DISTRIBUTIONS`` and what they require; on python3.13 and later
   runtimes the durable execution SDK too), as installed for this interpreter, found through ``importlib.metadata`` (no network, no copy);
4. the standard library (this interpreter's ``sys.path`` without ``site``).

So a handler that imports a package neither its requirements nor the runtime provide fails locally with
``Runtime.ImportModuleError``, as it would deployed. Caches live under ``$ASYNC_JOB_CACHE_DIR``, else
``$XDG_CACHE_HOME/async-job-construct``, else ``~/.cache/async-job-construct`` (the bundler's, too).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

from lambda_handlers.contract import BUNDLE_MANIFEST, LAMBDA_PROVIDED_DISTRIBUTIONS, REQUIREMENTS_FILE

__all__ = [
    "DURABLE_RUNTIME_DISTRIBUTIONS",
    "DependencyInstallError",
    "cache_root",
    "function_path",
    "local_requirements",
    "runtime_standin",
    "ships_durable_sdk",
    "standard_library_path",
]

#: Bumped when a cache entry's layout changes.
_FORMAT: Final = 1
_NAME: Final = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA_ONLY: Final = re.compile(r";.*\bextra\s*==")


class DependencyInstallError(RuntimeError):
    """An asset's ``requirements.txt`` cannot be installed for the local interpreter (pip's reason included).

    Example
    -------
    >>> raise DependencyInstallError("cannot install .../asset.1f2e/requirements.txt for Python 3.11: ...")
    Traceback (most recent call last):
    async_job_local.dependencies.DependencyInstallError: cannot install ...
    """


def cache_root() -> Path:
    """``$ASYNC_JOB_CACHE_DIR``, else ``$XDG_CACHE_HOME/async-job-construct``, else ``~/.cache/...``."""
    explicit = os.environ.get("ASYNC_JOB_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "async-job-construct"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _interpreter() -> str:
    """This interpreter, as a cache key: implementation, version, platform and ABI."""
    return json.dumps(
        [
            sys.implementation.name,
            list(sys.version_info[:3]),
            sysconfig.get_platform(),
            sysconfig.get_config_var("SOABI"),
        ]
    )


def _publish(staging: Path, entry: Path) -> None:
    """Move a finished ``staging`` folder to ``entry`` (atomically; another process's identical one wins)."""
    try:
        os.replace(staging, entry)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)


# ------------------------------------------------------------------------------------ the asset's requirements


def _run_pip(arguments: Sequence[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    """This interpreter's pip (the one point tests replace to prove the cache is used)."""
    return subprocess.run(
        [sys.executable, "-m", "pip", *arguments], cwd=cwd, capture_output=True, text=True, check=False
    )


def _remove(site: Path, names: set[str]) -> None:
    """Delete the distributions ``names`` from the ``pip --target`` folder ``site``."""
    root = site.resolve()
    for distribution in importlib.metadata.distributions(path=[str(site)]):
        if _normalize(distribution.metadata["Name"]) not in names:
            continue
        folders: set[Path] = set()
        for file in distribution.files or []:
            path = Path(str(distribution.locate_file(file))).resolve()
            if root in path.parents:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                folders.update(p for p in path.parents if root in p.parents)
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only once empty


def local_requirements(code_dir: Path) -> Path | None:
    """The local install of a bundled asset's ``requirements.txt`` (made once, cached), or None without one.

    Raises ``DependencyInstallError`` when pip cannot install it for this interpreter.
    """
    requirements = code_dir / REQUIREMENTS_FILE
    manifest_file = code_dir / BUNDLE_MANIFEST
    if not requirements.is_file() or not manifest_file.is_file():
        return None  # not bundled by async-job: deployed, nothing is installed from it either
    manifest: dict[str, Any] = json.loads(manifest_file.read_text(encoding="utf-8"))
    excluded = {_normalize(name) for name in manifest.get("excluded", [])}
    # The versions the bundle holds: the local install takes the same ones (an unpinned requirement would
    # otherwise resolve again, maybe to a newer release than the one deployed).
    pins = sorted(f"{name}=={version}" for name, version in dict(manifest.get("installed", {})).items())
    digest = hashlib.sha256(json.dumps([_FORMAT, _interpreter(), sorted(excluded), pins]).encode())
    digest.update(requirements.read_bytes())
    entry = cache_root() / "local-deps" / digest.hexdigest()[:32]
    if entry.is_dir():
        return entry
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=entry.parent))
    arguments = [
        "install",
        "--target",
        str(staging),
        "--requirement",
        str(requirements),
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
    ]
    constraints = staging.parent / f"{staging.name}.constraints.txt"
    constraints.write_text("".join(f"{pin}\n" for pin in pins), encoding="utf-8")
    try:
        result = _run_pip([*arguments, "--constraint", str(constraints)], cwd=code_dir)
        if result.returncode != 0 and pins:
            # A bundled version this interpreter cannot install (e.g. a release without support for it):
            # resolve again, as pip would for this Python.
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            result = _run_pip(arguments, cwd=code_dir)
    finally:
        constraints.unlink(missing_ok=True)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        version = ".".join(map(str, sys.version_info[:2]))
        raise DependencyInstallError(
            f"cannot install {requirements} for the local Python {version} ({sys.executable}), which the "
            f"handler's local environment needs (deployed, the bundled copy is used). Pin a version that "
            f"installs on this Python, or run the local runtime on the Python of the function's runtime. "
            f"pip said:\n{tail}"
        )
    shutil.rmtree(staging / "bin", ignore_errors=True)
    _remove(staging, excluded)
    _publish(staging, entry)
    return entry


# ------------------------------------------------------------------------------------ the runtime stand-in


#: What the python3.13 and later managed runtimes ship besides boto3: the durable execution SDK.
DURABLE_RUNTIME_DISTRIBUTIONS: Final = ("aws-durable-execution-sdk-python",)
#: The first managed Python runtime shipping ``DURABLE_RUNTIME_DISTRIBUTIONS``.
_DURABLE_RUNTIME_SINCE: Final = (3, 13)


def ships_durable_sdk(runtime: str | None) -> bool:
    """Whether the Lambda runtime ``runtime`` (``python3.14``) ships the durable execution SDK (3.13 on)."""
    match = re.fullmatch(r"python(\d+)\.(\d+)", runtime or "")
    return match is not None and (int(match[1]), int(match[2])) >= _DURABLE_RUNTIME_SINCE


def _provided_distributions(durable: bool = False) -> list[importlib.metadata.Distribution]:
    """The provided distributions installed here, and the distributions they require (extras left out)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    provided = (*LAMBDA_PROVIDED_DISTRIBUTIONS, *(DURABLE_RUNTIME_DISTRIBUTIONS if durable else ()))
    pending = [_normalize(name) for name in provided]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here (e.g. no tracer extra): not in the stand-in either
        found[name] = distribution
        for requirement in distribution.requires or []:
            match = _NAME.match(requirement)
            if match is not None and not _EXTRA_ONLY.search(requirement):
                pending.append(_normalize(match[1]))
    return [found[name] for name in sorted(found)]


def _top_level(distribution: importlib.metadata.Distribution) -> Iterable[tuple[str, Path]]:
    """Each top-level entry of a distribution's site folder it installed: (name, where it is)."""
    seen = set()
    for file in distribution.files or []:
        parts = Path(file).parts
        if not parts or parts[0] in ("..", "__pycache__") or parts[0] in seen:
            continue
        seen.add(parts[0])
        yield parts[0], Path(str(distribution.locate_file(parts[0])))


@functools.cache
def runtime_standin(durable: bool = False) -> Path:
    """A folder of symbolic links to exactly what Lambda's runtime and the Powertools layer provide (with
    ``durable``, the durable execution SDK too, as the python3.13+ runtimes ship it)."""
    distributions = _provided_distributions(durable)
    key = json.dumps(
        [
            _FORMAT,
            _interpreter(),
            [(d.metadata["Name"], d.version, str(d.locate_file(""))) for d in distributions],
        ]
    )
    entry = cache_root() / "runtime-standin" / hashlib.sha256(key.encode()).hexdigest()[:32]
    if entry.is_dir():
        return entry
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=entry.parent))
    for distribution in distributions:
        for name, source in _top_level(distribution):
            link = staging / name
            if source.exists() and not link.exists():
                link.symlink_to(source, target_is_directory=source.is_dir())
    _publish(staging, entry)
    return entry


@functools.cache
def standard_library_path() -> tuple[str, ...]:
    """This interpreter's ``sys.path`` without ``site`` (no site-packages) and without ``PYTHON*`` variables."""
    probe = subprocess.run(
        [sys.executable, "-I", "-S", "-c", "import json, sys; print(json.dumps(sys.path))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return tuple(entry for entry in json.loads(probe.stdout) if entry)


def function_path(code_dir: Path, layer_dirs: Sequence[Path], runtime: str | None = None) -> list[str]:
    """The ``sys.path`` of a function whose asset is ``code_dir`` and whose layers are ``layer_dirs``, on the
    Lambda runtime ``runtime`` (``python3.13`` and later ship the durable execution SDK)."""
    paths: list[str] = []
    requirements = local_requirements(code_dir)
    if requirements is not None:
        paths.append(str(requirements))
    paths.append(str(code_dir))
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    for layer in layer_dirs:
        python = layer / "python"
        paths.append(str(python))
        versioned = python / "lib" / version / "site-packages"
        if versioned.is_dir():
            paths.append(str(versioned))
    paths.append(str(runtime_standin(ships_durable_sdk(runtime))))
    paths.extend(entry for entry in standard_library_path() if entry not in paths)
    return paths
