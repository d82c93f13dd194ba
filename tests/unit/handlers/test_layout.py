"""The runtime's layout: one concern per module, none sprawling, the store's names importable as before."""

from __future__ import annotations

from pathlib import Path

import pytest

import lambda_handlers

PACKAGE = Path(lambda_handlers.__file__).parent
#: "No module over about 400 lines" (issue 10), with a little slack for a docstring.
MAX_LINES = 450


@pytest.mark.parametrize("module", sorted(p.name for p in PACKAGE.glob("*.py")))
def test_no_module_sprawls(module: str) -> None:
    lines = len((PACKAGE / module).read_text(encoding="utf-8").splitlines())

    assert lines <= MAX_LINES, f"{module} has {lines} lines"


def test_the_store_still_exports_its_outcomes_and_errors() -> None:
    # GIVEN code written against the store before it was split (tests, the local runtime, tools)
    from lambda_handlers import outcomes, status_table, store

    # WHEN it imports the outcome types and errors from lambda_handlers.store THEN they are the same objects
    for name in (
        "ClaimStatus",
        "ClaimOutcome",
        "WriteOutcome",
        "CancelStatus",
        "CancelOutcome",
        "DeadLetterOutcome",
    ):
        assert getattr(store, name) is getattr(outcomes, name)
    for name in ("JobStoreError", "JobExistsError", "KeyInUseError"):
        assert getattr(store, name) is getattr(status_table, name)
    assert set(store.__all__) >= {
        "JobStore",
        "JobStoreError",
        "ClaimStatus",
        "WriteOutcome",
        "DeadLetterResult",
    }


def test_every_store_write_goes_through_one_conditional_update() -> None:
    # GIVEN the modules that write jobs WHEN their source is read THEN only the primitive calls UpdateItem
    callers = [p.name for p in PACKAGE.glob("*.py") if ".update_item(" in p.read_text(encoding="utf-8")]

    assert callers == ["status_table.py"]
