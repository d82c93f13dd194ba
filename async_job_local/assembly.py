"""A synthesized app: its cloud assembly's stacks, the ``AsyncJobApi`` constructs in them, its synth messages.

``synthesize`` (:mod:`async_job_local.synthesis`) runs the app as the CDK CLI does; ``load_assembly`` reads the
result. The names of the modules it is built from (the template model, the API model, the intrinsics) are
re-exported here, where they were before the split.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from async_job_local.api_spec import (
    ApiSpec,
    GatewayResponseSpec,
    MockResponseSpec,
    RouteSpec,
    apis_of,
    slug_of,
)
from async_job_local.errors import AssemblyError, UnresolvableError
from async_job_local.intrinsics import resolve_intrinsic
from async_job_local.synthesis import app_command, read_json, synthesize
from async_job_local.template import EventSourceSpec, FunctionSpec, QueueSpec, StackSpec, TableSpec

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
    "app_command",
    "load_assembly",
    "resolve_intrinsic",
    "slug_of",
    "synthesize",
]


@dataclass(frozen=True)
class CloudAssembly:
    """A synthesized app: its stacks, its ``AsyncJobApi`` constructs and the synth messages."""

    directory: Path
    stacks: tuple[StackSpec, ...]
    apis: tuple[ApiSpec, ...]
    warnings: tuple[str, ...]


def _stack_artifacts(directory: Path) -> Iterator[tuple[str, Mapping[str, Any], Path]]:
    manifest = read_json(directory / "manifest.json")
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
        metadata.update(read_json(directory / extra))
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
            template=read_json(where / props["templateFile"]),
            directory=where,
        )
        stacks.append(stack)
        for level, path, message in _messages(artifact, where):
            (errors if level == "Error" else warnings).append(f"[{level} at {path}] {message}")
        apis.extend(apis_of(stack, slugs))
    if errors:
        raise AssemblyError("the app has synth errors:\n" + "\n".join(errors))
    return CloudAssembly(
        directory=directory, stacks=tuple(stacks), apis=tuple(apis), warnings=tuple(warnings)
    )
