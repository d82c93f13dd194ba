"""The ``AsyncJobApi`` constructs of a stack, read from its template: their functions, routes and responses.

The construct marks each of its resources with template metadata
``{"AsyncJob": {"api": "<construct path>", "role": "..."}}`` (``lambda_handlers.contract.METADATA_KEY`` and
``Role``); everything else (the REST API's resources and methods, their integrations, validators and models,
the gateway responses) is read from the resources themselves, the way CloudFormation would create them.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from async_job_local.errors import AssemblyError
from async_job_local.intrinsics import referenced_id
from async_job_local.template import (
    EventSourceSpec,
    FunctionSpec,
    ScheduleSpec,
    StackSpec,
    StreamSourceSpec,
    mark_of,
)
from lambda_handlers.contract import DEFAULT_JOB_TYPE, Env, Role

__all__ = [
    "PER_TYPE_ROLES",
    "ApiSpec",
    "GatewayResponseSpec",
    "JobTypeSpec",
    "MockResponseSpec",
    "RouteSpec",
    "WebSocketApiSpec",
    "WebSocketRouteSpec",
    "apis_of",
    "slug_of",
]


@dataclass(frozen=True)
class MockResponseSpec:
    """What a ``MOCK`` integration answers (a CORS preflight): its first integration response."""

    status_code: int
    headers: Mapping[str, str]


@dataclass(frozen=True)
class RouteSpec:
    """A method of the REST API.

    Attributes
    ----------
    resource_path, http_method, authorization_type
        ``/jobs/{id}``, ``GET``, ``AWS_IAM``.
    function
        The logical id of the function of a Lambda proxy integration, or None for a ``MOCK`` integration.
    mock
        The ``MOCK`` integration's answer, or None.
    api_key_required
        Whether API Gateway demands an ``x-api-key`` header.
    body_schemas
        JSON schemas of the request body by content type, when the method's validator validates bodies.
    required_parameters
        ``header.<name>`` / ``querystring.<name>`` the method's validator requires.
    """

    resource_path: str
    http_method: str
    authorization_type: str
    function: str | None
    mock: MockResponseSpec | None = None
    api_key_required: bool = False
    body_schemas: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    required_parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class GatewayResponseSpec:
    """An ``AWS::ApiGateway::GatewayResponse``: what API Gateway itself answers for ``response_type``."""

    response_type: str
    status_code: str | None
    templates: Mapping[str, str]
    parameters: Mapping[str, str]


def _function_in_uri(uri: Any, stack: StackSpec) -> str | None:
    """The Lambda function an integration URI (usually an ``Fn::Join``) invokes."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            target = referenced_id(value)
            if target is not None and stack.resources.get(target, {}).get("Type") == "AWS::Lambda::Function":
                found.append(target)
                return
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(uri)
    return found[0] if found else None


@dataclass(frozen=True)
class WebSocketRouteSpec:
    """A route of a WebSocket API (``AWS::ApiGatewayV2::Route``).

    Attributes
    ----------
    route_key
        ``$connect``, ``$disconnect``, ``$default`` or a custom key (``subscribe``).
    function
        The logical id of the function of its ``AWS_PROXY`` integration, or None (no integration).
    authorization_type
        ``NONE``, ``AWS_IAM`` or ``CUSTOM`` (only ``$connect`` is authorized).
    returns_response
        The route has a route response (``RouteResponseSelectionExpression``): what its function returns as
        ``body`` is sent back to the client (a two-way route).
    """

    route_key: str
    function: str | None
    authorization_type: str = "NONE"
    returns_response: bool = False


@dataclass(frozen=True)
class WebSocketApiSpec:
    """A WebSocket API (``AWS::ApiGatewayV2::Api`` with ``ProtocolType: WEBSOCKET``) and its stage.

    Attributes
    ----------
    logical_id
        The API's logical id.
    route_selection_expression
        ``$request.body.<field>``: the field of a JSON message that names its route.
    stage_name
        Its stage's name (the path of its URL), ``$default`` if the template has no stage.
    routes
        Its routes by route key.
    """

    logical_id: str
    route_selection_expression: str
    stage_name: str
    routes: Mapping[str, WebSocketRouteSpec]

    @property
    def functions(self) -> tuple[str, ...]:
        """The logical ids of the functions its routes invoke."""
        return tuple(dict.fromkeys(r.function for r in self.routes.values() if r.function is not None))


def _target_integration(target: Any) -> str | None:
    """The integration a route's ``Target`` (``integrations/<id>``, usually an ``Fn::Join``) names."""
    if isinstance(target, Mapping) and "Fn::Join" in target:
        for item in target["Fn::Join"][1]:
            found = referenced_id(item)
            if found is not None:
                return found
    return None


