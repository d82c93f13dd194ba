"""CloudFormation expressions, evaluated against the local resources.

``referenced_id`` finds the logical id a ``Ref`` or ``Fn::GetAtt`` points at (to read the template's wiring);
``resolve_intrinsic`` evaluates an expression to a string (to give functions their environment).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from async_job_local.errors import UnresolvableError

__all__ = ["referenced_id", "resolve_intrinsic"]


def referenced_id(value: Any) -> str | None:
    """The logical id ``value`` points at: ``{"Ref": id}`` or ``{"Fn::GetAtt": [id, attr]}``, else None.

    Example
    -------
    >>> referenced_id({"Fn::GetAtt": ["Queue4A7E3555", "Arn"]})
    'Queue4A7E3555'
    """
    if isinstance(value, Mapping):
        if isinstance(value.get("Ref"), str):
            return str(value["Ref"])
        get_att = value.get("Fn::GetAtt")
        if isinstance(get_att, list) and get_att and isinstance(get_att[0], str):
            return get_att[0]
        if isinstance(get_att, str):
            return get_att.split(".", 1)[0]
    return None


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
