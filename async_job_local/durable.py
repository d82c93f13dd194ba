"""Lambda durable functions, locally: the durable execution SDK's own service emulation, run in this process.

The executor, store, scheduler and checkpoint processor are ``aws_durable_execution_sdk_python_testing``'s,
wired as its ``WebRunner`` wires them, with one difference: each handler invocation runs in the durable
worker's ``LocalFunction`` (a child process with the template's environment), so the function's ``Timeout``
is the limit of every invocation, and an invocation that times out or crashes is a failed invocation that the
service retries, as Lambda's is.

``LocalDurableService`` serves one Lambda endpoint (``endpoint_url``, given to the functions as
``AWS_ENDPOINT_URL_LAMBDA``):

- ``Invoke`` (``POST /2015-03-31/functions/{FunctionName}/invocations``) with ``InvocationType=Event`` of a
  durable function's version starts an execution named ``DurableExecutionName``: ``202`` and the
  ``X-Amz-Durable-Execution-Arn`` header. The same name with the same payload answers the same execution;
  with another payload, ``DurableExecutionAlreadyStartedException`` (409).
- ``ListDurableExecutionsByFunction`` (``GET /2025-12-01/functions/{FunctionName}/durable-executions``) with
  ``Statuses``, ``StartedAfter``/``StartedBefore``, ``DurableExecutionName``, ``Marker``/``MaxItems``.
- Every other durable-execution route (``GetDurableExecution``, ``StopDurableExecution``,
  ``CheckpointDurableExecution``, ``GetDurableExecutionState``, ``GetDurableExecutionHistory``, the
  callbacks) goes to the testing package's own route handlers.

Errors carry ``X-Amzn-ErrorType``, so boto3 raises them as their modelled exceptions.

Example
-------
>>> service = LocalDurableService(region="us-east-1", account_id="123456789012", logs=FunctionLogs(sys.stderr))
>>> service.add_function(DurableFunction(function, version="1", execution_timeout=7200, retention_days=14))
>>> service.start()
>>> boto3.client("lambda", endpoint_url=service.endpoint_url).invoke(
...     FunctionName=f"{function.arn}:1", InvocationType="Event", DurableExecutionName="job-1", Payload=b"{}"
... )["DurableExecutionArn"]
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import socket
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlparse

from aws_durable_execution_sdk_python.execution import DurableExecutionInvocationInput
from aws_durable_execution_sdk_python_testing.checkpoint.processor import CheckpointProcessor
from aws_durable_execution_sdk_python_testing.exceptions import (
    AwsApiException,
    DurableFunctionsTestError,
    InvalidParameterValueException,
    ResourceNotFoundException,
)
from aws_durable_execution_sdk_python_testing.executor import Executor
from aws_durable_execution_sdk_python_testing.invoker import InvokeResponse, LambdaInvoker
from aws_durable_execution_sdk_python_testing.model import (
    ListDurableExecutionsByFunctionResponse,
    StartDurableExecutionInput,
)
from aws_durable_execution_sdk_python_testing.scheduler import Scheduler
from aws_durable_execution_sdk_python_testing.stores.memory import InMemoryExecutionStore
from aws_durable_execution_sdk_python_testing.web.handlers import (
    CheckpointDurableExecutionHandler,
    EndpointHandler,
    GetDurableExecutionHandler,
    GetDurableExecutionHistoryHandler,
    GetDurableExecutionStateHandler,
    HealthHandler,
    ListDurableExecutionsHandler,
    SendDurableExecutionCallbackFailureHandler,
    SendDurableExecutionCallbackHeartbeatHandler,
    SendDurableExecutionCallbackSuccessHandler,
    StopDurableExecutionHandler,
)
from aws_durable_execution_sdk_python_testing.web.models import HTTPResponse
from aws_durable_execution_sdk_python_testing.web.routes import (
    CallbackFailureRoute,
    CallbackHeartbeatRoute,
    CallbackSuccessRoute,
    CheckpointDurableExecutionRoute,
    GetDurableExecutionHistoryRoute,
    GetDurableExecutionRoute,
    GetDurableExecutionStateRoute,
    HealthRoute,
    ListDurableExecutionsRoute,
    Route,
    Router,
    StopDurableExecutionRoute,
)
from aws_durable_execution_sdk_python_testing.web.server import RequestHandler

from async_job_local.functions import FunctionLogs, LocalFunction

__all__ = ["DurableExecutionAlreadyStartedError", "DurableFunction", "LocalDurableService"]

#: Lambda's own limit of one invocation: the executor's guard over every invocation (the function's ``Timeout``,
#: enforced by its ``LocalFunction``, is always lower), with headroom for waiting for a free environment.
_INVOCATION_GUARD_SECONDS: Final = 900 + 60
_INVOKE_PATH: Final = re.compile(r"^/2015-03-31/functions/(?P<function>[^/]+)/invocations$")
_LIST_PATH: Final = re.compile(r"^/2025-12-01/functions/(?P<function>[^/]+)/durable-executions$")
_ARN: Final = re.compile(
    r"^arn:aws[a-zA-Z-]*:lambda:[^:]+:\d{12}:function:(?P<name>[^:]+)(?::(?P<qualifier>.+))?$"
)
_TERMINAL_OR_RUNNING: Final = frozenset({"RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"})
_DEFAULT_MAX_ITEMS: Final = 50
#: The testing package's logger: its warnings (a failed invocation, a retry) go to the function logs.
_SERVICE_LOGGER: Final = "aws_durable_execution_sdk_python_testing"


class _LogsHandler(logging.Handler):
    """The service's log records as ``durable | ...`` lines of the function logs."""

    def __init__(self, logs: FunctionLogs) -> None:
        super().__init__(logging.WARNING)
        self.logs = logs

    def emit(self, record: logging.LogRecord) -> None:
        self.logs.write("durable", f"{record.levelname} {record.getMessage()}")