def websocket_apis(stack: StackSpec) -> list[WebSocketApiSpec]:
    """Every WebSocket API of ``stack``, its routes and their functions (``AWS_PROXY`` integrations).

    Example
    -------
    >>> [sorted(api.routes) for api in websocket_apis(stack)]
    [['$connect', '$default', '$disconnect', 'subscribe', 'unsubscribe']]
    """
    found = []
    for logical_id, resource in stack.of_type("AWS::ApiGatewayV2::Api"):
        props = resource.get("Properties", {})
        if props.get("ProtocolType") != "WEBSOCKET":
            continue
        responding = {
            referenced_id(r.get("Properties", {}).get("RouteId"))
            for _, r in stack.of_type("AWS::ApiGatewayV2::RouteResponse")
        }
        routes = {}
        for route_id, route in stack.of_type("AWS::ApiGatewayV2::Route"):
            route_props = route.get("Properties", {})
            if referenced_id(route_props.get("ApiId")) != logical_id:
                continue
            integration = stack.resources.get(_target_integration(route_props.get("Target")) or "", {})
            integration_props = integration.get("Properties", {})
            function = None
            if integration_props.get("IntegrationType") == "AWS_PROXY":
                function = _function_in_uri(integration_props.get("IntegrationUri"), stack)
            elif integration:
                print(
                    f"async-job local: warning: {stack.stack_name}/{route_id} is not a Lambda proxy "
                    "integration; the local runtime does not serve it",
                    file=sys.stderr,
                )
            key = str(route_props.get("RouteKey"))
            routes[key] = WebSocketRouteSpec(
                route_key=key,
                function=function,
                authorization_type=str(route_props.get("AuthorizationType", "NONE")),
                returns_response=route_id in responding
                or isinstance(route_props.get("RouteResponseSelectionExpression"), str),
            )
        stage_name = "$default"
        for _, stage in stack.of_type("AWS::ApiGatewayV2::Stage"):
            stage_props = stage.get("Properties", {})
            if referenced_id(stage_props.get("ApiId")) == logical_id:
                stage_name = str(stage_props.get("StageName", stage_name))
        found.append(
            WebSocketApiSpec(
                logical_id=logical_id,
                route_selection_expression=str(props.get("RouteSelectionExpression", "$request.body.action")),
                stage_name=stage_name,
                routes=routes,
            )
        )
    return found


def _websockets_of(
    stack: StackSpec, path: str, roles: Mapping[str, str], functions: set[str]
) -> tuple[WebSocketApiSpec, ...]:
    """The WebSocket APIs of the job API ``path``: marked with its path, or whose routes invoke its functions
    (marked ones), or, in a stack with one job API, every one."""
    apis = websocket_apis(stack)
    marked_apis = {
        mark["api"] for _, resource in stack.resources.items() if (mark := mark_of(resource)) is not None
    }
    owned = []
    for api in apis:
        mark = mark_of(stack.resources[api.logical_id])
        if mark is not None:
            if mark["api"] == path:
                owned.append(api)
            continue
        owners = {
            function_mark["api"]
            for function in api.functions
            if (function_mark := mark_of(stack.resources.get(function, {}))) is not None
        }
        if path in owners or (not owners and len(marked_apis) == 1) or api.logical_id in roles.values():
            owned.append(api)
    return tuple(owned)


#: The roles of a job type's own resources; the others (the API, the table, the submit, status and dead-letter
#: functions) are shared by every type of the API.
PER_TYPE_ROLES: Final = frozenset({Role.QUEUE, Role.DEAD_LETTER_QUEUE, Role.WORKER, Role.STARTER})


