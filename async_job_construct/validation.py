"""Synth-time checks of ``AsyncJobApi`` and job type props.

Every check names the prop, the value given and the fix, the way aws-cdk-lib's own messages do
("Maximum batch size must be between 1 and 10 inclusive (given 12)"). Unresolved tokens are skipped: their
value is only known at deploy time.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from aws_cdk import Duration, Token
from aws_cdk import aws_lambda as lambda_

from lambda_handlers import contract

__all__ = [
    "PropValueError",
    "check_code_asset",
    "check_duration",
    "check_duration_range",
    "check_instance",
    "check_int",
    "check_int_range",
    "check_job_type_name",
    "check_python_handler",
    "check_python_runtime",
    "check_worker_environment",
]

_HANDLER_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
#: Variables the construct or Lambda set on a worker; a team may not set them.
RESERVED_ENV_PREFIXES: Final = ("ASYNC_JOB_", "AWS_", "LAMBDA_", "_")
#: Powertools variables the construct sets: metrics are dimensioned by API (the service) and job type, so a
#: team's own service name or namespace would merge two APIs' series or split one.
OWNED_POWERTOOLS_PREFIXES: Final = (
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_",
    "POWERTOOLS_TRACE_DISABLED",
)
_RUNTIME_PACKAGE: Final = "lambda_handlers"


class PropValueError(ValueError):
    """A prop of ``AsyncJobApi`` or of a job type has a value the construct cannot build, found at synth time.

    Examples
    --------
    >>> raise PropValueError("batch_size", 11, "must be between 1 and 10", "Pass a value from 1 to 10.")
    Traceback (most recent call last):
    PropValueError: batch_size must be between 1 and 10 (given 11). Pass a value from 1 to 10.
    """

    def __init__(self, prop: str, given: object, problem: str, fix: str) -> None:
        self.prop = prop
        self.given = given
        super().__init__(f"{prop} {problem} (given {given}). {fix}")


def _quoted(value: object) -> str:
    return f"{value!r} of type {type(value).__name__}"


def check_duration(prop: str, value: object) -> Duration:
    """Return ``value`` if it is a ``Duration``, else raise ``PropValueError`` saying how to make one."""
    if isinstance(value, Duration):
        return value
    if isinstance(value, datetime.timedelta):
        fix = f"Pass Duration.seconds({value.total_seconds():g}) (aws_cdk.Duration, not datetime.timedelta)."
    elif isinstance(value, int | float) and not isinstance(value, bool):
        fix = f"Pass an aws_cdk.Duration, e.g. Duration.seconds({value}) if you meant seconds."
    else:
        fix = "Pass an aws_cdk.Duration, e.g. Duration.minutes(5)."
    raise PropValueError(prop, _quoted(value), "must be an aws_cdk.Duration", fix)


def check_instance(prop: str, value: object, expected: type, example: str) -> None:
    """Raise ``PropValueError`` unless ``value`` is an instance of ``expected`` (``example`` shows one)."""
    if not isinstance(value, expected):
        raise PropValueError(prop, _quoted(value), f"must be a {expected.__name__}", f"Pass {example}.")


def check_int(prop: str, value: object) -> int:
    """Return ``value`` if it is an ``int`` (or a number token), else raise ``PropValueError``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        fix = (
            f"Pass a whole number, e.g. {prop}={value.strip()}."
            if isinstance(value, str) and value.strip().isdigit()
            else "Pass a whole number."
        )
        raise PropValueError(prop, _quoted(value), "must be an int", fix)
    if isinstance(value, float) and not Token.is_unresolved(value):
        if not value.is_integer():
            raise PropValueError(prop, _quoted(value), "must be a whole number", "Pass an int.")
        return int(value)
    return value  # type: ignore[return-value]  # an int, or a number token (a float) resolved at deploy


def check_int_range(prop: str, value: int | float, low: int, high: int, fix: str = "") -> None:
    """Raise ``PropValueError`` unless ``low <= value <= high`` (tokens pass)."""
    if Token.is_unresolved(value):
        return
    if value != int(value) or not low <= value <= high:
        raise PropValueError(
            prop,
            value,
            f"must be a whole number between {low} and {high} inclusive",
            fix or f"Pass a value from {low} to {high}.",
        )


def check_duration_range(prop: str, value: Duration, low: Duration, high: Duration, fix: str = "") -> None:
    """Raise ``PropValueError`` unless ``low <= value <= high`` (tokens pass)."""
    if value.is_unresolved():
        return
    millis = value.to_milliseconds()
    if not low.to_milliseconds() <= millis <= high.to_milliseconds():
        raise PropValueError(
            prop,
            value.to_human_string(),
            f"must be between {low.to_human_string()} and {high.to_human_string()} inclusive",
            fix or f"Pass a Duration from {low.to_human_string()} to {high.to_human_string()}.",
        )


