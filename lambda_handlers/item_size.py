"""How big a DynamoDB item is, as DynamoDB counts it against its 400 KB limit (``models`` re-exports these)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

__all__ = ["ITEM_MAX_BYTES", "ItemError", "item_size"]

#: The largest item written: DynamoDB's 400 KB limit (names and values together) read as 400,000 bytes, the
#: stricter of its two readings (and under moto's own 405,000).
ITEM_MAX_BYTES: Final = 400_000
#: The most a DynamoDB number takes: 38 significant digits, 1 byte per two, plus 1.
_NUMBER_MAX_BYTES: Final = 21


class ItemError(ValueError):
    """A status-table item does not have the shape in ``docs/design.md``."""


def item_size(item: Mapping[str, AttributeValueTypeDef]) -> int:
    """An item's size as DynamoDB counts it against ``ITEM_MAX_BYTES``, rounded up where DynamoDB estimates.

    Each attribute costs its name's UTF-8 bytes plus its value: a string its UTF-8 bytes, a binary its bytes,
    a number 1 byte per two significant digits plus 1 (counted as 21, the most a number takes), a boolean or
    null 1, a list or map 3 plus its members (a map's member names included).

    Examples
    --------
    >>> item_size({"pk": {"S": "abc"}, "n": {"N": "42"}, "ok": {"BOOL": True}})
    30
    """
    return sum(len(name.encode("utf-8")) + _value_size(value) for name, value in item.items())


def _value_size(value: Mapping[str, Any]) -> int:
    ((kind, content),) = value.items()
    if kind == "S":
        return len(str(content).encode("utf-8"))
    if kind == "B":
        return len(content)
    if kind == "N":
        return _NUMBER_MAX_BYTES
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: member}) for member in content)
    if kind == "L":
        return 3 + sum(_value_size(member) for member in content)
    if kind == "M":
        return 3 + item_size(content)
    raise ItemError(f"unknown DynamoDB attribute type {kind!r}")