@dataclass(frozen=True)
class JobTypeSpec:
    """One job type of an API: its worker, its queues and the worker's event source mappings.

    A *long* type (a timeout above 15 minutes) has a durable worker (a ``DurableConfig``, invoked through its
    published version) and a starter: the queue's consumer, which starts the worker's executions, and the
    target of the type's sweep schedule.

    Attributes
    ----------
    name
        The type's name (``jobs`` for an API built with one handler), submitted at ``POST /{name}``.
    worker
        Its worker function (its ``ASYNC_JOB_HANDLER`` names the team's handler).
    queue, dead_letter_queue
        Logical ids of its queues (None when the template marks none).
    event_sources
        The mappings that feed its queue's consumer: the worker, or the starter of a long type (batch size,
        maximum concurrency from the template).
    starter
        The starter of a long type (role ``starter``), else None.
    schedules
        The ``rate(...)`` rules that invoke the starter (the sweep).
    """

    name: str
    worker: FunctionSpec
    queue: str | None
    dead_letter_queue: str | None
    event_sources: tuple[EventSourceSpec, ...]
    starter: FunctionSpec | None = None
    schedules: tuple[ScheduleSpec, ...] = ()

    @property
    def long(self) -> bool:
        """True when the worker is a durable function (the type's timeout is above 15 minutes)."""
        return self.worker.durable is not None

    @property
    def handler(self) -> str | None:
        """The team's handler the worker runs (``module.function``), when the template names one."""
        value = self.worker.environment.get(Env.HANDLER)
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class ApiSpec:
    """One ``AsyncJobApi`` of the app.

    Attributes
    ----------
    path
        The construct path, e.g. ``AsyncJobSample/Reports``.
    slug
        Its local path prefix (the stage), e.g. ``asyncjobsample-reports``.
    functions
        The construct's shared functions by role (``submit``, ``status``, ``dead-letter``), and ``worker``
        when the API has one job type.
    roles
        The logical id of each shared resource the construct marked, by role (``table``, ``api`` ...), and of
        the per-type ones (``queue``, ``worker`` ...) when the API has one job type.
    job_types
        Its job types by name, in template order.
    routes, gateway_responses, binary_media_types, stage_name
        The REST API as the template defines it.
    event_sources
        The SQS event source mappings of its worker, dead-letter and extra functions.
    extra_functions
        Other functions its routes call (methods added to ``jobs_resource`` ...), and the functions the
        construct marks with another role (``events``, ``webhook`` ...), by logical id.
    stream_sources
        The DynamoDB Streams event source mappings of all its functions.
    """

    path: str
    slug: str
    stack: StackSpec
    rest_api: str
    stage_name: str
    routes: tuple[RouteSpec, ...]
    gateway_responses: Mapping[str, GatewayResponseSpec]
    binary_media_types: tuple[str, ...]
    functions: Mapping[str, FunctionSpec]
    event_sources: tuple[EventSourceSpec, ...]
    roles: Mapping[str, str] = field(default_factory=dict)
    extra_functions: Mapping[str, FunctionSpec] = field(default_factory=dict)
    job_types: Mapping[str, JobTypeSpec] = field(default_factory=dict)
    stream_sources: tuple[StreamSourceSpec, ...] = ()
    websockets: tuple[WebSocketApiSpec, ...] = ()


def _routes(stack: StackSpec, rest_api: str) -> tuple[RouteSpec, ...]:
    parents: dict[str, tuple[str | None, str]] = {}
    for logical_id, resource in stack.of_type("AWS::ApiGateway::Resource"):
        props = resource.get("Properties", {})
        if referenced_id(props.get("RestApiId")) != rest_api:
            continue
        parent = props.get("ParentId")
        is_root = isinstance(parent, Mapping) and parent.get("Fn::GetAtt", [None, None])[1:] == [
            "RootResourceId"
        ]
        parents[logical_id] = (None if is_root else referenced_id(parent), str(props.get("PathPart")))

    def path_of(logical_id: str | None) -> str:
        parts: list[str] = []
        while logical_id is not None:
            parent, part = parents[logical_id]
            parts.append(part)
            logical_id = parent
        return "/" + "/".join(reversed(parts))

    routes = []
    for logical_id, resource in stack.of_type("AWS::ApiGateway::Method"):
        props = resource.get("Properties", {})
        if referenced_id(props.get("RestApiId")) != rest_api:
            continue
        integration = props.get("Integration", {})
        function = _function_in_uri(integration.get("Uri"), stack)
        mock = None
        if integration.get("Type") == "MOCK":
            mock = _mock_response(integration)
        elif integration.get("Type") != "AWS_PROXY" or function is None:
            print(
                f"async-job local: warning: {stack.stack_name}/{logical_id} is neither a Lambda proxy nor a "
                "MOCK integration; the local runtime does not serve it",
                file=sys.stderr,
            )
            continue
        validator = stack.resources.get(referenced_id(props.get("RequestValidatorId")) or "", {})
        validation = validator.get("Properties", {})
        schemas = {}
        if validation.get("ValidateRequestBody"):
            for content_type, model in props.get("RequestModels", {}).items():
                schema = (
                    stack.resources.get(referenced_id(model) or "", {}).get("Properties", {}).get("Schema")
                )
                if isinstance(schema, Mapping):
                    schemas[str(content_type)] = schema
        required = ()
        if validation.get("ValidateRequestParameters"):
            required = tuple(
                name.removeprefix("method.request.")
                for name, is_required in props.get("RequestParameters", {}).items()
                if is_required is True and not name.startswith("method.request.path.")
            )
        resource_id = referenced_id(props.get("ResourceId"))
        routes.append(
            RouteSpec(
                resource_path=path_of(resource_id if resource_id in parents else None),
                http_method=str(props.get("HttpMethod", "ANY")).upper(),
                authorization_type=str(props.get("AuthorizationType", "NONE")),
                function=None if mock is not None else function,
                mock=mock,
                api_key_required=bool(props.get("ApiKeyRequired", False)),
                body_schemas=schemas,
                required_parameters=required,
            )
        )
    return tuple(sorted(routes, key=lambda r: (r.resource_path, r.http_method)))


