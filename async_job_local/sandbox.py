"""A Lambda execution environment: one process that imports a handler once and then runs invocations.

The parent (``async_job_local.functions``) starts it with the function's environment variables and loads this
file by path, so the process imports nothing of the local runtime and its ``sys.path`` is the function's own:
its requirements, its code directory, its layers, a stand-in for the Lambda runtime (boto3, Powertools) and
the standard library; it runs without ``site`` (``python -S``). Invocations arrive one at a time as JSON lines on a pipe; each answer is one JSON line
on another pipe. The handler runs in the main thread, so ``signal.alarm`` works as in Lambda. The parent
enforces the function's timeout by killing this process, as Lambda does.

This module uses the standard library only.
"""

from __future__ import annotations

import decimal
import importlib
import io
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

__all__ = ["LambdaContext", "main"]


class LambdaContext:
    """The ``context`` argument of a Python Lambda handler (the attributes Lambda's runtime provides)."""

    def __init__(self, config: dict[str, Any], request_id: str, deadline_ms: int) -> None:
        self.aws_request_id = request_id
        self.function_name: str = config["function_name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn: str = config["function_arn"]
        # A string, as in Lambda's runtime (it reads AWS_LAMBDA_FUNCTION_MEMORY_SIZE).
        self.memory_limit_in_mb: str = str(config["memory_size"])
        self.log_group_name: str = config["log_group_name"]
        self.log_stream_name: str = config["log_stream_name"]
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout."""
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def __repr__(self) -> str:
        return f"LambdaContext(function_name={self.function_name!r}, aws_request_id={self.aws_request_id!r})"


def _send(fd: int, message: dict[str, Any]) -> None:
    _write(fd, (json.dumps(message, separators=(",", ":")) + "\n").encode())


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _error(error: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorType": error_type or type(error).__name__,
        "errorMessage": str(error),
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


def _load_handler(handler: str) -> Callable[[Any, LambdaContext], Any]:
    module_name, _, function_name = handler.replace("/", ".").rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise _InitError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {error}"
        ) from error
    except SyntaxError as error:
        raise _InitError(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {error}"
        ) from error
    function = getattr(module, function_name, None)
    if not callable(function):
        raise _InitError(
            "Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'"
        )
    return function  # type: ignore[no-any-return]


class _InitError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _decimal(value: object) -> float:
    """Lambda's Python runtime marshals ``Decimal`` (what boto3's DynamoDB resource returns) as a number."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _exit_with_parent() -> None:
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:  # the runtime is gone: an orphaned environment must not linger
            os._exit(1)


def main(config_json: str) -> None:
    """Run one environment. ``config_json`` holds the handler, ``sys.path``, the pipes and the identity."""
    config = json.loads(config_json)
    sys.path[:] = config["sys_path"]
    sys.argv = ["bootstrap"]
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    threading.Thread(target=_exit_with_parent, name="parent-watch", daemon=True).start()
    responses: int = config["response_fd"]
    requests = os.fdopen(config["request_fd"], "rb")

    started = time.monotonic()
    try:
        handler = _load_handler(config["handler"])
    except _InitError as error:
        _send(responses, {"type": "init_error", **_error(error, error.error_type)})
        print(f"[ERROR] {error.error_type}: {error}", file=sys.stderr)
        return
    except Exception as error:
        _send(responses, {"type": "init_error", **_error(error)})
        traceback.print_exc()
        return
    _send(responses, {"type": "ready", "initMs": (time.monotonic() - started) * 1000})

    for line in requests:
        request = json.loads(line)
        request_id = request["requestId"]
        context = LambdaContext(config, request_id, request["deadlineMs"])
        try:
            result = handler(request["event"], context)
        except Exception as error:
            # Lambda logs an uncaught error with its traceback, then answers with the error document.
            print(f"[ERROR] {type(error).__name__}: {error}", file=sys.stderr)
            traceback.print_exc()
            _send(responses, {"type": "error", "requestId": request_id, **_error(error)})
            continue
        try:
            payload = json.dumps(result, separators=(",", ":"), default=_decimal)
        except (TypeError, ValueError) as error:
            message = f"Unable to marshal response: {error}"
            print(f"[ERROR] Runtime.MarshalError: {message}", file=sys.stderr)
            failure = {"errorType": "Runtime.MarshalError", "errorMessage": message, "stackTrace": []}
            _send(responses, {"type": "error", "requestId": request_id, **failure})
            continue
        head = json.dumps({"type": "result", "requestId": request_id})[:-1]
        _write(responses, f'{head}, "payload": {payload}}}\n'.encode())
