"""Synth-time checks of ``AsyncJobApi`` props.

Every check names the prop, the value given and the fix, the way aws-cdk-lib's own messages do
("Maximum batch size must be between 1 and 10 inclusive (given 12)"). Unresolved tokens are skipped: their
value is only known at deploy time.
"""

from __future__ import annotations

import re

from aws_cdk import Duration, Token

__all__ = [
    "PropValueError",
    "check_duration_range",
    "check_int_range",
    "check_python_handler",
]

_HANDLER_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


class PropValueError(ValueError):
    """A prop of ``AsyncJobApi`` has a value the construct cannot build, found at synth time."""

    def __init__(self, prop: str, given: object, problem: str, fix: str) -> None:
        self.prop = prop
        self.given = given
        super().__init__(f"{prop} {problem} (given {given}). {fix}")


def _describe(duration: Duration) -> str:
    return duration.to_human_string()


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
            _describe(value),
            f"must be between {_describe(low)} and {_describe(high)} inclusive",
            fix or f"Pass a Duration from {_describe(low)} to {_describe(high)}.",
        )


def check_python_handler(prop: str, value: str) -> None:
    """Raise ``PropValueError`` unless ``value`` looks like ``module.function`` (dotted packages allowed)."""
    if not _HANDLER_PATTERN.match(value):
        raise PropValueError(
            prop,
            repr(value),
            "must name a Python function as 'module.function'",
            "Pass e.g. handler='reports.generate' for def generate(payload, job) in reports.py at the root of "
            "`code`.",
        )