@dataclass(frozen=True)
class DurableFunction:
    """A function with a ``DurableConfig``, invoked through one published version.

    Attributes
    ----------
    function
        Its local function: every handler invocation of its executions runs there.
    version
        The version number its ``AWS::Lambda::Version`` publishes (executions run that version).
    execution_timeout
        ``DurableConfig.ExecutionTimeout``, seconds: an execution still running then ends ``TIMED_OUT``.
    retention_days
        ``DurableConfig.RetentionPeriodInDays`` (recorded on the execution; locally executions live as long
        as the runtime).
    """

    function: LocalFunction
    version: str
    execution_timeout: int
    retention_days: int

    @property
    def name(self) -> str:
        """The function's name."""
        return self.function.name

    @property
    def version_arn(self) -> str:
        """The qualified ARN executions are started on (``Ref`` of its ``AWS::Lambda::Version``)."""
        return f"{self.function.arn}:{self.version}"


class DurableExecutionAlreadyStartedError(AwsApiException):
    """An execution of that name was started with another payload (Lambda's
    ``DurableExecutionAlreadyStartedException``, 409)."""

    http_status_code = 409

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)

    def to_dict(self) -> dict[str, Any]:
        return {"Type": "DurableExecutionAlreadyStartedException", "message": self.message}


class _InvocationFailedError(DurableFunctionsTestError):
    """A handler invocation ended with Lambda's error document (a timeout, a crash, a function error)."""


