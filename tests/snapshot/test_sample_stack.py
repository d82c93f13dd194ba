"""The sample stack's template, snapshotted with asset hashes scrubbed.

The snapshot changes only when the template really does. Review a change with `pytest --snapshot-details`, accept
it with `pytest tests/snapshot --snapshot-update`.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from aws_cdk.assertions import Template
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from app import build_app

_ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")


def scrub(value: Any) -> Any:
    """Replace asset hashes (they change with any byte of Lambda code) by a fixed marker."""
    if isinstance(value, dict):
        return {key: scrub(item) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item) for item in value]
    if isinstance(value, str):
        return _ASSET_HASH.sub("<asset-hash>", value)
    return value


@pytest.fixture(scope="module")
def sample_template() -> dict[str, Any]:
    app = build_app()
    stack = app.node.find_child("AsyncJobSample")
    return Template.from_stack(stack).to_json()  # type: ignore[arg-type]


def test_scrub_replaces_only_asset_hashes() -> None:
    digest = "a" * 64
    assert scrub({"S3Key": f"{digest}.zip", "n": 3, "l": ["x"]}) == {
        "S3Key": "<asset-hash>.zip",
        "n": 3,
        "l": ["x"],
    }


def test_sample_stack_template_matches_snapshot(
    sample_template: dict[str, Any], snapshot: SnapshotAssertion
) -> None:
    assert scrub(sample_template) == snapshot.use_extension(JSONSnapshotExtension)


def test_sample_stack_has_every_part_of_the_pattern(sample_template: dict[str, Any]) -> None:
    types = [r["Type"] for r in sample_template["Resources"].values()]
    assert types.count("AWS::Lambda::Function") == 5  # submit, status, worker, dead-letter, events
    assert types.count("AWS::SQS::Queue") == 3  # the job queue, its DLQ, the events' DLQ
    assert types.count("AWS::S3::Bucket") == 1
    assert types.count("AWS::DynamoDB::Table") == 1
    assert types.count("AWS::ApiGateway::RestApi") == 1
    assert "JobsUrl" in sample_template["Outputs"]
