"""Lambda event filtering (``FilterCriteria``) for the records of an event source mapping, locally.

A pattern is a JSON object whose keys name keys of the record (nested objects name nested keys) and whose
leaves are lists of rules; a record matches when every key of the pattern matches, a key matching when one of
its rules does (for a list value, when one of its items does). The rules supported: exact values (strings,
numbers, booleans, null), ``{"exists": true|false}``, ``{"prefix": "..."}`` and ``{"anything-but": value |
[values] | {"prefix": "..."}}``. A mapping's patterns are alternatives: a record is delivered when one matches.

For DynamoDB Streams the record is Lambda's record: ``{"eventName": ["INSERT"], "dynamodb": {"NewImage":
{"status": {"S": ["SUCCEEDED"]}}}}`` matches inserts of items whose ``status`` string is ``SUCCEEDED``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = ["FilterPatternError", "matches", "matches_any", "validate_pattern"]

_MISSING: Final = object()
_OPERATORS: Final = frozenset({"exists", "prefix", "anything-but"})


class FilterPatternError(ValueError):
    """A filter pattern the local runtime cannot evaluate (an unsupported operator, a malformed rule)."""


def validate_pattern(pattern: Mapping[str, Any], path: str = "") -> None:
    """Raise ``FilterPatternError`` naming the first part of ``pattern`` that is not supported locally.

    Example
    -------
    >>> try:
    ...     validate_pattern({"eventName": [{"numeric": [">", 1]}]})
    ... except FilterPatternError as error:
    ...     print(error)
    eventName: the operator 'numeric' is not supported locally (exists, prefix, anything-but and exact values are)
    """
    for key, value in pattern.items():
        where = f"{path}.{key}" if path else str(key)
        if isinstance(value, Mapping):
            validate_pattern(value, where)
        elif isinstance(value, list):
            for rule in value:
                _validate_rule(rule, where)
        else:
            raise FilterPatternError(f"{where}: a pattern's leaves are lists of rules (given {value!r})")


def _validate_rule(rule: Any, where: str) -> None:
    if not isinstance(rule, Mapping):
        return
    if len(rule) != 1 or next(iter(rule)) not in _OPERATORS:
        name = next(iter(rule), "")
        raise FilterPatternError(
            f"{where}: the operator {name!r} is not supported locally (exists, prefix, anything-but and exact "
            "values are)"
        )
    ((operator, argument),) = rule.items()
    if operator == "exists" and not isinstance(argument, bool):
        raise FilterPatternError(f"{where}: exists takes true or false (given {argument!r})")
    if operator == "prefix" and not isinstance(argument, str):
        raise FilterPatternError(f"{where}: prefix takes a string (given {argument!r})")
    if (
        operator == "anything-but"
        and isinstance(argument, Mapping)
        and (set(argument) != {"prefix"} or not isinstance(argument["prefix"], str))
    ):
        raise FilterPatternError(f"{where}: anything-but takes values or {{'prefix': '...'}}")


def matches_any(patterns: Sequence[Mapping[str, Any]], record: Mapping[str, Any]) -> bool:
    """Whether one of ``patterns`` matches ``record`` (True when there are none: nothing is filtered).

    Example
    -------
    >>> matches_any([{"eventName": ["REMOVE"]}, {"eventName": ["INSERT"]}], {"eventName": "INSERT"})
    True
    >>> matches_any([], {"eventName": "MODIFY"})
    True
    """
    return not patterns or any(matches(pattern, record) for pattern in patterns)


def matches(pattern: Mapping[str, Any], record: Any) -> bool:
    """Whether ``record`` matches ``pattern``.

    Example
    -------
    >>> pattern = {"dynamodb": {"NewImage": {"status": {"S": ["SUCCEEDED", "FAILED"]}}}}
    >>> matches(pattern, {"dynamodb": {"NewImage": {"status": {"S": "FAILED"}}}})
    True
    >>> matches({"dynamodb": {"OldImage": [{"exists": False}]}}, {"dynamodb": {"NewImage": {}}})
    True
    """
    if not isinstance(record, Mapping):
        return False
    for key, expected in pattern.items():
        value = record.get(key, _MISSING)
        if isinstance(expected, Mapping):
            if not matches(expected, {} if value is _MISSING else value):
                return False
        elif not _matches_rules(expected, value):
            return False
    return True


def _matches_rules(rules: Sequence[Any], value: Any) -> bool:
    if isinstance(value, list):
        return any(_matches_rules(rules, item) for item in value) or (
            not value and any(_is_exists(rule, False) for rule in rules)
        )
    return any(_matches_rule(rule, value) for rule in rules)


def _is_exists(rule: Any, flag: bool) -> bool:
    return isinstance(rule, Mapping) and rule.get("exists") is flag


def _matches_rule(rule: Any, value: Any) -> bool:
    if not isinstance(rule, Mapping):
        return value is not _MISSING and _same(rule, value)
    ((operator, argument),) = rule.items()
    if operator == "exists":
        return (value is not _MISSING) is argument
    if value is _MISSING:
        return False
    if operator == "prefix":
        return isinstance(value, str) and value.startswith(argument)
    # anything-but
    if isinstance(argument, Mapping):
        return isinstance(value, str) and not value.startswith(argument["prefix"])
    excluded = argument if isinstance(argument, list) else [argument]
    return not any(_same(item, value) for item in excluded)


def _same(expected: Any, value: Any) -> bool:
    """Equality as event patterns see it: no ``True == 1``, numbers compared as numbers."""
    if isinstance(expected, bool) or isinstance(value, bool):
        return expected is value
    if isinstance(expected, int | float) and isinstance(value, int | float):
        return float(expected) == float(value)
    return bool(type(expected) is type(value) and expected == value)
