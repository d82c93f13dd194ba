"""``TransactWriteItems`` for the serialised backend: all or nothing, at the cost of the items it names.

moto makes a transaction atomic by deep-copying every table it names before the first action, and putting the
copies back when an action fails. Under ``SerialisedMotoApp``'s lock that is correct, but its cost is the whole
table's: about 8 ms at 10 items, 40 ms at 1,000 and 180 ms at 3,000 (docs/local-runtime.md), and every other
request waits behind it. A keyed submit is one transaction (the job and its idempotency key), a replay one that
fails on purpose, so a local backlog of a few thousand keyed jobs spent most of its time copying tables.

Here the same transaction is run as its actions, through moto's own item operations, keeping copies of only
the items the transaction names and writing those back if any action fails. That is atomic only because no
other request runs meanwhile: the replacement is used for requests inside ``SerialisedMotoApp`` (which sets
:data:`SERIALISED` while it holds its lock), and moto's own implementation everywhere else (``mock_aws`` in
tests). What DynamoDB promises, and this keeps:

- every action's condition is judged against the table as it was before the transaction: an item may be named
  once only (``ValidationException`` otherwise), so an earlier action never changed what a later one checks;
- when any condition fails, nothing is written, and the ``TransactionCanceledException`` has one reason per
  action, in order: ``None`` or ``ConditionalCheckFailed`` (with the item, for ``ReturnValuesOnConditionCheckFailure:
  ALL_OLD``), or the error an action raised;
- a malformed request (more than 100 actions, two on one item, two operations in one action, an invalid item)
  is a ``ValidationException`` and writes nothing.
"""

from __future__ import annotations

import copy
import functools
import threading
from typing import Any, Final

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend

__all__ = ["SERIALISED", "install"]

#: Set (``SERIALISED.active = True``) by a thread while it holds the serialising lock and runs one request.
SERIALISED: Final = threading.local()

_ACTIONS: Final = frozenset({"ConditionCheck", "Put", "Delete", "Update"})
_MAX_ACTIONS: Final = 100
_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Replace ``DynamoDBBackend.transact_write_items`` in this process (once) by one that defers to moto's
    own unless the calling thread is serialised."""
    global _installed
    with _install_lock:
        if _installed:
            return
        own = DynamoDBBackend.transact_write_items

        @functools.wraps(own)
        def transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
            if getattr(SERIALISED, "active", False):
                _transact(backend, transact_items)
            else:
                own(backend, transact_items)

        DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign,assignment]
        _installed = True


def _key_of(backend: Any, kind: str, action: dict[str, Any]) -> dict[str, Any]:
    if kind != "Put":
        return dict(action["Key"])
    table = backend.get_table(action["TableName"])
    item = action["Item"]
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return {name: item[name] for name in names if name in item}


def _parse(
    backend: Any, transact_items: list[dict[str, Any]]
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Each action as (kind, its parameters, the key it names); malformed requests are refused here."""
    if len(transact_items) > _MAX_ACTIONS:
        raise TooManyTransactionsException()
    actions = []
    named: set[tuple[str, str]] = set()
    for entry in transact_items:
        if len(entry) != 1:
            raise TransactWriteSingleOpException()
        ((kind, action),) = entry.items()
        if kind not in _ACTIONS:
            raise ValueError(f"Unsupported transaction operation: {kind}")
        key = _key_of(backend, kind, action)
        identity = (str(action["TableName"]), repr(sorted(key.items())))
        if identity in named:
            raise MultipleTransactionsException()
        named.add(identity)
        actions.append((kind, action, key))
    return actions


def _transact(backend: Any, transact_items: list[dict[str, Any]]) -> None:
    actions = _parse(backend, transact_items)
    before = [
        (action["TableName"], key, backend.get_item(action["TableName"], key)) for _, action, key in actions
    ]
    saved = [(table, key, copy.deepcopy(item)) for table, key, item in before]
    reasons: list[tuple[Any, Any, Any]] = []
    try:
        for (kind, action, key), (_, _, current) in zip(actions, before, strict=True):
            try:
                _check(action, current)
                _apply(backend, kind, action, key)
                reasons.append((None, None, None))
            except ConditionalCheckFailed as failed:
                old = current.to_json()["Attributes"] if current is not None else None
                wants_old = action.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
                reasons.append(("ConditionalCheckFailed", str(failed.message), old if wants_old else None))
            except MockValidationException:
                raise
            except Exception as error:
                reasons.append((type(error).__name__, str(error), None))
        if any(code is not None for code, _, _ in reasons):
            raise TransactionCanceledException(reasons)
    except Exception:
        _restore(backend, saved)
        raise


def _check(action: dict[str, Any], current: Any) -> None:
    """Raise ``ConditionalCheckFailed`` unless the action's condition holds for the item as it is now."""
    expression = action.get("ConditionExpression")
    if expression is None:
        return
    condition = get_filter_expression(
        expression, action.get("ExpressionAttributeNames"), action.get("ExpressionAttributeValues")
    )
    if not condition.expr(current):
        raise ConditionalCheckFailed()


def _apply(backend: Any, kind: str, action: dict[str, Any], key: dict[str, Any]) -> None:
    """Write one action whose condition held (so it is written without one)."""
    table = action["TableName"]
    if kind == "Put":
        backend.put_item(table, action["Item"])
    elif kind == "Delete":
        backend.delete_item(table, key)
    elif kind == "Update":
        backend.update_item(
            table,
            key,
            update_expression=action["UpdateExpression"],
            expression_attribute_names=action.get("ExpressionAttributeNames"),
            expression_attribute_values=action.get("ExpressionAttributeValues"),
        )


def _restore(backend: Any, saved: list[tuple[str, dict[str, Any], Any]]) -> None:
    """Put every item the transaction named back as it was (absent ones deleted)."""
    for table, key, item in saved:
        if item is None:
            backend.delete_item(table, key)
        else:
            backend.put_item(table, item.to_json()["Attributes"])
