"""Team handlers the benchmarks run: one that succeeds at once, one that always fails."""

from __future__ import annotations

from typing import Any


def ok(payload: dict[str, Any], job: Any) -> dict[str, Any]:
    return {"echo": payload}


def fail(payload: dict[str, Any], job: Any) -> None:
    raise RuntimeError("this job always fails")