def check_python_handler(prop: str, value: object) -> str:
    """Return ``value`` if it looks like ``module.function`` (dotted packages allowed), else raise."""
    if not isinstance(value, str) or not _HANDLER_PATTERN.match(value):
        raise PropValueError(
            prop,
            repr(value),
            "must name a Python function as 'module.function'",
            "Pass e.g. handler='reports.generate' for def generate(payload, job) in reports.py at the root of "
            "`code`.",
        )
    return value


def check_python_runtime(
    prop: str, runtime: lambda_.Runtime, *, minimum_minor: int = 11, why: str = ""
) -> None:
    """Raise ``PropValueError`` unless ``runtime`` is Python 3.``minimum_minor`` or later (``why`` says why)."""
    prefix = "python3."
    minor = runtime.name.removeprefix(prefix)
    if (
        runtime.family != lambda_.RuntimeFamily.PYTHON
        or not runtime.name.startswith(prefix)
        or not minor.isdigit()
        or int(minor) < minimum_minor
    ):
        raise PropValueError(
            prop,
            runtime.name,
            f"must be a Python runtime of version 3.{minimum_minor} or later{why}",
            f"Pass lambda_.Runtime.PYTHON_3_14 (the default) or another python3.{minimum_minor}+ runtime.",
        )


def check_worker_environment(prop: str, environment: Mapping[str, str]) -> None:
    """Raise ``PropValueError`` for a variable the construct, Lambda or the metrics' identity own."""
    for name, value in environment.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise PropValueError(
                prop,
                f"{name!r}: {_quoted(value)}",
                "must map variable names to strings",
                "Pass string values, e.g. {'REPORT_BUCKET': bucket.bucket_name, 'LIMIT': '10'}.",
            )
        if name.startswith(RESERVED_ENV_PREFIXES):
            raise PropValueError(
                prop,
                repr(name),
                f"must not set a reserved variable (names starting {', '.join(RESERVED_ENV_PREFIXES)})",
                "Rename the variable; the construct and Lambda set these themselves.",
            )
        if name.startswith(OWNED_POWERTOOLS_PREFIXES):
            raise PropValueError(
                prop,
                repr(name),
                "must not set the Powertools service name, metrics or tracing switches: the construct sets them "
                "so that metrics are dimensioned by API (service) and job type, and two APIs never share a series",
                "Drop the variable; use metrics_namespace on AsyncJobApi for the namespace. Other POWERTOOLS_* "
                "settings (e.g. POWERTOOLS_LOG_LEVEL) are allowed.",
            )


def check_job_type_name(name: object, taken: Mapping[str, object]) -> str:
    """Return ``name`` if it is a valid, unused job type name (it is a path segment and a metric dimension)."""
    if not isinstance(name, str) or not contract.JOB_TYPE_NAME.fullmatch(name):
        raise PropValueError(
            "name",
            repr(name),
            f"must match {contract.JOB_TYPE_NAME.pattern} (it is the path segment of POST /{{name}} and a metric "
            "dimension)",
            "Pass a lowercase name such as 'reports' or 'pdf-export'.",
        )
    if name in taken:
        raise PropValueError(
            "name",
            repr(name),
            "is already a job type of this API (each type has its own POST route)",
            f"Pick another name; the types so far are {', '.join(sorted(taken))}.",
        )
    return name


def _module_candidates(root: Path, module: str) -> list[Path]:
    *packages, last = module.split(".")
    folder = root.joinpath(*packages)
    return [
        folder / f"{last}.py",
        folder / last / "__init__.py",
        *folder.glob(f"{last}.*.so"),
        folder / f"{last}.so",
    ]


def check_code_asset(handler: str, code: lambda_.Code) -> None:
    """When ``code`` is a local folder: its handler module exists, and it does not shadow our runtime.

    Lambda puts the function's code before its layers on ``sys.path``, so a ``lambda_handlers`` package of the
    team's would be imported instead of the runtime layer's: every job would fail to start and end dead-lettered.
    """
    if not isinstance(code, lambda_.AssetCode):
        return
    root = Path(code.path)
    if not root.is_dir():
        return  # a zip file: not inspected
    if (root / _RUNTIME_PACKAGE).exists() or (root / f"{_RUNTIME_PACKAGE}.py").exists():
        raise PropValueError(
            "code",
            f"'{root}' holding {_RUNTIME_PACKAGE}/",
            f"must not contain a top-level '{_RUNTIME_PACKAGE}' package: Lambda puts your code before the runtime "
            f"layer on sys.path, so yours would shadow the async-job runtime and every job would end dead-lettered",
            f"Rename your package (or exclude it from the asset); import JobContext and JobFailedError from "
            f"{_RUNTIME_PACKAGE}, which the runtime layer provides.",
        )
    module = handler.rpartition(".")[0]
    candidates = _module_candidates(root, module)
    if not any(path.is_file() for path in candidates):
        raise PropValueError(
            "handler",
            repr(handler),
            f"names module '{module}', which is not in the code folder '{root}'",
            f"Add {candidates[0].relative_to(root)} (or {candidates[1].relative_to(root)}) to the folder, or fix "
            "the handler's module path (relative to the folder's root).",
        )
