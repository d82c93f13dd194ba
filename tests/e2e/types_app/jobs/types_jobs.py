"""The two job types' handlers of the e2e types app: each says which one ran."""

from __future__ import annotations

from typing import Any


def report(payload: dict[str, Any], job: Any) -> dict[str, Any]:
    """The ``reports`` type's handler."""
    return {"handler": "report", "echo": payload}


def thumb(payload: dict[str, Any], job: Any) -> dict[str, Any]:
    """The ``thumbs`` type's handler."""
    return {"handler": "thumb", "echo": payload}