class _ChildProcessInvoker(LambdaInvoker):
    """The testing package's Lambda invoker, invoking each handler in its ``LocalFunction`` rather than over
    HTTP (its invocation input, paginated as the service pages it, is the package's own)."""

    def __init__(self, functions: Mapping[str, DurableFunction]) -> None:
        super().__init__(lambda_client=None)
        self._functions = functions

    def invoke(
        self,
        function_name: str,
        input: DurableExecutionInvocationInput,
        endpoint_url: str | None = None,
        tenant_id: str | None = None,
        account_id: str | None = None,
        region_name: str | None = None,
    ) -> InvokeResponse:
        name = function_name.split(":", 1)[0]
        durable = self._functions.get(name)
        if durable is None:
            raise ResourceNotFoundException(f"Function not found: {function_name}")
        result = durable.function.invoke(input.to_json_dict())
        if result.error is not None:
            # Lambda's failed invocation (Sandbox.Timedout, Runtime.ExitError, an unhandled error): the service
            # counts it and invokes again after a backoff, failing the execution after a few in a row.
            raise _InvocationFailedError(
                f"{result.error.get('errorType')}: {result.error.get('errorMessage')}"
            )
        return InvokeResponse.from_output(result.payload, result.request_id)


@dataclass(frozen=True)
class _Started:
    arn: str
    payload: str