def _mock_response(integration: Mapping[str, Any]) -> MockResponseSpec:
    responses = integration.get("IntegrationResponses") or [{}]
    first = responses[0]
    headers = {
        name.removeprefix("method.response.header."): value[1:-1]
        for name, value in first.get("ResponseParameters", {}).items()
        if name.startswith("method.response.header.")
        and isinstance(value, str)
        and value.startswith("'")
        and value.endswith("'")
    }
    return MockResponseSpec(status_code=int(first.get("StatusCode", 200)), headers=headers)


def _gateway_responses(stack: StackSpec, rest_api: str) -> dict[str, GatewayResponseSpec]:
    responses = {}
    for _, resource in stack.of_type("AWS::ApiGateway::GatewayResponse"):
        props = resource.get("Properties", {})
        if referenced_id(props.get("RestApiId")) != rest_api:
            continue
        response_type = str(props["ResponseType"])
        responses[response_type] = GatewayResponseSpec(
            response_type=response_type,
            status_code=str(props["StatusCode"]) if "StatusCode" in props else None,
            templates=dict(props.get("ResponseTemplates", {})),
            parameters=dict(props.get("ResponseParameters", {})),
        )
    return responses


def _stage_name(stack: StackSpec, rest_api: str) -> str:
    for _, resource in stack.of_type("AWS::ApiGateway::Stage"):
        props = resource.get("Properties", {})
        if referenced_id(props.get("RestApiId")) == rest_api and isinstance(props.get("StageName"), str):
            return str(props["StageName"])
    return "prod"


def slug_of(construct_path: str) -> str:
    """The local path prefix of an API: its construct path, lowercased, ``/`` -> ``-``."""
    slug = re.sub(r"[^a-z0-9-]+", "-", construct_path.lower().replace("/", "-")).strip("-")
    return slug or "api"


def apis_of(stack: StackSpec, slugs: set[str]) -> Iterator[ApiSpec]:
    """The ``AsyncJobApi`` constructs of ``stack``, each with a path prefix not in ``slugs`` (which it extends).

    A per-type resource (a queue, a dead-letter queue, a worker) belongs to the type its mark names
    (``"jobType"``), or to ``jobs`` when it names none (an API built with one handler).

    Example
    -------
    >>> [(api.path, list(api.job_types)) for api in apis_of(stack, set())]
    [('AsyncJobSample/Reports', ['jobs'])]
    """
    shared: dict[str, dict[str, str]] = {}
    typed: dict[str, dict[str, dict[str, str]]] = {}
    for logical_id, resource in stack.resources.items():
        mark = mark_of(resource)
        if mark is None:
            continue
        api, role = mark["api"], mark["role"]
        shared.setdefault(api, {})
        if role in PER_TYPE_ROLES:
            name = mark.get("jobType", DEFAULT_JOB_TYPE)
            roles = typed.setdefault(api, {}).setdefault(name, {})
            if role in roles:
                raise AssemblyError(
                    f"{api}: job type {name!r} has two {role} resources ({roles[role]}, {logical_id}); "
                    "mark each type's resources with its own jobType"
                )
            roles[role] = logical_id
        else:
            shared[api][role] = logical_id
    for path, roles in shared.items():
        yield _api_spec(stack, path, roles, typed.get(path, {}), slugs)


