"""Stage the ``lambda_handlers`` runtime as Lambda code assets, without Docker.

The runtime ships inside this distribution (``pip install async-job-construct`` puts ``lambda_handlers`` next to
``async_job_construct``). Lambda needs it in two shapes: at the zip root for the functions we own (the API and
dead-letter functions), and under ``python/`` for a layer that the worker adds to the team's own code. Both are
plain copies of the package's source files, made once per process into a content-addressed folder, so the
asset hash changes only when the runtime's code does.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RuntimeAssets", "runtime_assets", "runtime_source_dir"]

_RUNTIME_PACKAGE = "lambda_handlers"
_SHIPPED_SUFFIXES = (".py", ".typed")


@dataclass(frozen=True)
class RuntimeAssets:
    """Folders ready for ``lambda_.Code.from_asset``.

    Attributes
    ----------
    function_dir : Path
        Holds ``lambda_handlers/`` at its root: the code of the functions this library owns.
    layer_dir : Path
        Holds ``python/lambda_handlers/``: a layer that puts the runtime on a team function's path.
    """

    function_dir: Path
    layer_dir: Path


def runtime_source_dir() -> Path:
    """Return the installed ``lambda_handlers`` package folder (without importing it)."""
    spec = importlib.util.find_spec(_RUNTIME_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"the '{_RUNTIME_PACKAGE}' package that async-job-construct ships is not importable; "
            "reinstall async-job-construct"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _runtime_files(source: Path) -> list[Path]:
    return sorted(
        path
        for path in source.rglob("*")
        if path.is_file() and path.suffix in _SHIPPED_SUFFIXES and "__pycache__" not in path.parts
    )


@functools.cache
def runtime_assets() -> RuntimeAssets:
    """Copy the runtime into a content-addressed staging folder (once per process) and return its shapes."""
    source = runtime_source_dir()
    files = _runtime_files(source)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(source).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    root = Path(tempfile.gettempdir()) / "async-job-construct" / digest.hexdigest()[:16]
    assets = RuntimeAssets(function_dir=root / "function", layer_dir=root / "layer")
    if root.is_dir():
        return assets
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=root.parent))
    for target in (staging / "function" / _RUNTIME_PACKAGE, staging / "layer" / "python" / _RUNTIME_PACKAGE):
        for path in files:
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
    try:
        os.replace(staging, root)
    except OSError:  # another process staged the same content first: theirs is identical
        shutil.rmtree(staging, ignore_errors=True)
    return assets
