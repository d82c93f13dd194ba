"""Fixtures of the local runtime's unit tests: hand-written templates as a ``StackSpec`` (no synthesis)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from async_job_local.template import StackSpec
from tests.unit.local.templates import make_assets

StackFactory = Callable[[dict[str, Any]], StackSpec]


@pytest.fixture
def make_stack(tmp_path: Path) -> StackFactory:
    """Build a ``StackSpec`` of a template dict, its assets made under a temporary assembly directory."""
    make_assets(tmp_path)

    def build(template: dict[str, Any]) -> StackSpec:
        return StackSpec(artifact_id="Stack", stack_name="Stack", template=template, directory=tmp_path)

    return build