def _api_spec(
    stack: StackSpec,
    path: str,
    roles: Mapping[str, str],
    typed: Mapping[str, Mapping[str, str]],
    slugs: set[str],
) -> ApiSpec:
    missing = {Role.API, Role.SUBMIT, Role.STATUS, Role.DEAD_LETTER} - roles.keys()
    if not typed:
        missing.add(Role.WORKER)
    if missing:
        raise AssemblyError(f"{path}: the template has no {', '.join(sorted(missing))} of this AsyncJobApi")
    without_worker = sorted(name for name, own in typed.items() if Role.WORKER not in own)
    if without_worker:
        raise AssemblyError(f"{path}: the template has no worker for job type(s) {', '.join(without_worker)}")
    functions = {role: stack.function(roles[role]) for role in (Role.SUBMIT, Role.STATUS, Role.DEAD_LETTER)}
    job_types = {}
    for name, own in typed.items():
        worker = stack.function(own[Role.WORKER])
        starter = stack.function(own[Role.STARTER]) if Role.STARTER in own else None
        if worker.durable is not None and starter is None:
            raise AssemblyError(
                f"{path}: job type {name!r} has a durable worker ({worker.logical_id}) but no starter function "
                "(role starter) to consume its queue"
            )
        consumer = starter if starter is not None else worker
        job_types[name] = JobTypeSpec(
            name=name,
            worker=worker,
            queue=own.get(Role.QUEUE),
            dead_letter_queue=own.get(Role.DEAD_LETTER_QUEUE),
            event_sources=tuple(stack.event_sources(consumer.logical_id)),
            starter=starter,
            schedules=tuple(stack.schedules(starter.logical_id)) if starter is not None else (),
        )
    all_roles = dict(roles)
    if len(job_types) == 1:  # the single form: its worker and queues are the API's, as they always were
        (only,) = typed.values()
        all_roles.update(only)
        functions[Role.WORKER] = next(iter(job_types.values())).worker
    rest_api = roles[Role.API]
    routes = _routes(stack, rest_api)
    own_ids = (
        {spec.logical_id for spec in functions.values()}
        | {job_type.worker.logical_id for job_type in job_types.values()}
        | {job_type.starter.logical_id for job_type in job_types.values() if job_type.starter is not None}
    )
    extra = {
        r.function: stack.function(r.function)
        for r in routes
        if r.function is not None and r.function not in own_ids
    }
    extra.update(_marked_functions(stack, roles, own_ids | extra.keys()))
    websockets = _websockets_of(stack, path, roles, own_ids | extra.keys())
    for websocket in websockets:
        for logical_id in websocket.functions:
            if logical_id not in own_ids and logical_id not in extra:
                extra[logical_id] = stack.function(logical_id)
    for logical_id in _table_stream_functions(stack, roles.get(Role.TABLE)):
        if logical_id not in own_ids and logical_id not in extra:
            extra[logical_id] = stack.function(logical_id)
    event_sources = [
        *(source for job_type in job_types.values() for source in job_type.event_sources),
        *stack.event_sources(functions[Role.DEAD_LETTER].logical_id),
        *(source for logical_id in extra for source in stack.event_sources(logical_id)),
    ]
    all_ids = [*own_ids, *extra]
    stream_sources = tuple(source for logical_id in all_ids for source in stack.stream_sources(logical_id))
    slug = base = slug_of(path)
    counter = 2
    while slug in slugs:
        slug, counter = f"{base}-{counter}", counter + 1
    slugs.add(slug)
    binary = stack.resources[rest_api].get("Properties", {}).get("BinaryMediaTypes", [])
    return ApiSpec(
        path=path,
        slug=slug,
        stack=stack,
        rest_api=rest_api,
        stage_name=_stage_name(stack, rest_api),
        routes=routes,
        gateway_responses=_gateway_responses(stack, rest_api),
        binary_media_types=tuple(str(t) for t in binary),
        functions=functions,
        event_sources=tuple(event_sources),
        roles=all_roles,
        extra_functions=extra,
        job_types=job_types,
        stream_sources=stream_sources,
        websockets=websockets,
    )


def _table_stream_functions(stack: StackSpec, table: str | None) -> list[str]:
    """The functions a DynamoDB Streams mapping of the status table invokes (such as a push function)."""
    found = []
    for _, resource in stack.of_type("AWS::Lambda::EventSourceMapping"):
        props = resource.get("Properties", {})
        function = referenced_id(props.get("FunctionName"))
        if (
            table is not None
            and function is not None
            and referenced_id(props.get("EventSourceArn")) == table
            and stack.resources.get(function, {}).get("Type") == "AWS::Lambda::Function"
        ):
            found.append(function)
    return found


def _marked_functions(
    stack: StackSpec, roles: Mapping[str, str], known: set[str] | frozenset[str]
) -> dict[str, FunctionSpec]:
    """The functions the construct marks with a shared role of its own (``events``, ``webhook`` ...) that are
    not already among the API's functions."""
    return {
        logical_id: stack.function(logical_id)
        for logical_id in roles.values()
        if logical_id not in known and stack.resources[logical_id].get("Type") == "AWS::Lambda::Function"
    }