class LocalDurableService:
    """The durable execution service of the local runtime and its Lambda endpoint.

    Parameters
    ----------
    region, account_id
        What execution and function ARNs carry.
    logs
        Where the service's own lines go (``durable | ...``).
    host
        Where the endpoint listens (a free port is picked).
    """

    def __init__(self, *, region: str, account_id: str, logs: FunctionLogs, host: str = "127.0.0.1") -> None:
        self.region = region
        self.account_id = account_id
        self.logs = logs
        self.host = host
        self.functions: dict[str, DurableFunction] = {}
        self._started: dict[tuple[str, str], _Started] = {}
        self._start_lock = threading.Lock()
        self._scheduler: Scheduler | None = None
        self._executor: Executor | None = None
        self._server: _EndpointServer | None = None
        self._thread: threading.Thread | None = None
        self._log_handler: _LogsHandler | None = None

    def add_function(self, durable: DurableFunction) -> None:
        """Serve ``durable`` (before ``start``)."""
        self.functions[durable.name] = durable

    @property
    def executor(self) -> Executor:
        """The testing package's executor (started by ``start``)."""
        if self._executor is None:
            raise RuntimeError("the durable service is not started")
        return self._executor

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``: the Lambda endpoint of the functions (``AWS_ENDPOINT_URL_LAMBDA``)."""
        if self._server is None:
            raise RuntimeError("the durable service is not started")
        return f"http://{self.host}:{self._server.server_port}"

    def start(self) -> LocalDurableService:
        """Start the scheduler, the executor and the endpoint (wired as ``WebRunner.start`` wires them)."""
        self._log_handler = _LogsHandler(self.logs)
        service_logger = logging.getLogger(_SERVICE_LOGGER)
        service_logger.addHandler(self._log_handler)
        service_logger.propagate = False  # not on the runtime's own standard error, through the root logger
        store = InMemoryExecutionStore()
        self._scheduler = Scheduler()
        processor = CheckpointProcessor(store, self._scheduler)
        self._executor = Executor(
            store=store,
            scheduler=self._scheduler,
            invoker=_ChildProcessInvoker(self.functions),
            checkpoint_processor=processor,
            invocation_timeout_seconds=_INVOCATION_GUARD_SECONDS,
            region=self.region,
        )
        processor.add_execution_observer(self._executor)
        self._scheduler.start()  # type: ignore[no-untyped-call]
        self._server = _EndpointServer((self.host, 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="durable-endpoint", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the endpoint, the executor and the scheduler (running executions are abandoned)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._executor is not None:
            self._executor.shutdown()
        if self._scheduler is not None:
            self._scheduler.stop()  # type: ignore[no-untyped-call]
            self._scheduler = None
        if self._log_handler is not None:
            service_logger = logging.getLogger(_SERVICE_LOGGER)
            service_logger.removeHandler(self._log_handler)
            service_logger.propagate = True
            self._log_handler = None

    # ------------------------------------------------------------------------------------------- requests

    def resolve(self, identifier: str, qualifier: str | None = None) -> tuple[DurableFunction, str | None]:
        """The durable function ``identifier`` names (a name, ``name:qualifier`` or an ARN) and the qualifier."""
        match = _ARN.match(identifier)
        if match is not None:
            name, given = match["name"], match["qualifier"]
        else:
            name, _, given = identifier.partition(":")
            given = given or None
        durable = self.functions.get(name)
        if durable is None:
            raise ResourceNotFoundException(
                f"Function not found: arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
            )
        return durable, given or qualifier

    def start_execution(self, identifier: str, qualifier: str | None, name: str | None, payload: str) -> str:
        """Start an execution of the function version ``identifier`` names; return its ARN.

        Raises ``DurableExecutionAlreadyStartedError`` when ``name`` was started with another payload.
        """
        durable, version = self.resolve(identifier, qualifier)
        if version != durable.version:
            raise InvalidParameterValueException(
                f"{identifier}: a durable function is invoked through a published version "
                f"(qualifier {durable.version}, e.g. {durable.version_arn}); given {version or 'no qualifier'}"
            )
        execution_name = name or str(uuid.uuid4())
        with self._start_lock:
            started = self._started.get((durable.name, execution_name))
            if started is not None:
                if started.payload == payload:
                    return started.arn
                raise DurableExecutionAlreadyStartedError(
                    f"Durable execution {execution_name} of {durable.name} has already been started "
                    f"({started.arn}) with another payload"
                )
            output = self.executor.start_execution(
                StartDurableExecutionInput(
                    account_id=self.account_id,
                    function_name=durable.name,
                    function_qualifier=durable.version,
                    execution_name=execution_name,
                    execution_timeout_seconds=durable.execution_timeout,
                    execution_retention_period_days=durable.retention_days,
                    input=payload,
                )
            )
            arn = str(output.execution_arn)
            self._started[(durable.name, execution_name)] = _Started(arn, payload)
        self.logs.write("durable", f"started {arn} ({durable.version_arn}, name {execution_name})")
        return arn

    def list_by_function(self, identifier: str, query: Mapping[str, list[str]]) -> dict[str, Any]:
        """``ListDurableExecutionsByFunction``: every status of ``Statuses``, the start-time window, pages."""
        durable, _ = self.resolve(identifier, _first(query, "Qualifier"))
        statuses = set(query.get("Statuses", [])) or _TERMINAL_OR_RUNNING
        unknown = statuses - _TERMINAL_OR_RUNNING
        if unknown:
            raise InvalidParameterValueException(f"Statuses: unknown status(es) {', '.join(sorted(unknown))}")
        after = _timestamp(_first(query, "StartedAfter"), "StartedAfter")
        before = _timestamp(_first(query, "StartedBefore"), "StartedBefore")
        reverse = (_first(query, "ReverseOrder") or "false").lower() == "true"
        name = _first(query, "DurableExecutionName")
        found = self.executor.list_executions(
            function_name=durable.name, execution_name=name, max_items=10**9, reverse_order=reverse
        ).durable_executions
        matching = [
            summary
            for summary in found
            if summary.status in statuses
            and (after is None or _aware(summary.start_timestamp) >= after)
            and (before is None or _aware(summary.start_timestamp) <= before)
        ]
        offset = int(_first(query, "Marker") or 0)
        limit = int(_first(query, "MaxItems") or _DEFAULT_MAX_ITEMS)
        page = matching[offset : offset + limit]
        next_marker = str(offset + limit) if offset + limit < len(matching) else None
        return ListDurableExecutionsByFunctionResponse(
            durable_executions=page, next_marker=next_marker
        ).to_dict()


def _first(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _timestamp(value: str | None, name: str) -> dt.datetime | None:
    """A query-string timestamp as boto3 sends it (ISO 8601), or epoch seconds."""
    if value is None:
        return None
    try:
        return dt.datetime.fromtimestamp(float(value), dt.UTC)
    except ValueError:
        pass
    try:
        return _aware(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        raise InvalidParameterValueException(f"{name}: {value!r} is not a timestamp") from None


class _EndpointServer(ThreadingHTTPServer):
    """The Lambda endpoint: ``Invoke`` and the by-function listing here, the rest by the testing package's
    handlers (what its ``RequestHandler`` reads from its server: ``executor``, ``router``,
    ``endpoint_handlers``)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: LocalDurableService) -> None:
        self.service = service
        self.executor = service.executor
        reused: dict[type[Route], type[EndpointHandler]] = {
            GetDurableExecutionRoute: GetDurableExecutionHandler,
            CheckpointDurableExecutionRoute: CheckpointDurableExecutionHandler,
            StopDurableExecutionRoute: StopDurableExecutionHandler,
            GetDurableExecutionStateRoute: GetDurableExecutionStateHandler,
            GetDurableExecutionHistoryRoute: GetDurableExecutionHistoryHandler,
            ListDurableExecutionsRoute: ListDurableExecutionsHandler,
            CallbackSuccessRoute: SendDurableExecutionCallbackSuccessHandler,
            CallbackFailureRoute: SendDurableExecutionCallbackFailureHandler,
            CallbackHeartbeatRoute: SendDurableExecutionCallbackHeartbeatHandler,
            HealthRoute: HealthHandler,
        }
        self.router = Router(list(reused))
        self.endpoint_handlers = {route: handler(self.executor) for route, handler in reused.items()}
        super().__init__(address, _EndpointRequestHandler)

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().server_bind()


