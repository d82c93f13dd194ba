"""Lambda functions, run locally: a pool of warm execution environments (child processes) per function.

Each environment is a ``python`` process running ``async_job_local/sandbox.py`` with the function's own
environment variables, working directory and ``sys.path``; it imports the handler once (the cold start) and
then runs one invocation at a time. This process enforces the function's timeout: when it expires, the
environment is killed (``SIGKILL`` to its process group) and the invocation fails with Lambda's timeout error,
exactly as in Lambda, where a timed-out invocation is not left running. A process that dies fails its
invocation the same way, with ``Runtime.ExitError``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from async_job_local.assembly import FunctionSpec
from async_job_local.dependencies import function_path

__all__ = ["FunctionLogs", "InvokeResult", "LocalFunction", "function_sys_path"]

SANDBOX: Final = Path(__file__).with_name("sandbox.py")
_BOOT: Final = (
    "import importlib.util as u,sys;"
    "s=u.spec_from_file_location('async_job_local_sandbox',sys.argv[1]);"
    "m=u.module_from_spec(s);s.loader.exec_module(m);m.main(sys.argv[2])"
)
#: How long an environment may take to start and import its handler. Lambda allows 10 s; a local machine
#: under load (a benchmark, a test suite on 2 cores) starts Python, boto3 and Powertools more slowly.
INIT_TIMEOUT: Final = 30.0


class FunctionLogs:
    """Where the functions' output (their CloudWatch Logs, in AWS) goes: a text stream, or nowhere.

    Each line is prefixed with the function's name, like ``sam logs``.
    """

    def __init__(self, stream: IO[str] | None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, function_name: str, line: str) -> None:
        """Write one line of ``function_name``'s output."""
        if self._stream is None:
            return
        with self._lock:
            self._stream.write(f"{function_name} | {line.rstrip()}\n")
            self._stream.flush()


@dataclass(frozen=True)
class InvokeResult:
    """The outcome of one invocation: the handler's return value, or Lambda's error document.

    Attributes
    ----------
    payload
        What the handler returned (JSON-decoded), when ``error`` is None.
    error
        ``{"errorType", "errorMessage", ...}`` for a function error, a timeout (``Sandbox.Timedout``), a crashed
        environment (``Runtime.ExitError``) or a failed cold start (``Runtime.ImportModuleError`` ...).
    """

    request_id: str
    payload: Any
    error: Mapping[str, Any] | None
    duration_ms: float

    @property
    def ok(self) -> bool:
        """True when the handler returned normally."""
        return self.error is None


def function_sys_path(spec: FunctionSpec) -> list[str]:
    """The ``sys.path`` of a function's environment: what the function would import deployed, and nothing else.

    Its asset's requirements installed for this interpreter (when the bundler built the asset from a
    ``requirements.txt``), its code directory (``/var/task`` in Lambda), its layers' ``python/`` directories
    (``/opt/python``), a stand-in for the Lambda runtime holding only boto3 and what the Powertools layer
    provides, then the standard library (``async_job_local.dependencies`` tells why, in that order). The
    environment's interpreter runs without ``site``, so the virtualenv running the local runtime is not seen.
    """
    return function_path(spec.code_dir, spec.layer_dirs, spec.runtime)


class _Died(Exception):
    pass


