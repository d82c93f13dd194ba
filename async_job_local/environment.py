"""A function's environment, locally: its template variables resolved to the local resources, plus what
Lambda's runtime sets itself.

Template values may be CloudFormation expressions (``Ref``, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::Sub``,
``Fn::Select``, pseudo parameters). ``Fn::Join`` of tokens is also how ``Stack.to_json_string`` writes a JSON
document with references in it (``ASYNC_JOB_TYPES``): joined, it is that document with the local queue URLs in
place. A variable that refers to something that does not exist locally is dropped, with a warning.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any, Final

from async_job_local.errors import UnresolvableError
from async_job_local.intrinsics import resolve_intrinsic
from async_job_local.template import FunctionSpec

__all__ = [
    "EVENT_BUS_VARIABLE",
    "LOCAL_RUNTIME_VARIABLE",
    "lambda_reserved_environment",
    "resolve_environment",
]

#: Set to ``1`` in every function's environment by the local runtime (never deployed): a function may then call
#: ``http://127.0.0.1`` webhook receivers, which deployed functions refuse (they require ``https``).
LOCAL_RUNTIME_VARIABLE: Final = "ASYNC_JOB_LOCAL_RUNTIME"
#: The event bus a function puts its events on (a name, an ARN or ``default``): the runtime watches it.
EVENT_BUS_VARIABLE: Final = "ASYNC_JOB_EVENT_BUS"

#: ``lookup(logical_id, attribute)``: what ``Ref`` (attribute None) or ``Fn::GetAtt`` gives locally.
Lookup = Callable[[str, str | None], str]


def resolve_environment(
    variables: Mapping[str, Any], lookup: Lookup, warn: Callable[[str], None]
) -> dict[str, str]:
    """Each variable's value as a string, CloudFormation expressions resolved by ``lookup``.

    A variable that cannot be resolved locally is left out, and ``warn`` is called with a message naming it. A value that
    resolves to a document starting ``{`` or ``[`` that is not valid JSON (an expression CDK joined into a
    JSON string, resolved to something that breaks it) is kept as it is, with a warning.

    Example
    -------
    >>> types = {"Fn::Join": ["", ['{"jobs":{"queueUrl":"', {"Ref": "Queue"}, '"}}']]}
    >>> resolve_environment({"ASYNC_JOB_TYPES": types}, lambda i, a: "http://q/1", print)
    {'ASYNC_JOB_TYPES': '{"jobs":{"queueUrl":"http://q/1"}}'}
    """
    resolved: dict[str, str] = {}
    for name, value in variables.items():
        try:
            text = resolve_intrinsic(value, lookup)
        except UnresolvableError as error:
            warn(f"environment variable {name} dropped: {error}")
            continue
        if not isinstance(value, str) and text[:1] in ("{", "["):
            try:
                json.loads(text)
            except ValueError as error:
                warn(f"environment variable {name} is not JSON once resolved ({error}); passed as it is")
        resolved[name] = text
    return resolved


def lambda_reserved_environment(spec: FunctionSpec, function_name: str, sandbox_dir: str) -> dict[str, str]:
    """The variables Lambda's runtime sets (``AWS_LAMBDA_FUNCTION_NAME``, ``_HANDLER`` ...), locally.

    No X-Ray daemon runs locally (``POWERTOOLS_TRACE_DISABLED``), and the function sees no ``~/.aws`` files:
    only what Lambda would give it.

    Example
    -------
    >>> lambda_reserved_environment(spec, "stack-worker", "/opt/sandbox")["AWS_LAMBDA_FUNCTION_NAME"]
    'stack-worker'
    """
    reserved = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
        "LAMBDA_RUNTIME_DIR": sandbox_dir,
        "_HANDLER": spec.handler,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    if spec.log_format is not None:
        reserved["AWS_LAMBDA_LOG_FORMAT"] = spec.log_format
    return reserved
