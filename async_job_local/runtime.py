"""Every ``AsyncJobApi`` of a synthesized app, running on this machine.

For each API: its table and queues are created on the backend from their template properties (its buckets,
secrets and event buses too, when marked or referenced); its functions get warm execution environments with
their template environment (CloudFormation references resolved to the local resources, and
``ASYNC_JOB_LOCAL_RUNTIME=1``); its SQS and DynamoDB Streams event source mappings get pollers; the event buses
its functions name in ``ASYNC_JOB_EVENT_BUS`` are watched; its REST API is served under ``/<slug>`` on one HTTP
server for the whole app; its WebSocket API, if it has one, on ports of its own
(:mod:`async_job_local.websocket`). The deployed URLs of the REST and WebSocket APIs in the functions'
environments (``https://{id}.execute-api.{region}.amazonaws.com/{stage}``, ``wss://...``) are rewritten to the
local servers' URLs.

An app with long job types (durable workers) gets the durable execution service (``async_job_local.durable``):
its Lambda endpoint is every function's ``AWS_ENDPOINT_URL_LAMBDA``, each durable worker's executions run its
published version (``Ref`` of its ``AWS::Lambda::Version``, ``<function ARN>:<n>``), and the ``rate(...)``
rules that target a starter (the sweep) invoke it with a Scheduled Event on their period.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final

from async_job_local.assembly import (
    ApiSpec,
    AssemblyError,
    CloudAssembly,
    EventSourceSpec,
    FunctionSpec,
    StackSpec,
    UnresolvableError,
)
from async_job_local.backend import Backend, EmbeddedMotoBackend, LocalQueue, bucket_name, local_name
from async_job_local.environment import (
    EVENT_BUS_VARIABLE,
    LOCAL_RUNTIME_VARIABLE,
    lambda_reserved_environment,
    resolve_environment,
)
from async_job_local.event_watcher import EventBusWatcher, EventLog, bus_name_of
from async_job_local.functions import SANDBOX, FunctionLogs, LocalFunction
from async_job_local.handler_check import HandlerCheck, check_handlers
from async_job_local.poller import SqsEventSource
from async_job_local.schedule import ScheduledInvoker
from async_job_local.server import (
    DEFAULT_PRINCIPAL,
    DEFAULT_REQUEST_TIMEOUT,
    GatewayServer,
    LocalApi,
    LocalRoute,
)
from async_job_local.sigv4 import LocalCredential, SigV4Verifier
from async_job_local.stream_poller import StreamEventSource
from async_job_local.websocket import LocalWebSocketApi, local_api_id
from lambda_handlers.contract import Role

if TYPE_CHECKING:  # imported when an app has a long type: the durable SDK's testing service takes ~0.4 s
    from async_job_local.durable import LocalDurableService

__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_PORT", "LocalRuntime"]

DEFAULT_PORT: Final = 3000
#: Pollers per SQS event source mapping (and so worker environments) unless the mapping's
#: ``MaximumConcurrency`` is lower: a laptop is not Lambda's fleet.
DEFAULT_CONCURRENCY: Final = 4
#: Environments per API function (requests beyond wait for one).
DEFAULT_API_CONCURRENCY: Final = 8
#: Resource types created when the construct marks them, even if no function refers to them.
_CREATED_WHEN_MARKED: Final = frozenset(
    {"AWS::S3::Bucket", "AWS::SecretsManager::Secret", "AWS::Events::EventBus", "AWS::DynamoDB::Table"}
)
#: The variable that points a function's Lambda client (the durable SDK's, the starter's) at the local service.
LAMBDA_ENDPOINT_VARIABLE: Final = "AWS_ENDPOINT_URL_LAMBDA"


@dataclass(frozen=True)
class _Resource:
    type: str
    attributes: Mapping[str | None, str]  # None: what Ref returns


def _warn(message: str) -> None:
    print(f"async-job local: warning: {message}", file=sys.stderr)


#: How long stopping waits for the pollers, all together, before the environments' processes are gone anyway.
_STOP_SECONDS: Final = 3.0


class LocalRuntime:
    """Run the job APIs of ``assembly`` locally: tables, queues, functions, pollers and the HTTP API.

    Parameters
    ----------
    assembly
        From ``load_assembly(synthesize(...))``.
    backend
        Where tables and queues live. Default: moto embedded in this process (stopped by ``close``).
    host, port
        Where the APIs are served. ``port=0`` picks a free port.
    concurrency
        Pollers per SQS event source mapping (so concurrent worker invocations), unless the mapping's
        ``MaximumConcurrency`` is lower. Default: 4.
    api_concurrency
        Execution environments per API function. Default: 8.
    logs
        Where the functions' output goes. Default: standard error.
    default_principal
        The caller of requests without the ``X-Async-Job-Principal`` header. Default: ``local-user``.
    request_timeout
        Seconds a request may stop arriving before the API server answers it ``408``. Default: 5.
    check_handlers
        Import every job type's handler at start-up, in its worker's environment, and raise
        ``HandlerError`` naming those that cannot be loaded. Default: True.
    sigv4_credentials
        Default: None, signatures are not checked (the ``X-Async-Job-Principal`` header names the caller).
        Given (``async_job_local.sigv4.load_credentials(path).values()``), every route with IAM authorization
        requires a SigV4 signature of one of them, scoped to the backend's region, and the signer is the
        caller; the principal header is ignored on those routes.
    events_file
        Append every event put on a watched event bus to this file, one JSON document a line. The events are
        written to ``logs`` too (``events:<bus> | {...}``). Default: None, ``logs`` only.
    websocket_port
        The port of the first WebSocket API's endpoint; its ``@connections`` management API is on the next
        one, and each further WebSocket API takes the two after. Default: ``port + 1`` (free ports when
        ``port`` is 0).
    sweep_interval
        Seconds between the events of every ``rate(...)`` schedule rule that targets a starter (a long type's
        sweep). Default: None, each rule's own rate (``rate(5 minutes)``: 300 s).

    Example
    -------
    >>> assembly = load_assembly(synthesize("app.py", cwd=Path.cwd(), outdir=Path(tempfile.mkdtemp())))
    >>> with LocalRuntime(assembly, port=0) as runtime:
    ...     print(runtime.apis[0].jobs_url)
    """

    def __init__(
        self,
        assembly: CloudAssembly,
        *,
        backend: Backend | None = None,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        concurrency: int = DEFAULT_CONCURRENCY,
        api_concurrency: int = DEFAULT_API_CONCURRENCY,
        logs: FunctionLogs | None = None,
        default_principal: str = DEFAULT_PRINCIPAL,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        warn: Callable[[str], None] = _warn,
        check_handlers: bool = True,
        sigv4_credentials: Iterable[LocalCredential] | None = None,
        events_file: Path | None = None,
        websocket_port: int | None = None,
        sweep_interval: float | None = None,
    ) -> None:
        if not assembly.apis:
            raise AssemblyError(f"the app in {assembly.directory} has no AsyncJobApi")
        self.assembly = assembly
        self.host = host
        self.port = port
        self.concurrency = concurrency
        self.api_concurrency = api_concurrency
        self.logs = logs if logs is not None else FunctionLogs(sys.stderr)
        self.default_principal = default_principal
        self.request_timeout = request_timeout
        self._warn = warn
        self.check_handlers = check_handlers
        self.sigv4_credentials = None if sigv4_credentials is None else tuple(sigv4_credentials)
        self.verifier: SigV4Verifier | None = None
        self._owns_backend = backend is None
        self._backend = backend
        self._resources: dict[tuple[str, str], _Resource] = {}
        self.apis: list[LocalApi] = []
        self.functions: dict[tuple[str, str], LocalFunction] = {}
        self.event_sources: list[SqsEventSource] = []
        self.stream_sources: list[StreamEventSource] = []
        self.event_watchers: list[EventBusWatcher] = []
        self.events_file = events_file
        self._event_log: EventLog | None = None
        self.server: GatewayServer | None = None
        self.websocket_port = websocket_port
        #: The WebSocket APIs served, by (stack name, logical id).
        self.websockets: dict[tuple[str, str], LocalWebSocketApi] = {}
        self.account_id = "123456789012"
        self.sweep_interval = sweep_interval
        self.durable: LocalDurableService | None = None
        self.schedules: list[ScheduledInvoker] = []

    @property
    def backend(self) -> Backend:
        """The backend (started by ``start``)."""
        if self._backend is None:
            raise RuntimeError("the runtime is not started")
        return self._backend

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> LocalRuntime:
        """Create the resources, start the environments' pools, the pollers and the HTTP server."""
        try:
            if self._backend is None:
                self._backend = EmbeddedMotoBackend()
            if any(job_type.long for spec in self.assembly.apis for job_type in spec.job_types.values()):
                from async_job_local.durable import LocalDurableService

                self.durable = LocalDurableService(
                    region=self.backend.region, account_id=self.account_id, logs=self.logs
                ).start()
            for spec in self.assembly.apis:
                self.apis.append(self._build_api(spec))
            self._watch_event_buses()
            if self.check_handlers:
                check_handlers(self._handler_checks())
            if self.sigv4_credentials is not None:
                self.verifier = SigV4Verifier(self.sigv4_credentials, region=self.backend.region)
            self.server = GatewayServer(
                self.apis,
                host=self.host,
                port=self.port,
                account_id=self.account_id,
                region=self.backend.region,
                default_principal=self.default_principal,
                request_timeout=self.request_timeout,
                verifier=self.verifier,
            )
            self._serve_websockets()
            self._rewrite_urls()
            self.server.start()
            for websocket in self.websockets.values():
                websocket.start()
            for source in self.event_sources:
                source.start()
            for stream in self.stream_sources:
                stream.start()
            for schedule in self.schedules:
                schedule.start()
            for function in self.functions.values():
                function.prewarm()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop everything: pollers, the server, every environment (killed), and an embedded backend."""
        for source in self.event_sources:
            source.stop()
        for stream in self.stream_sources:
            stream.stop()
        for watcher in self.event_watchers:
            watcher.stop()
        for websocket in self.websockets.values():
            websocket.close()  # before the functions: its open connections' $disconnect still runs
        self.websockets = {}
        for schedule in self.schedules:
            schedule.stop()
        if self.durable is not None:
            self.durable.close()
            self.durable = None
        if self.server is not None:
            self.server.close()
            self.server = None
        for function in self.functions.values():
            function.close()
        # One deadline for every poller (they were all told to stop above): an app of many queues stops in the
        # same 3 s as an app of one, not 3 s per poller.
        deadline = time.monotonic() + _STOP_SECONDS
        pollers: list[SqsEventSource | StreamEventSource | EventBusWatcher | ScheduledInvoker] = [
            *self.event_sources,
            *self.stream_sources,
            *self.event_watchers,
            *self.schedules,
        ]
        for poller in pollers:
            poller.join(timeout=max(0.0, deadline - time.monotonic()))
        self.event_watchers = []
        self.schedules = []
        if self._event_log is not None:
            self._event_log.close()
            self._event_log = None
        if self._backend is not None and self._owns_backend:
            self._backend.close()
            self._backend = None

    def api(self, name: str | None = None) -> LocalApi:
        """The API whose construct path or slug is ``name`` (or the only one when None)."""
        if name is None:
            if len(self.apis) != 1:
                raise KeyError(f"the app has {len(self.apis)} job APIs; name one of: {self._names()}")
            return self.apis[0]
        for api in self.apis:
            if name in (api.spec.path, api.prefix):
                return api
        raise KeyError(f"no job API {name!r}; the app has: {self._names()}")

    def websocket(self, api: LocalApi) -> LocalWebSocketApi:
        """The WebSocket API of ``api`` (``KeyError`` when it has none)."""
        for spec in api.spec.websockets:
            found = self.websockets.get((api.spec.stack.stack_name, spec.logical_id))
            if found is not None:
                return found
        raise KeyError(f"{api.spec.path} has no WebSocket API (AsyncJobApi(websocket=...))")

    def websocket_url(self, api: LocalApi) -> str:
        """Where clients of ``api``'s WebSocket API connect: ``ws://127.0.0.1:<port>/<stage>``."""
        return self.websocket(api).url

    def _serve_websockets(self) -> None:
        """Bind every WebSocket API's two ports (the gateway's port is known: the defaults follow it)."""
        assert self.server is not None
        base = self.websocket_port
        if base is None:
            base = 0 if self.port == 0 else self.server.port + 1
        for api in self.apis:
            stack = api.spec.stack
            for spec in api.spec.websockets:
                port = 0 if base == 0 else base + 2 * len(self.websockets)
                websocket = LocalWebSocketApi(
                    spec,
                    api_id=local_api_id(stack.stack_name, spec.logical_id),
                    host=self.host,
                    port=port,
                    management_port=0 if port == 0 else port + 1,
                    account_id=self.account_id,
                    region=self.backend.region,
                    default_principal=self.default_principal,
                    verifier=self.verifier,
                )
                self.websockets[(stack.stack_name, spec.logical_id)] = websocket
                websocket.attach(
                    {
                        logical_id: self.functions[(stack.stack_name, logical_id)]
                        for logical_id in spec.functions
                    }
                )

    def _rewrite_urls(self) -> None:
        """Point the functions' variables that hold a deployed URL of an API of the app at the local server:
        ``https://{restApiId}.execute-api.{region}.amazonaws.com/{stage}`` at ``http://127.0.0.1:<port>/<slug>``,
        a WebSocket API's ``wss://`` and ``https://`` (management) URLs at its local ports. The environments
        start after this (at ``prewarm`` or the first invocation)."""
        region = self.backend.region
        rest = {}
        for api in self.apis:
            stack = api.spec.stack
            rest_id = local_api_id(stack.stack_name, api.spec.rest_api)
            host = f"https://{rest_id}.execute-api.{region}.amazonaws.com"
            rest[f"{host}/{api.spec.stage_name}"] = api.base_url
            rest[host] = api.base_url  # an URL without the stage (rare): the API's prefix is the stage
        for function in self.functions.values():
            for name, value in function.environment.items():
                rewritten = value
                for deployed, local in rest.items():
                    rewritten = rewritten.replace(deployed, local)
                for websocket in self.websockets.values():
                    rewritten = websocket.rewrite(rewritten)
                function.environment[name] = rewritten

    def _handler_checks(self) -> list[HandlerCheck]:
        checks = []
        for api in self.apis:
            for job_type in api.spec.job_types.values():
                function = self.functions[(api.spec.stack.stack_name, job_type.worker.logical_id)]
                checks.append(HandlerCheck(f"{api.spec.path}, job type {job_type.name!r}", function))
        return checks

    def _names(self) -> str:
        return ", ".join(f"{api.spec.path} ({api.prefix})" for api in self.apis)

    def queue(self, api: LocalApi, role: str = Role.QUEUE, job_type: str | None = None) -> LocalQueue:
        """The local queue of ``api`` with the role ``queue`` or ``dead-letter-queue``, of ``job_type`` (or of
        the API's only type when None)."""
        if job_type is None and len(api.spec.job_types) != 1:
            raise KeyError(f"{api.spec.path} has job types {', '.join(api.spec.job_types)}: name one")
        spec = api.spec.job_types[job_type or next(iter(api.spec.job_types))]
        logical_id = spec.queue if role == Role.QUEUE else spec.dead_letter_queue
        if logical_id is None:
            raise KeyError(f"{api.spec.path}, job type {spec.name!r}: the template marks no {role}")
        resource = self._resource(api.spec.stack, logical_id)
        return LocalQueue(url=resource.attributes[None], arn=resource.attributes["Arn"])

    def attribute(self, api: LocalApi, logical_id: str, attribute: str | None = None) -> str:
        """What ``Ref`` (``attribute`` None) or ``Fn::GetAtt`` of the resource ``logical_id`` of ``api``'s stack
        gives locally, e.g. a bucket's name or a secret's ARN."""
        return self._lookup(api.spec.stack)(logical_id, attribute)

    def table_name(self, api: LocalApi) -> str:
        """The local name of the status table of ``api``."""
        return self._resource(api.spec.stack, api.spec.roles[Role.TABLE]).attributes[None]

    # ------------------------------------------------------------------------------------------ resources

    def _resource(self, stack: StackSpec, logical_id: str) -> _Resource:
        key = (stack.stack_name, logical_id)
        if key in self._resources:
            return self._resources[key]
        kind = stack.resources.get(logical_id, {}).get("Type")
        backend = self.backend
        if kind == "AWS::DynamoDB::Table":
            table = stack.table(logical_id)
            name = local_name(stack.stack_name, logical_id, limit=255)
            backend.ensure_table(name, table.properties)
            arn = f"arn:aws:dynamodb:{backend.region}:{self.account_id}:table/{name}"
            attributes: dict[str | None, str] = {None: name, "Arn": arn}
            stream_arn = backend.stream_arn(name) if "StreamSpecification" in table.properties else None
            if stream_arn is not None:
                attributes["StreamArn"] = stream_arn
            resource = _Resource(kind, attributes)
        elif isinstance(kind, str) and kind in _OTHER_RESOURCES:
            resource = _Resource(kind, _OTHER_RESOURCES[kind](self, stack, logical_id))
        elif kind == "AWS::SQS::Queue":
            spec = stack.queue(logical_id)
            dead_letter_arn = None
            if spec.dead_letter_target is not None:
                dead_letter_arn = self._resource(stack, spec.dead_letter_target).attributes["Arn"]
            name = local_name(stack.stack_name, logical_id, suffix=".fifo" if spec.fifo else "")
            queue = backend.ensure_queue(name, spec.properties, dead_letter_arn)
            self.account_id = queue.arn.split(":")[4] or self.account_id
            resource = _Resource(
                kind, {None: queue.url, "Arn": queue.arn, "QueueName": name, "QueueUrl": queue.url}
            )
        elif kind in ("AWS::ApiGatewayV2::Api", "AWS::ApiGateway::RestApi"):
            api_id = local_api_id(stack.stack_name, logical_id)
            host = f"{api_id}.execute-api.{backend.region}.amazonaws.com"
            scheme = "https" if kind == "AWS::ApiGateway::RestApi" else "wss"
            resource = _Resource(
                kind,
                {
                    None: api_id,
                    "ApiId": api_id,
                    "ApiEndpoint": f"{scheme}://{host}",
                    "RootResourceId": "root",
                },
            )
        elif kind in ("AWS::ApiGatewayV2::Stage", "AWS::ApiGateway::Stage"):
            stage_name = stack.resources[logical_id].get("Properties", {}).get("StageName")
            if not isinstance(stage_name, str):
                raise UnresolvableError(f"{logical_id} ({kind}) has no literal StageName")
            resource = _Resource(kind, {None: stage_name})
        elif kind == "AWS::Lambda::Function":
            name = local_name(stack.stack_name, logical_id, limit=64)
            arn = f"arn:aws:lambda:{backend.region}:{self.account_id}:function:{name}"
            resource = _Resource(kind, {None: name, "Arn": arn})
        elif kind == "AWS::Lambda::Version":
            version = next(v for v in stack.versions() if v.logical_id == logical_id)
            function_arn = self._resource(stack, version.function).attributes["Arn"]
            resource = _Resource(
                kind,
                {
                    None: f"{function_arn}:{version.number}",
                    "Version": str(version.number),
                    "FunctionArn": function_arn,
                },
            )
        else:
            raise UnresolvableError(f"{logical_id} ({kind or 'not in the template'}) does not exist locally")
        self._resources[key] = resource
        return resource

    def _bucket(self, stack: StackSpec, logical_id: str) -> dict[str | None, str]:
        props = stack.resources[logical_id].get("Properties", {})
        given = props.get("BucketName")
        name = given if isinstance(given, str) else bucket_name(stack.stack_name, logical_id)
        self.backend.ensure_bucket(name)
        region = self.backend.region
        return {
            None: name,
            "Arn": f"arn:aws:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
            "DualStackDomainName": f"{name}.s3.dualstack.{region}.amazonaws.com",
        }

    def _secret(self, stack: StackSpec, logical_id: str) -> dict[str | None, str]:
        props = stack.resources[logical_id].get("Properties", {})
        given = props.get("Name")
        name = given if isinstance(given, str) else local_name(stack.stack_name, logical_id, limit=256)
        arn = self.backend.ensure_secret(name, props)
        return {None: arn, "Id": arn}

    def _event_bus(self, stack: StackSpec, logical_id: str) -> dict[str | None, str]:
        props = stack.resources[logical_id].get("Properties", {})
        given = props.get("Name")
        name = given if isinstance(given, str) else local_name(stack.stack_name, logical_id, limit=256)
        arn = self.backend.ensure_event_bus(name)
        return {None: name, "Arn": arn, "Name": name}

    def _lookup(self, stack: StackSpec) -> Callable[[str, str | None], str]:
        def lookup(logical_id: str, attribute: str | None) -> str:
            pseudo = {
                "AWS::Region": self.backend.region,
                "AWS::AccountId": self.account_id,
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::StackName": stack.stack_name,
            }
            if logical_id in pseudo and attribute is None:
                return pseudo[logical_id]
            attributes = self._resource(stack, logical_id).attributes
            if attribute not in attributes:
                raise UnresolvableError(f"{logical_id}.{attribute} is not available locally")
            return attributes[attribute]

        return lookup

    # ---------------------------------------------------------------------------------------------- the API

    def _build_api(self, spec: ApiSpec) -> LocalApi:
        stack = spec.stack
        # Queues first: their ARNs give the account id every other ARN uses.
        for source in spec.event_sources:
            self._resource(stack, source.queue)
        for logical_id in spec.roles.values():
            if stack.resources.get(logical_id, {}).get("Type") in _CREATED_WHEN_MARKED:
                self._resource(stack, logical_id)
        sources = [source for source in spec.event_sources if source.enabled]
        for source in spec.event_sources:
            if not source.enabled:
                self._warn(f"{stack.stack_name}/{source.logical_id} is disabled in the template: not polled")
        pollers: dict[str, int] = {}
        for source in sources:
            pollers[source.function] = pollers.get(source.function, 0) + self._pollers(source)
        functions: dict[str, LocalFunction] = {}
        workers = [job_type.worker for job_type in spec.job_types.values()]
        starters = [job_type.starter for job_type in spec.job_types.values() if job_type.starter is not None]
        for function_spec in (*spec.functions.values(), *workers, *starters, *spec.extra_functions.values()):
            functions[function_spec.logical_id] = self._function(
                stack, function_spec, pollers.get(function_spec.logical_id, self.api_concurrency)
            )
        for source in sources:
            queue = self._resource(stack, source.queue)
            self.event_sources.append(
                SqsEventSource(
                    backend=self.backend,
                    queue=LocalQueue(url=queue.attributes[None], arn=queue.attributes["Arn"]),
                    function=functions[source.function],
                    batch_size=source.batch_size,
                    pollers=self._pollers(source),
                    report_batch_item_failures=source.report_batch_item_failures,
                )
            )
        self._stream_sources(spec, functions)
        self._durable_types(spec, functions)
        routes = [
            LocalRoute(spec=route, function=None if route.function is None else functions[route.function])
            for route in spec.routes
        ]
        return LocalApi(spec=spec, routes=routes)

    def _stream_sources(self, spec: ApiSpec, functions: Mapping[str, LocalFunction]) -> None:
        stack = spec.stack
        for source in spec.stream_sources:
            if not source.enabled:
                self._warn(f"{stack.stack_name}/{source.logical_id} is disabled in the template: not polled")
                continue
            table = self._resource(stack, source.table)
            if "StreamArn" not in table.attributes:
                self._warn(
                    f"{stack.stack_name}/{source.logical_id}: the table {source.table} has no "
                    "StreamSpecification: not polled"
                )
                continue
            self.stream_sources.append(
                StreamEventSource(
                    backend=self.backend,
                    stream_arn=table.attributes["StreamArn"],
                    function=functions[source.function],
                    spec=source,
                )
            )

    def _durable_types(self, spec: ApiSpec, functions: Mapping[str, LocalFunction]) -> None:
        """Serve each long type's durable worker on the durable service; run its starter's schedules."""
        stack = spec.stack
        for job_type in spec.job_types.values():
            durable = job_type.worker.durable
            if durable is None or self.durable is None or job_type.starter is None:
                continue
            versions = [v for v in stack.versions() if v.function == job_type.worker.logical_id]
            if not versions:
                raise AssemblyError(
                    f"{spec.path}, job type {job_type.name!r}: its durable worker {job_type.worker.logical_id} "
                    "has no AWS::Lambda::Version (durable executions run a published version)"
                )
            from async_job_local.durable import DurableFunction

            self.durable.account_id = self.account_id
            self.durable.add_function(
                DurableFunction(
                    functions[job_type.worker.logical_id],
                    version=str(versions[-1].number),
                    execution_timeout=durable.execution_timeout,
                    retention_days=durable.retention_days,
                )
            )
            for schedule in job_type.schedules:
                if not schedule.enabled:
                    self._warn(
                        f"{stack.stack_name}/{schedule.logical_id} is disabled in the template: not run"
                    )
                    continue
                rule = local_name(stack.stack_name, schedule.logical_id, limit=64)
                self.schedules.append(
                    ScheduledInvoker(
                        functions[job_type.starter.logical_id],
                        rule_arn=f"arn:aws:events:{self.backend.region}:{self.account_id}:rule/{rule}",
                        account=self.account_id,
                        region=self.backend.region,
                        period=schedule.period if self.sweep_interval is None else self.sweep_interval,
                        input=schedule.input,
                    )
                )

    def _watch_event_buses(self) -> None:
        """Watch every bus a function names in ``ASYNC_JOB_EVENT_BUS`` (a name, an ARN or ``default``)."""
        buses = {
            bus_name_of(function.environment[EVENT_BUS_VARIABLE])
            for function in self.functions.values()
            if function.environment.get(EVENT_BUS_VARIABLE)
        }
        if not buses:
            return
        self._event_log = EventLog(self.logs, self.events_file)
        for bus in sorted(buses):
            watcher = EventBusWatcher(self.backend, bus, self._event_log)
            self.event_watchers.append(watcher)
            watcher.start()

    def _pollers(self, source: EventSourceSpec) -> int:
        """Pollers of a mapping: ``concurrency``, or its ``MaximumConcurrency`` when that is lower."""
        limit = source.maximum_concurrency
        return self.concurrency if limit is None else max(1, min(limit, self.concurrency))

    def _function(self, stack: StackSpec, spec: FunctionSpec, max_environments: int) -> LocalFunction:
        key = (stack.stack_name, spec.logical_id)
        if key in self.functions:
            return self.functions[key]
        own = self._resource(stack, spec.logical_id)
        name = own.attributes[None]
        variables = resolve_environment(
            spec.environment,
            self._lookup(stack),
            lambda message: self._warn(f"{stack.stack_name}/{spec.logical_id}: {message}"),
        )
        reserved = lambda_reserved_environment(spec, name, str(SANDBOX.parent))
        lambda_endpoint = (
            {} if self.durable is None else {LAMBDA_ENDPOINT_VARIABLE: self.durable.endpoint_url}
        )
        function = LocalFunction(
            name,
            spec,
            {
                **variables,
                **reserved,
                **self.backend.child_environment(),
                **lambda_endpoint,
                LOCAL_RUNTIME_VARIABLE: "1",
            },
            arn=own.attributes["Arn"],
            max_environments=max_environments,
            logs=self.logs,
        )
        self.functions[key] = function
        return function


#: How the resources beyond tables, queues and functions are made, by type: their ``Ref`` and ``GetAtt``s.
_OTHER_RESOURCES: Final[Mapping[str, Callable[[LocalRuntime, StackSpec, str], dict[str | None, str]]]] = {
    "AWS::S3::Bucket": LocalRuntime._bucket,
    "AWS::SecretsManager::Secret": LocalRuntime._secret,
    "AWS::Events::EventBus": LocalRuntime._event_bus,
}
