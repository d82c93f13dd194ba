"""One stack's template, read the way CloudFormation would create its resources.

``StackSpec`` reads the resources the local runtime runs: Lambda functions (handler, code asset, layers,
timeout, memory, environment, durable config), their published versions, SQS queues (visibility timeout, redrive
policy), DynamoDB tables, SQS event source mappings, DynamoDB Streams event source mappings and EventBridge
schedule rules that invoke functions. Properties the template leaves out get
CloudFormation's (or, where Lambda retries forever, a bounded local) defaults.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from async_job_local.errors import AssemblyError
from async_job_local.event_filter import FilterPatternError, validate_pattern
from async_job_local.intrinsics import referenced_id
from lambda_handlers.contract import METADATA_KEY

__all__ = [
    "LAMBDA_DEFAULT_MEMORY",
    "LAMBDA_DEFAULT_TIMEOUT",
    "SQS_DEFAULT_BATCH_SIZE",
    "SQS_DEFAULT_VISIBILITY_TIMEOUT",
    "STREAM_DEFAULT_BATCH_SIZE",
    "STREAM_LOCAL_MAXIMUM_RETRY_ATTEMPTS",
    "DurableConfigSpec",
    "EventSourceSpec",
    "FunctionSpec",
    "QueueSpec",
    "ScheduleSpec",
    "StackSpec",
    "StreamSourceSpec",
    "TableSpec",
    "VersionSpec",
    "mark_of",
    "rate_seconds",
]

#: CloudFormation's defaults for the properties the runtime reads.
LAMBDA_DEFAULT_TIMEOUT: Final = 3
LAMBDA_DEFAULT_MEMORY: Final = 128
SQS_DEFAULT_VISIBILITY_TIMEOUT: Final = 30
SQS_DEFAULT_BATCH_SIZE: Final = 10
STREAM_DEFAULT_BATCH_SIZE: Final = 100
#: Lambda retries a failing stream batch until its records expire (``MaximumRetryAttempts: -1``, 24 hours);
#: locally a batch is given up after this many retries unless the mapping sets fewer.
STREAM_LOCAL_MAXIMUM_RETRY_ATTEMPTS: Final = 10
#: ``DurableConfig.RetentionPeriodInDays`` when the template leaves it out (Lambda's default).
DURABLE_DEFAULT_RETENTION_DAYS: Final = 14
_RATE: Final = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_RATE_UNIT_SECONDS: Final = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class DurableConfigSpec:
    """A function's ``DurableConfig``: it runs durable executions.

    Attributes
    ----------
    execution_timeout
        ``ExecutionTimeout``, seconds: an execution's whole run (each invocation stays within ``Timeout``).
    retention_days
        ``RetentionPeriodInDays`` (default 14): how long a finished execution stays readable.
    """

    execution_timeout: int
    retention_days: int


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
    durable: DurableConfigSpec | None = None


@dataclass(frozen=True)
class VersionSpec:
    """An ``AWS::Lambda::Version`` of a function of the template (``Ref`` is ``<function ARN>:<number>``).

    ``number`` is the version CloudFormation would publish: the function's first, second ... version, in the
    template's order.
    """

    logical_id: str
    function: str
    number: int


@dataclass(frozen=True)
class ScheduleSpec:
    """An ``AWS::Events::Rule`` with a ``rate(...)`` schedule whose target is a function of the template.

    Attributes
    ----------
    expression
        As the template gives it, e.g. ``rate(5 minutes)``.
    period
        Its period, seconds.
    input
        The target's ``Input`` (a JSON document), when it sets one; else the scheduled event is delivered.
    """

    logical_id: str
    function: str
    expression: str
    period: int
    enabled: bool
    input: str | None = None


def rate_seconds(expression: str) -> int | None:
    """The period of a ``rate(value unit)`` schedule, seconds; None for another expression (``cron(...)``).

    Example
    -------
    >>> rate_seconds("rate(5 minutes)")
    300
    """
    match = _RATE.match(expression.strip())
    if match is None:
        return None
    return int(match[1]) * _RATE_UNIT_SECONDS[match[2].rstrip("s")]


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
class StreamSourceSpec:
    """A DynamoDB Streams event source mapping: the stream of ``table`` (logical id) invokes ``function``.

    Attributes
    ----------
    starting_position
        ``TRIM_HORIZON`` (every record the stream holds) or ``LATEST`` (records written after the start).
    batch_size, maximum_batching_window
        Records per invocation at most (default 100), and seconds to wait for a full batch (default 0).
    maximum_retry_attempts
        Retries of a failing batch before it is given up (locally at most
        ``STREAM_LOCAL_MAXIMUM_RETRY_ATTEMPTS``, also when the template says -1, forever).
    bisect_batch_on_function_error, report_batch_item_failures
        As the mapping sets them.
    filter_patterns
        The ``FilterCriteria`` patterns, parsed: a record is delivered when one of them matches (or when there
        are none).
    """

    logical_id: str
    function: str
    table: str
    starting_position: str
    batch_size: int
    maximum_batching_window: int
    maximum_retry_attempts: int
    bisect_batch_on_function_error: bool
    report_batch_item_failures: bool
    filter_patterns: tuple[Mapping[str, Any], ...]
    enabled: bool


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
            durable=self._durable_config(logical_id, props),
        )

    def _durable_config(self, logical_id: str, props: Mapping[str, Any]) -> DurableConfigSpec | None:
        config = props.get("DurableConfig")
        if not isinstance(config, Mapping):
            return None
        return DurableConfigSpec(
            execution_timeout=self._number(logical_id, config, "ExecutionTimeout", 0),
            retention_days=self._number(
                logical_id, config, "RetentionPeriodInDays", DURABLE_DEFAULT_RETENTION_DAYS
            ),
        )

    def versions(self) -> list[VersionSpec]:
        """Every ``AWS::Lambda::Version`` of a function of the template, numbered per function in order."""
        found = []
        published: dict[str, int] = {}
        for logical_id, resource in self.of_type("AWS::Lambda::Version"):
            function = referenced_id(resource.get("Properties", {}).get("FunctionName"))
            if function is None or self.resources.get(function, {}).get("Type") != "AWS::Lambda::Function":
                continue
            published[function] = published.get(function, 0) + 1
            found.append(VersionSpec(logical_id=logical_id, function=function, number=published[function]))
        return found

    def schedules(self, function: str) -> list[ScheduleSpec]:
        """The ``rate(...)`` ``AWS::Events::Rule``s of the default bus that invoke the function ``function``
        (rules with an ``EventPattern`` or a ``cron(...)`` schedule are not read)."""
        found = []
        for logical_id, resource in self.of_type("AWS::Events::Rule"):
            props = resource.get("Properties", {})
            expression = props.get("ScheduleExpression")
            if not isinstance(expression, str):
                continue
            for target in props.get("Targets", []):
                if not isinstance(target, Mapping) or referenced_id(target.get("Arn")) != function:
                    continue
                period = rate_seconds(expression)
                if period is None:
                    raise AssemblyError(
                        f"{self.stack_name}/{logical_id}: schedule {expression!r} is not a rate(...) "
                        "expression; the local runtime runs rate schedules only"
                    )
                given = target.get("Input")
                found.append(
                    ScheduleSpec(
                        logical_id=logical_id,
                        function=function,
                        expression=expression,
                        period=period,
                        enabled=props.get("State", "ENABLED") == "ENABLED",
                        input=given if isinstance(given, str) else None,
                    )
                )
        return found

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
            target = referenced_id(redrive.get("deadLetterTargetArn"))
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
            if referenced_id(props.get("FunctionName")) != function:
                continue
            queue = referenced_id(props.get("EventSourceArn"))
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

    def stream_sources(self, function: str) -> list[StreamSourceSpec]:
        """The DynamoDB Streams event source mappings that invoke the function ``function``.

        A mapping's ``EventSourceArn`` is the ``StreamArn`` of a table of the template
        (``{"Fn::GetAtt": [Table, "StreamArn"]}``); mappings of other streams are not read.
        """
        found = []
        for logical_id, resource in self.of_type("AWS::Lambda::EventSourceMapping"):
            props = resource.get("Properties", {})
            if referenced_id(props.get("FunctionName")) != function:
                continue
            table = referenced_id(props.get("EventSourceArn"))
            if table is None or self.resources.get(table, {}).get("Type") != "AWS::DynamoDB::Table":
                continue
            found.append(self._stream_source(logical_id, function, table, props))
        return found

    def _stream_source(
        self, logical_id: str, function: str, table: str, props: Mapping[str, Any]
    ) -> StreamSourceSpec:
        retries = self._number(logical_id, props, "MaximumRetryAttempts", -1)
        if retries < 0 or retries > STREAM_LOCAL_MAXIMUM_RETRY_ATTEMPTS:
            retries = STREAM_LOCAL_MAXIMUM_RETRY_ATTEMPTS
        return StreamSourceSpec(
            logical_id=logical_id,
            function=function,
            table=table,
            starting_position=str(props.get("StartingPosition", "LATEST")),
            batch_size=self._number(logical_id, props, "BatchSize", STREAM_DEFAULT_BATCH_SIZE),
            maximum_batching_window=self._number(logical_id, props, "MaximumBatchingWindowInSeconds", 0),
            maximum_retry_attempts=retries,
            bisect_batch_on_function_error=bool(props.get("BisectBatchOnFunctionError", False)),
            report_batch_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
            filter_patterns=self._filter_patterns(logical_id, props),
            enabled=bool(props.get("Enabled", True)),
        )

    def _filter_patterns(self, logical_id: str, props: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
        filters = props.get("FilterCriteria", {}).get("Filters", [])
        patterns = []
        for item in filters:
            text = item.get("Pattern") if isinstance(item, Mapping) else None
            try:
                pattern = json.loads(text) if isinstance(text, str) else None
            except ValueError:
                pattern = None
            if not isinstance(pattern, Mapping):
                raise AssemblyError(
                    f"{self.stack_name}/{logical_id}: FilterCriteria pattern {json.dumps(text)[:100]} is not a "
                    "JSON object (pass the pattern as a JSON string, e.g. json.dumps({...}))"
                )
            try:
                validate_pattern(pattern)
            except FilterPatternError as error:
                raise AssemblyError(f"{self.stack_name}/{logical_id}: FilterCriteria: {error}") from None
            patterns.append(pattern)
        return tuple(patterns)


def mark_of(resource: Mapping[str, Any]) -> Mapping[str, str] | None:
    """The construct's mark on a resource: its template metadata ``{METADATA_KEY: {"api": ..., "role": ...}}``.

    Per-type resources carry ``"jobType"`` too. None when the resource is not marked (or the mark lacks its
    ``api`` or ``role``).

    Example
    -------
    >>> mark_of({"Metadata": {"AsyncJob": {"api": "Stack/Media", "role": "worker", "jobType": "thumbs"}}})
    {'api': 'Stack/Media', 'role': 'worker', 'jobType': 'thumbs'}
    """
    mark = resource.get("Metadata", {}).get(METADATA_KEY)
    if not isinstance(mark, Mapping) or "api" not in mark or "role" not in mark:
        return None
    return {str(key): str(value) for key, value in mark.items()}


def _role_of(resource: Mapping[str, Any]) -> str | None:
    mark = mark_of(resource)
    return None if mark is None else mark["role"]