class _Environment:
    """One execution environment: a child process, its pipes and its reader threads."""

    def __init__(self, function: LocalFunction) -> None:
        self.function = function
        request_read, self._request_write = os.pipe()
        self._kill_lock = threading.Lock()
        response_read, response_write = os.pipe()
        stamp = dt.datetime.now(dt.UTC).strftime("%Y/%m/%d")
        log_stream_name = f"{stamp}/[$LATEST]{uuid.uuid4().hex}"
        config = {
            "handler": function.spec.handler,
            "sys_path": function.sys_path,
            "request_fd": request_read,
            "response_fd": response_write,
            "function_name": function.name,
            "function_arn": function.arn,
            "memory_size": function.spec.memory_size,
            "log_group_name": function.log_group_name,
            "log_stream_name": log_stream_name,
        }
        env = {**function.environment, "AWS_LAMBDA_LOG_STREAM_NAME": log_stream_name}
        try:
            self.process = subprocess.Popen(
                # -S: no site, so no site-packages or .pth hooks of this virtualenv; sys.path is the config's.
                [sys.executable, "-S", "-c", _BOOT, str(SANDBOX), json.dumps(config)],
                env=env,
                cwd=function.spec.code_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(request_read, response_write),
                start_new_session=True,  # Ctrl-C reaches the runtime, which stops environments itself
            )
        finally:
            os.close(request_read)
            os.close(response_write)
        self._responses: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._response_stream = os.fdopen(response_read, "rb")
        self.init_ms: float | None = None
        threading.Thread(target=self._read_responses, name=f"{function.name}-responses", daemon=True).start()
        threading.Thread(target=self._read_logs, name=f"{function.name}-logs", daemon=True).start()

    def _read_responses(self) -> None:
        with self._response_stream:
            for line in self._response_stream:
                try:
                    self._responses.put(json.loads(line))
                except ValueError:  # a torn line from a process killed mid-write
                    break
        self._responses.put(None)

    def _read_logs(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for raw in self.process.stdout:
                self.function.logs.write(self.function.name, raw.decode("utf-8", "replace"))

    def _next(self, timeout: float) -> dict[str, Any]:
        message = self._responses.get(timeout=max(0.0, timeout))
        if message is None:
            self._responses.put(None)  # keep reporting the death
            raise _Died
        return message

    def start(self) -> dict[str, Any] | None:
        """Wait for the cold start; return Lambda's init error document if the handler could not be loaded."""
        started = time.monotonic()
        try:
            message = self._next(INIT_TIMEOUT)
        except queue.Empty:
            self.kill()
            return {"errorType": "Runtime.InitTimeout", "errorMessage": f"init exceeded {INIT_TIMEOUT:.0f} s"}
        except _Died:
            return {"errorType": "Runtime.ExitError", "errorMessage": f"Runtime exited: {self.exit_status()}"}
        if message.get("type") == "init_error":
            self.kill()
            return {k: v for k, v in message.items() if k != "type"}
        self.init_ms = (time.monotonic() - started) * 1000
        return None

    def invoke(self, request_id: str, event: Any, timeout: float) -> dict[str, Any]:
        """Run one invocation; raise ``queue.Empty`` on timeout, ``_Died`` if the process ended."""
        deadline = time.monotonic() + timeout
        deadline_ms = int((time.time() + timeout) * 1000)
        line = json.dumps({"requestId": request_id, "event": event, "deadlineMs": deadline_ms}) + "\n"
        try:
            self._write_all(line.encode())
        except OSError as error:  # the process is gone (broken pipe)
            raise _Died from error
        while True:
            message = self._next(deadline - time.monotonic())
            if message.get("requestId") == request_id:
                return message

    def _write_all(self, data: bytes) -> None:
        if self._request_write < 0:
            raise BrokenPipeError("the environment was killed")
        view = memoryview(data)
        while view:
            view = view[os.write(self._request_write, view) :]

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def exit_status(self) -> str:
        try:
            code = self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "unknown"
        return f"signal: {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"

    def max_memory_mb(self) -> int | None:
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
        return None

    def kill(self) -> None:
        """Stop the process and anything it started (its process group), at once. Idempotent: the request
        pipe is closed once (a second ``os.close`` of its number would close whatever file, socket or pipe of
        the runtime was given that number since)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with self._kill_lock:
            descriptor, self._request_write = self._request_write, -1
        if descriptor >= 0:
            with contextlib.suppress(OSError):
                os.close(descriptor)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


class LocalFunction:
    """A Lambda function with up to ``max_environments`` warm execution environments.

    Parameters
    ----------
    name
        The function's name (its physical name locally).
    spec
        The function as the template defines it (handler, code, timeout, memory).
    environment
        The complete environment of its processes: the function's resolved variables, Lambda's reserved ones
        and the backend's endpoint and credentials.
    arn
        Its ARN (``context.invoked_function_arn``).
    max_environments
        How many invocations may run at once; more wait for a free environment.
    logs
        Where the environments' output goes.

    Example
    -------
    >>> function = LocalFunction("Echo", spec, env, arn=arn, max_environments=2, logs=FunctionLogs(sys.stderr))
    >>> function.invoke({"hello": "world"}).payload
    """

    def __init__(
        self,
        name: str,
        spec: FunctionSpec,
        environment: Mapping[str, str],
        *,
        arn: str,
        max_environments: int,
        logs: FunctionLogs,
    ) -> None:
        self.name = name
        self.spec = spec
        self.arn = arn
        self.environment = dict(environment)
        self.max_environments = max_environments
        self.logs = logs
        self.log_group_name = f"/aws/lambda/{name}"
        self.sys_path = function_sys_path(spec)
        self._condition = threading.Condition()
        self._idle: list[_Environment] = []
        self._all: set[_Environment] = set()
        self._starting = 0
        self._closed = False

    @property
    def timeout(self) -> float:
        """The function's timeout, seconds."""
        return float(self.spec.timeout)

    def prewarm(self) -> None:
        """Start one environment in the background, so the first invocation finds it warm."""

        def start() -> None:
            environment = self._acquire()
            if isinstance(environment, _Environment):
                self._release(environment)

        threading.Thread(target=start, name=f"{self.name}-prewarm", daemon=True).start()

    def _acquire(self) -> _Environment | dict[str, Any]:
        """A warm environment, else a new one (or its cold start's error document), else wait for one."""
        with self._condition:
            while True:
                if self._closed:
                    return {"errorType": "Runtime.Stopped", "errorMessage": f"{self.name} is stopped"}
                if self._idle:
                    return self._idle.pop()  # the most recently used: the warmest
                if len(self._all) + self._starting < self.max_environments:
                    self._starting += 1
                    break
                self._condition.wait()
        environment: _Environment | None = None
        init_error: dict[str, Any] | None = {"errorType": "Runtime.Unknown", "errorMessage": "no environment"}
        try:
            environment = _Environment(self)
            init_error = environment.start()
        finally:
            with self._condition:
                self._starting -= 1
                if environment is not None and init_error is None and not self._closed:
                    self._all.add(environment)
                else:
                    if environment is not None:
                        environment.kill()
                    self._condition.notify()
        if environment is None or init_error is not None:
            return init_error or {"errorType": "Runtime.Stopped", "errorMessage": f"{self.name} is stopped"}
        if self._closed:
            environment.kill()
        return environment

    def _release(self, environment: _Environment) -> None:
        with self._condition:
            if environment.alive and not self._closed:
                self._idle.append(environment)
            else:
                self._all.discard(environment)
            self._condition.notify()

    def invoke(self, event: Any, *, request_id: str | None = None) -> InvokeResult:
        """Invoke the function synchronously (``RequestResponse``) and return its result or error."""
        request_id = request_id or str(uuid.uuid4())
        environment = self._acquire_for(request_id)
        if isinstance(environment, InvokeResult):
            return environment
        started = time.monotonic()
        error: dict[str, Any] | None = None
        payload: Any = None
        self.logs.write(self.name, f"START RequestId: {request_id} Version: $LATEST")
        try:
            message = environment.invoke(request_id, event, self.timeout)
        except queue.Empty:
            environment.kill()
            error = {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {request_id} Error: Task timed out after {self.timeout:.2f} seconds",
            }
        except _Died:
            error = {
                "errorType": "Runtime.ExitError",
                "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: "
                f"{environment.exit_status()}",
            }
        else:
            if message.get("type") == "result":
                payload = message.get("payload")
            else:
                error = {k: v for k, v in message.items() if k not in ("type", "requestId")}
        duration_ms = (time.monotonic() - started) * 1000
        self._report(environment, request_id, duration_ms, error)
        self._release(environment)
        return InvokeResult(request_id=request_id, payload=payload, error=error, duration_ms=duration_ms)

    def _acquire_for(self, request_id: str) -> _Environment | InvokeResult:
        environment = self._acquire()
        if isinstance(environment, _Environment):
            return environment
        self.logs.write(
            self.name, f"INIT_REPORT RequestId: {request_id} Status: error {environment['errorType']}"
        )
        return InvokeResult(request_id=request_id, payload=None, error=environment, duration_ms=0.0)

    def _report(
        self, environment: _Environment, request_id: str, duration_ms: float, error: Mapping[str, Any] | None
    ) -> None:
        if error is not None and error["errorType"] in ("Sandbox.Timedout", "Runtime.ExitError"):
            self.logs.write(self.name, f"{dt.datetime.now(dt.UTC).isoformat()} {error['errorMessage']}")
        self.logs.write(self.name, f"END RequestId: {request_id}")
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {int(duration_ms) + 1} ms\tMemory Size: {self.spec.memory_size} MB\t"
            f"Max Memory Used: {environment.max_memory_mb() or '?'} MB"
        )
        if environment.init_ms is not None:
            report += f"\tInit Duration: {environment.init_ms:.2f} ms"
            environment.init_ms = None
        self.logs.write(self.name, report)

    def close(self) -> None:
        """Stop every environment (an invocation still running fails as if the function was deleted)."""
        with self._condition:
            self._closed = True
            environments = list(self._all)
            self._idle.clear()
            self._condition.notify_all()
        for environment in environments:
            environment.kill()
