"""Synthesize a CDK app and read every ``AsyncJobApi`` in it from the cloud assembly.

The construct is the only configuration: it marks each of its CloudFormation resources with template metadata
``{"AsyncJob": {"api": "<construct path>", "role": "..."}}``, and everything else (handlers, code assets,
timeouts, environment, queue settings, routes, gateway responses) is read from the resources themselves, the
way CloudFormation would create them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = [
    "ApiSpec",
    "AssemblyError",
    "CloudAssembly",
    "EventSourceSpec",
    "FunctionSpec",
    "GatewayResponseSpec",
    "MockResponseSpec",
    "QueueSpec",
    "RouteSpec",
    "StackSpec",
    "TableSpec",
    "UnresolvableError",
    "load_assembly",
    "resolve_intrinsic",
    "synthesize",
]

METADATA_KEY: Final = "AsyncJob"
#: Context the CDK CLI passes to every app by default (``python app.py`` alone gets none of it): asset metadata
#: (``aws:asset:path`` on each function, which says where its code is), path metadata, and no stack traces
#: (as without ``--debug``).
CLI_CONTEXT: Final[Mapping[str, Any]] = {
    "aws:cdk:enable-asset-metadata": True,
    "aws:cdk:enable-path-metadata": True,
    "aws:cdk:disable-stack-trace": True,
}
#: CloudFormation's defaults for the properties the runtime reads.
LAMBDA_DEFAULT_TIMEOUT: Final = 3
LAMBDA_DEFAULT_MEMORY: Final = 128
SQS_DEFAULT_VISIBILITY_TIMEOUT: Final = 30
SQS_DEFAULT_BATCH_SIZE: Final = 10


class AssemblyError(RuntimeError):
    """The app could not be synthesized, or its assembly holds something the local runtime cannot run."""


class UnresolvableError(ValueError):
    """A CloudFormation expression refers to something that does not exist locally."""


# ---------------------------------------------------------------------------------------------- synthesis


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _cli_context(cwd: Path, extra: Mapping[str, Any]) -> dict[str, Any]:
    """The context ``cdk synth`` would pass: cdk.json's ``context``, overridden by cdk.context.json, then by
    ``extra`` (``-c``)."""
    context: dict[str, Any] = {}
    for name, key in (("cdk.json", "context"), ("cdk.context.json", None)):
        path = cwd / name
        if path.is_file():
            data = _read_json(path)
            context.update(data if key is None else data.get(key, {}))
    context.update(extra)
    context.update(CLI_CONTEXT)
    return context


def app_command(app: str | None, cwd: Path) -> str:
    """The shell command that synthesizes ``app``: cdk.json's ``app`` when None, ``python <file>`` for a .py."""
    if app is None:
        config = cwd / "cdk.json"
        if not config.is_file():
            raise AssemblyError(f"no --app given and no cdk.json in {cwd}: pass --app <app.py or command>")
        command = _read_json(config).get("app")
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


# ---------------------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class FunctionSpec:
    """A Lambda function as CloudFormation would create it.

    Attributes
    ----------
    logical_id, handler, runtime
        From the template.
    code_dir
        The function's code: its asset directory in the assembly (or a folder holding its inline code).
    layer_dirs
        The asset directories of its layers that are in the assembly (published layers, such as the public
        Powertools layer, are stood in for by the packages of the Python running the local runtime).
    timeout, memory_size
        Seconds and MiB (CloudFormation's defaults: 3 and 128).
    environment
        ``Environment.Variables`` as in the template: values may be CloudFormation expressions.
    role
        The ``AsyncJob`` role (``submit``, ``status``, ``worker``, ``dead-letter``), or None.
    """

    logical_id: str
    handler: str
    runtime: str
    code_dir: Path
    layer_dirs: tuple[Path, ...]
    timeout: int
    memory_size: int
    environment: Mapping[str, Any]
    log_format: str | None
    role: str | None


@dataclass(frozen=True)
class QueueSpec:
    """An SQS queue of the template (``dead_letter_target`` is the logical id of its redrive target)."""

    logical_id: str
    properties: Mapping[str, Any]
    visibility_timeout: int
    fifo: bool
    max_receive_count: int | None
    dead_letter_target: str | None