class _EndpointRequestHandler(RequestHandler):
    server: _EndpointServer

    def do_POST(self) -> None:
        path = urlparse(self.path).path
        match = _INVOKE_PATH.match(path)
        if match is None:
            super().do_POST()
            return
        self._answer(lambda: self._invoke(unquote(match["function"])))

    def do_GET(self) -> None:
        parsed = urlparse(self.path)
        match = _LIST_PATH.match(parsed.path)
        if match is None:
            super().do_GET()
            return
        query = parse_qs(parsed.query)
        self._answer(
            lambda: HTTPResponse.create_json(
                200, self.server.service.list_by_function(unquote(match["function"]), query)
            )
        )

    def _answer(self, respond: Any) -> None:
        try:
            response = respond()
        except AwsApiException as error:
            response = HTTPResponse.create_error_from_exception(error)
        self._send_response(response)

    def _invoke(self, identifier: str) -> HTTPResponse:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b"{}"
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type != "Event":
            raise InvalidParameterValueException(
                f"InvocationType {invocation_type}: the local runtime starts durable executions with "
                "InvocationType=Event (an asynchronous invoke) only"
            )
        try:
            payload = body.decode("utf-8")
            json.loads(payload)
        except ValueError:
            return HTTPResponse.create_json(
                400,
                {
                    "Type": "InvalidRequestContentException",
                    "message": "Could not parse request body into json",
                },
            )
        qualifier = _first(parse_qs(urlparse(self.path).query), "Qualifier")
        service = self.server.service
        arn = service.start_execution(
            identifier, qualifier, self.headers.get("X-Amz-Durable-Execution-Name"), payload
        )
        durable, _ = service.resolve(identifier, qualifier)
        return HTTPResponse(
            status_code=202,
            headers={
                "Content-Type": "application/json",
                "X-Amz-Durable-Execution-Arn": arn,
                "X-Amz-Executed-Version": durable.version,
                "x-amzn-RequestId": str(uuid.uuid4()),
            },
            body={},
        )

    def _send_response(self, response: HTTPResponse) -> None:
        # The testing package names the error in the body's "Type"; boto3 reads it from X-Amzn-ErrorType.
        if response.status_code >= 400 and isinstance(response.body, Mapping):
            kind = response.body.get("Type") or response.body.get("__type")
            if isinstance(kind, str):
                response.headers.setdefault("X-Amzn-ErrorType", kind)
        super()._send_response(response)

    def log_message(self, format_string: str, *args: Any) -> None:
        """Quiet: the functions' logs show what they did."""
