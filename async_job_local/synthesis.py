"""Synthesize a CDK app the way the CDK CLI does (``cdk synth``), into a cloud assembly directory."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from async_job_local.errors import AssemblyError

__all__ = ["CLI_CONTEXT", "app_command", "read_json", "synthesize"]

#: Context the CDK CLI passes to every app by default (``python app.py`` alone gets none of it): asset metadata
#: (``aws:asset:path`` on each function, which says where its code is), path metadata, and no stack traces
#: (as without ``--debug``).
CLI_CONTEXT: Final[Mapping[str, Any]] = {
    "aws:cdk:enable-asset-metadata": True,
    "aws:cdk:enable-path-metadata": True,
    "aws:cdk:disable-stack-trace": True,
}


def read_json(path: Path) -> Any:
    """The JSON document of the file ``path`` (UTF-8)."""
    return json.loads(path.read_text(encoding="utf-8"))


def _cli_context(cwd: Path, extra: Mapping[str, Any]) -> dict[str, Any]:
    """The context ``cdk synth`` would pass: cdk.json's ``context``, overridden by cdk.context.json, then by
    ``extra`` (``-c``)."""
    context: dict[str, Any] = {}
    for name, key in (("cdk.json", "context"), ("cdk.context.json", None)):
        path = cwd / name
        if path.is_file():
            data = read_json(path)
            context.update(data if key is None else data.get(key, {}))
    context.update(extra)
    context.update(CLI_CONTEXT)
    return context


def app_command(app: str | None, cwd: Path) -> str:
    """The shell command that synthesizes ``app``: cdk.json's ``app`` when None, ``python <file>`` for a .py.

    Example
    -------
    >>> app_command("npx cdk-app", Path.cwd())
    'npx cdk-app'
    """
    if app is None:
        config = cwd / "cdk.json"
        if not config.is_file():
            raise AssemblyError(f"no --app given and no cdk.json in {cwd}: pass --app <app.py or command>")
        command = read_json(config).get("app")
        if not isinstance(command, str) or not command:
            raise AssemblyError(f"{config} has no 'app' command: pass --app <app.py or command>")
        return command
    if app.endswith(".py") and (cwd / app).is_file():
        return f"{shlex.quote(sys.executable)} {shlex.quote(app)}"
    return app


def synthesize(
    app: str | None,
    *,
    cwd: Path,
    outdir: Path,
    context: Mapping[str, Any] | None = None,
) -> Path:
    """Synthesize ``app`` into ``outdir`` the way the CDK CLI does, and return the cloud assembly directory.

    Parameters
    ----------
    app
        A CDK app file (``app.py``), a command (``"python3 app.py"``), an already synthesized cloud assembly
        directory (holding ``manifest.json``), or None for the ``app`` command of ``cwd/cdk.json``.
    cwd
        Where the app runs (and where ``cdk.json`` and ``cdk.context.json`` are read).
    outdir
        An empty directory for the assembly (``CDK_OUTDIR``).
    context
        Extra context values (``cdk synth -c key=value``).

    Example
    -------
    >>> assembly_dir = synthesize(None, cwd=Path.cwd(), outdir=Path(tempfile.mkdtemp()))
    """
    if app is not None and (cwd / app).is_dir():
        directory = (cwd / app).resolve()
        if not (directory / "manifest.json").is_file():
            raise AssemblyError(f"{directory} is a directory without a manifest.json (not a cloud assembly)")
        return directory
    command = app_command(app, cwd)
    # `python3` in cdk.json must mean this interpreter (the one with aws-cdk-lib), as in an activated venv.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {
        **os.environ,
        "PATH": path,
        "CDK_OUTDIR": str(outdir),
        "CDK_CONTEXT_JSON": json.dumps(_cli_context(cwd, context or {})),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": os.environ.get(
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20"
        ),
    }
    result = subprocess.run(
        command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise AssemblyError(f"`{command}` failed with exit code {result.returncode}:\n{output[-4000:]}")
    if not (outdir / "manifest.json").is_file():
        raise AssemblyError(
            f"`{command}` wrote no cloud assembly to CDK_OUTDIR: does the app call app.synth() and leave "
            "cdk.App(outdir=...) unset?"
        )
    return outdir