@dataclass(frozen=True)
class TableSpec:
    """A DynamoDB table of the template."""

    logical_id: str
    properties: Mapping[str, Any]


@dataclass(frozen=True)
class EventSourceSpec:
    """An SQS event source mapping: ``queue`` (logical id) invokes ``function`` (logical id)."""

    logical_id: str
    function: str
    queue: str
    batch_size: int
    maximum_concurrency: int | None
    report_batch_item_failures: bool
    enabled: bool


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


@dataclass(frozen=True)
class StackSpec:
    """One stack of the assembly: its template and the directory its asset paths are relative to."""

    artifact_id: str
    stack_name: str
    template: Mapping[str, Any]
    directory: Path

    @property
    def resources(self) -> Mapping[str, Mapping[str, Any]]:
        """The template's resources by logical id."""
        resources: Mapping[str, Mapping[str, Any]] = self.template.get("Resources", {})
        return resources

    def of_type(self, type_name: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """(logical id, resource) of every resource of ``type_name``."""
        for logical_id, resource in self.resources.items():
            if resource.get("Type") == type_name:
                yield logical_id, resource

    def _asset_dir(self, logical_id: str, resource: Mapping[str, Any]) -> Path | None:
        asset = resource.get("Metadata", {}).get("aws:asset:path")
        if not isinstance(asset, str):
            return None
        path = Path(asset)
        return path if path.is_absolute() else self.directory / path

    def _number(self, logical_id: str, props: Mapping[str, Any], name: str, default: int) -> int:
        value = props.get(name, default)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise AssemblyError(
                f"{self.stack_name}/{logical_id}: {name} is {json.dumps(value)[:100]}, which the local runtime "
                "cannot evaluate (pass a number rather than a deploy-time value)"
            ) from None

    def function(self, logical_id: str) -> FunctionSpec:
        """Read the ``AWS::Lambda::Function`` ``logical_id``."""
        resource = self.resources.get(logical_id)
        if resource is None or resource.get("Type") != "AWS::Lambda::Function":
            raise AssemblyError(f"{self.stack_name}: {logical_id} is not a Lambda function of the template")
        props = resource.get("Properties", {})
        runtime = str(props.get("Runtime", ""))
        if not runtime.startswith("python3."):
            raise AssemblyError(
                f"{self.stack_name}/{logical_id}: runtime {runtime or '(container image)'} is not Python; "
                "the local runtime runs Python functions only"
            )
        code_dir = self._asset_dir(logical_id, resource)
        inline = props.get("Code", {}).get("ZipFile")
        if code_dir is None and isinstance(inline, str):
            code_dir = Path(tempfile.mkdtemp(prefix=f"async-job-inline-{logical_id}-"))
            (code_dir / "index.py").write_text(inline, encoding="utf-8")
        if code_dir is None or not code_dir.is_dir():
            raise AssemblyError(
                f"{self.stack_name}/{logical_id}: its code is not a directory asset in the assembly "
                "(was the app synthesized with asset metadata? bundled or S3 code cannot run locally)"
            )
        layer_dirs = []
        for layer in props.get("Layers", []):
            if isinstance(layer, Mapping) and isinstance(layer.get("Ref"), str):
                layer_resource = self.resources.get(layer["Ref"], {})
                layer_dir = self._asset_dir(layer["Ref"], layer_resource)
                if layer_dir is not None and layer_dir.is_dir():
                    layer_dirs.append(layer_dir)
        logging_config = props.get("LoggingConfig", {})
        return FunctionSpec(
            logical_id=logical_id,
            handler=str(props.get("Handler", "")),
            runtime=runtime,
            code_dir=code_dir,
            layer_dirs=tuple(layer_dirs),
            timeout=self._number(logical_id, props, "Timeout", LAMBDA_DEFAULT_TIMEOUT),
            memory_size=self._number(logical_id, props, "MemorySize", LAMBDA_DEFAULT_MEMORY),
            environment=dict(props.get("Environment", {}).get("Variables", {})),
            log_format=logging_config.get("LogFormat") if isinstance(logging_config, Mapping) else None,
            role=_role_of(resource),
        )

    def queue(self, logical_id: str) -> QueueSpec:
        """Read the ``AWS::SQS::Queue`` ``logical_id``."""
        resource = self.resources.get(logical_id)
        if resource is None or resource.get("Type") != "AWS::SQS::Queue":
            raise AssemblyError(f"{self.stack_name}: {logical_id} is not an SQS queue of the template")
        props = resource.get("Properties", {})
        redrive = props.get("RedrivePolicy")
        max_receive_count = target = None
        if isinstance(redrive, Mapping):
            max_receive_count = int(redrive["maxReceiveCount"])
            target = _referenced_id(redrive.get("deadLetterTargetArn"))
        return QueueSpec(
            logical_id=logical_id,
            properties=props,
            visibility_timeout=self._number(
                logical_id, props, "VisibilityTimeout", SQS_DEFAULT_VISIBILITY_TIMEOUT
            ),
            fifo=bool(props.get("FifoQueue", False)),
            max_receive_count=max_receive_count,
            dead_letter_target=target,
        )

    def table(self, logical_id: str) -> TableSpec:
        """Read the ``AWS::DynamoDB::Table`` ``logical_id``."""
        resource = self.resources.get(logical_id)
        if resource is None or resource.get("Type") != "AWS::DynamoDB::Table":
            raise AssemblyError(f"{self.stack_name}: {logical_id} is not a DynamoDB table of the template")
        return TableSpec(logical_id=logical_id, properties=resource.get("Properties", {}))

    def event_sources(self, function: str) -> list[EventSourceSpec]:
        """The SQS event source mappings that invoke the function ``function``."""
        found = []
        for logical_id, resource in self.of_type("AWS::Lambda::EventSourceMapping"):
            props = resource.get("Properties", {})
            if _referenced_id(props.get("FunctionName")) != function:
                continue
            queue = _referenced_id(props.get("EventSourceArn"))
            if queue is None or self.resources.get(queue, {}).get("Type") != "AWS::SQS::Queue":
                continue
            scaling = props.get("ScalingConfig", {})
            found.append(
                EventSourceSpec(
                    logical_id=logical_id,
                    function=function,
                    queue=queue,
                    batch_size=int(props.get("BatchSize", SQS_DEFAULT_BATCH_SIZE)),
                    maximum_concurrency=(
                        int(scaling["MaximumConcurrency"]) if "MaximumConcurrency" in scaling else None
                    ),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in props.get("FunctionResponseTypes", []),
                    enabled=bool(props.get("Enabled", True)),
                )
            )
        return found


def _role_of(resource: Mapping[str, Any]) -> str | None:
    mark = resource.get("Metadata", {}).get(METADATA_KEY)
    return str(mark["role"]) if isinstance(mark, Mapping) and "role" in mark else None


def _referenced_id(value: Any) -> str | None:
    """The logical id ``value`` points at: ``{"Ref": id}`` or ``{"Fn::GetAtt": [id, attr]}``."""
    if isinstance(value, Mapping):
        if isinstance(value.get("Ref"), str):
            return str(value["Ref"])
        get_att = value.get("Fn::GetAtt")
        if isinstance(get_att, list) and get_att and isinstance(get_att[0], str):
            return get_att[0]
        if isinstance(get_att, str):
            return get_att.split(".", 1)[0]
    return None


def _function_in_uri(uri: Any, stack: StackSpec) -> str | None:
    """The Lambda function an integration URI (usually an ``Fn::Join``) invokes."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            target = _referenced_id(value)
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
class ApiSpec:
    """One ``AsyncJobApi`` of the app.

    Attributes
    ----------
    path
        The construct path, e.g. ``AsyncJobSample/Reports``.
    slug
        Its local path prefix (the stage), e.g. ``asyncjobsample-reports``.
    functions
        The construct's functions by role (``submit``, ``status``, ``worker``, ``dead-letter``).
    roles
        The logical id of each resource the construct marked, by role (``queue``, ``table`` ...).
    routes, gateway_responses, binary_media_types, stage_name
        The REST API as the template defines it.
    event_sources
        The SQS event source mappings of its worker and dead-letter functions.
    extra_functions
        Other functions its routes call (methods added to ``jobs_resource`` ...), by logical id.
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


def _routes(stack: StackSpec, rest_api: str) -> tuple[RouteSpec, ...]:
    parents: dict[str, tuple[str | None, str]] = {}
    for logical_id, resource in stack.of_type("AWS::ApiGateway::Resource"):
        props = resource.get("Properties", {})
        if _referenced_id(props.get("RestApiId")) != rest_api:
            continue
        parent = props.get("ParentId")
        is_root = isinstance(parent, Mapping) and parent.get("Fn::GetAtt", [None, None])[1:] == [
            "RootResourceId"
        ]
        parents[logical_id] = (None if is_root else _referenced_id(parent), str(props.get("PathPart")))

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
        if _referenced_id(props.get("RestApiId")) != rest_api:
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
        validator = stack.resources.get(_referenced_id(props.get("RequestValidatorId")) or "", {})
        validation = validator.get("Properties", {})
        schemas = {}
        if validation.get("ValidateRequestBody"):
            for content_type, model in props.get("RequestModels", {}).items():
                schema = (
                    stack.resources.get(_referenced_id(model) or "", {}).get("Properties", {}).get("Schema")
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
        resource_id = _referenced_id(props.get("ResourceId"))
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
        if _referenced_id(props.get("RestApiId")) != rest_api:
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
        if _referenced_id(props.get("RestApiId")) == rest_api and isinstance(props.get("StageName"), str):
            return str(props["StageName"])
    return "prod"


def slug_of(construct_path: str) -> str:
    """The local path prefix of an API: its construct path, lowercased, ``/`` -> ``-``."""
    slug = re.sub(r"[^a-z0-9-]+", "-", construct_path.lower().replace("/", "-")).strip("-")
    return slug or "api"


@dataclass(frozen=True)
class CloudAssembly:
    """A synthesized app: its stacks, its ``AsyncJobApi`` constructs and the synth messages."""

    directory: Path
    stacks: tuple[StackSpec, ...]
    apis: tuple[ApiSpec, ...]
    warnings: tuple[str, ...]


def _stack_artifacts(directory: Path) -> Iterator[tuple[str, Mapping[str, Any], Path]]:
    manifest = _read_json(directory / "manifest.json")
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        kind = artifact.get("type")
        if kind == "aws:cloudformation:stack":
            yield artifact_id, artifact, directory
        elif kind == "cdk:cloud-assembly":  # a nested Stage
            yield from _stack_artifacts(directory / artifact["properties"]["directoryName"])


def _messages(artifact: Mapping[str, Any], directory: Path) -> Iterator[tuple[str, str, str]]:
    metadata: dict[str, Any] = dict(artifact.get("metadata", {}))
    extra = artifact.get("additionalMetadataFile")
    if isinstance(extra, str) and (directory / extra).is_file():
        metadata.update(_read_json(directory / extra))
    for path, entries in metadata.items():
        for entry in entries:
            level = {"aws:cdk:warning": "Warning", "aws:cdk:error": "Error"}.get(entry.get("type"))
            if level is not None:
                yield level, path, str(entry.get("data"))


def load_assembly(directory: Path) -> CloudAssembly:
    """Read a cloud assembly and find the ``AsyncJobApi`` constructs of its stacks.

    Example
    -------
    >>> assembly = load_assembly(synthesize("app.py", cwd=Path.cwd(), outdir=outdir))
    >>> [api.path for api in assembly.apis]
    ['AsyncJobSample/Reports']
    """
    stacks = []
    apis: list[ApiSpec] = []
    warnings: list[str] = []
    errors: list[str] = []
    slugs: set[str] = set()
    for artifact_id, artifact, where in _stack_artifacts(directory):
        props = artifact.get("properties", {})
        stack = StackSpec(
            artifact_id=artifact_id,
            stack_name=str(props.get("stackName", artifact_id)),
            template=_read_json(where / props["templateFile"]),
            directory=where,
        )
        stacks.append(stack)
        for level, path, message in _messages(artifact, where):
            (errors if level == "Error" else warnings).append(f"[{level} at {path}] {message}")
        apis.extend(_apis_of(stack, slugs))
    if errors:
        raise AssemblyError("the app has synth errors:\n" + "\n".join(errors))
    return CloudAssembly(
        directory=directory, stacks=tuple(stacks), apis=tuple(apis), warnings=tuple(warnings)
    )


def _apis_of(stack: StackSpec, slugs: set[str]) -> Iterator[ApiSpec]:
    marked: dict[str, dict[str, str]] = {}
    for logical_id, resource in stack.resources.items():
        mark = resource.get("Metadata", {}).get(METADATA_KEY)
        if isinstance(mark, Mapping) and "api" in mark and "role" in mark:
            marked.setdefault(str(mark["api"]), {})[str(mark["role"])] = logical_id
    for path, roles in marked.items():
        missing = {"api", "submit", "status", "worker", "dead-letter"} - roles.keys()
        if missing:
            raise AssemblyError(
                f"{path}: the template has no {', '.join(sorted(missing))} of this AsyncJobApi"
            )
        functions = {
            role: stack.function(roles[role]) for role in ("submit", "status", "worker", "dead-letter")
        }
        rest_api = roles["api"]
        routes = _routes(stack, rest_api)
        own = {spec.logical_id for spec in functions.values()}
        extra = {
            r.function: stack.function(r.function)
            for r in routes
            if r.function is not None and r.function not in own
        }
        event_sources = [
            source
            for role in ("worker", "dead-letter")
            for source in stack.event_sources(functions[role].logical_id)
        ]
        slug = base = slug_of(path)
        counter = 2
        while slug in slugs:
            slug, counter = f"{base}-{counter}", counter + 1
        slugs.add(slug)
        binary = stack.resources[rest_api].get("Properties", {}).get("BinaryMediaTypes", [])
        yield ApiSpec(
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
            roles=dict(roles),
            extra_functions=extra,
        )


# --------------------------------------------------------------------------------------------- intrinsics


def resolve_intrinsic(value: Any, lookup: Callable[[str, str | None], str]) -> str:
    """Resolve a CloudFormation expression to a string.

    ``lookup(logical_id, attribute)`` answers ``Ref`` (attribute None), ``Fn::GetAtt`` and pseudo parameters
    (``AWS::Region`` ...), raising ``UnresolvableError`` for what does not exist locally. ``Fn::Join``,
    ``Fn::Sub`` (without a variable map's nested expressions) and ``Fn::Select`` are evaluated.

    Example
    -------
    >>> resolve_intrinsic({"Fn::Join": ["", ["a", {"Ref": "T"}]]}, lambda i, a: "table-1")
    'atable-1'
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Mapping) and len(value) == 1:
        ((name, argument),) = value.items()
        if name == "Ref" and isinstance(argument, str):
            return lookup(argument, None)
        if name == "Fn::GetAtt":
            parts = argument.split(".", 1) if isinstance(argument, str) else argument
            return lookup(str(parts[0]), str(parts[1]))
        if name == "Fn::Join":
            separator, items = argument
            return str(separator).join(resolve_intrinsic(item, lookup) for item in items)
        if name == "Fn::Select":
            index, items = argument
            return resolve_intrinsic(items[int(resolve_intrinsic(index, lookup))], lookup)
        if name == "Fn::Sub":
            template, variables = (argument, {}) if isinstance(argument, str) else argument

            def substitute(match: re.Match[str]) -> str:
                name = match.group(1)
                if name.startswith("!"):
                    return "${" + name[1:] + "}"
                if name in variables:
                    return resolve_intrinsic(variables[name], lookup)
                logical_id, _, attribute = name.partition(".")
                return lookup(logical_id, attribute or None)

            return re.sub(r"\$\{([^}]+)\}", substitute, str(template))
    raise UnresolvableError(f"cannot evaluate {json.dumps(value)[:200]} locally")
