"""Every job type's handler imported once at start-up, in its worker's own environment, so that a handler
that cannot be loaded stops ``async-job local`` at once, named, instead of failing each job later.

Each check is a child process with the worker's environment variables, working directory and ``sys.path``
(its requirements, its code asset, its layers, the Lambda runtime stand-in and the standard library, as the
worker's environments have). It imports the
module of the worker's ``ASYNC_JOB_HANDLER`` and looks the function up, as the worker does at its first job.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from async_job_local.functions import INIT_TIMEOUT, LocalFunction
from lambda_handlers.contract import Env

__all__ = ["HandlerCheck", "HandlerError", "check_handlers"]

#: Run in the child: import the module, find the function, print one JSON line saying what went wrong.
_CHECK: Final = """
import importlib, json, sys, traceback
config = json.loads(sys.argv[1])
sys.path[:] = config["sys_path"]
module_name, _, function_name = config["handler"].rpartition(".")
try:
    module = importlib.import_module(module_name)
except BaseException as error:
    last = traceback.extract_tb(error.__traceback__)[-1:]
    where = f" ({last[0].filename}, line {last[0].lineno})" if last and module_name else ""
    print(json.dumps({"error": f"cannot import module {module_name!r}: {type(error).__name__}: {error}{where}"}))
else:
    if not callable(getattr(module, function_name, None)):
        print(json.dumps({"error": f"module {module_name!r} has no function {function_name!r}"}))
    else:
        print(json.dumps({"error": None}))
"""


@dataclass(frozen=True)
class HandlerCheck:
    """One handler to check: ``label`` names it in messages (the API and the job type)."""

    label: str
    function: LocalFunction

    @property
    def handler(self) -> str:
        """The team's handler the worker runs, ``module.function``."""
        return self.function.environment.get(Env.HANDLER, "")


class HandlerError(RuntimeError):
    """A job type's handler cannot be loaded; the message names each one and why.

    Example
    -------
    >>> raise HandlerError("Stack/Media, job type 'thumbs': handler 'thumbs.make' cannot be loaded: ...")
    Traceback (most recent call last):
    ...
    async_job_local.handler_check.HandlerError: Stack/Media, job type 'thumbs': handler 'thumbs.make' ...
    """


def check_handlers(checks: Sequence[HandlerCheck], *, timeout: float = INIT_TIMEOUT) -> None:
    """Import every handler of ``checks`` at once (one child process each); raise ``HandlerError`` naming
    every one that cannot be loaded.

    A worker without ``ASYNC_JOB_HANDLER`` (not this construct's worker) is not checked.

    Example
    -------
    >>> check_handlers([HandlerCheck("Stack/Media, job type 'reports'", worker_function)])
    """
    running = []
    for check in checks:
        if not check.handler:
            continue
        config = {"handler": check.handler, "sys_path": check.function.sys_path}
        process = subprocess.Popen(
            [sys.executable, "-S", "-c", _CHECK, json.dumps(config)],  # no site: sys.path is the config's
            env=check.function.environment,
            cwd=check.function.spec.code_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        running.append((check, process))
    failures = []
    for check, process in running:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            failures.append(f"{check.label}: handler {check.handler!r} took over {timeout:g} s to import")
            continue
        problem = _problem(out, err, process.returncode)
        if problem is not None:
            failures.append(f"{check.label}: handler {check.handler!r} cannot be loaded: {problem}")
    if failures:
        raise HandlerError("\n".join(failures))


def _problem(out: str, err: str, returncode: int) -> str | None:
    """What the check printed: None when the handler loaded, else why it did not."""
    for line in reversed(out.splitlines()):
        try:
            answer = json.loads(line)
        except ValueError:
            continue
        if isinstance(answer, dict) and "error" in answer:
            return None if answer["error"] is None else str(answer["error"])
    tail = (err.strip().splitlines() or ["no output"])[-1]
    return f"the import ended the process (exit code {returncode}): {tail}"
