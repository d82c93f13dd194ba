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
#: A function's ``current_version`` logical id ends with a hash of the function's configuration, its code's
#: asset hash included.
_VERSION_HASH = re.compile(r"(CurrentVersion[0-9A-F]{8})[0-9a-f]{32}\b")


def _scrub_text(text: str) -> str:
    return _VERSION_HASH.sub(r"\1<function-hash>", _ASSET_HASH.sub("<asset-hash>", text))


def scrub(value: Any) -> Any:
    """Replace asset hashes (they change with any byte of Lambda code) by a fixed marker."""
    if isinstance(value, dict):
        return {_scrub_text(key): scrub(item) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item) for item in value]
    if isinstance(value, str):
        return _scrub_text(value)
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


def test_scrub_replaces_the_configuration_hash_of_a_current_version() -> None:
    version = "WorkerCurrentVersionD024B3B8125df39267dfe614f7a1c5ca8577a4d8"
    assert scrub({version: {"Ref": version}, "Deployment251439306e3b65955f07cca26d3a1db6de6c4704": 1}) == {
        "WorkerCurrentVersionD024B3B8<function-hash>": {"Ref": "WorkerCurrentVersionD024B3B8<function-hash>"},
        "Deployment251439306e3b65955f07cca26d3a1db6de6c4704": 1,
    }


def test_sample_stack_template_matches_snapshot(
    sample_template: dict[str, Any], snapshot: SnapshotAssertion
) -> None:
    assert scrub(sample_template) == snapshot.use_extension(JSONSnapshotExtension)


def test_sample_stack_has_every_part_of_the_pattern(sample_template: dict[str, Any]) -> None:
    types = [r["Type"] for r in sample_template["Resources"].values()]
    # submit, status, worker, dead-letter, events; the archive type's durable worker and starter
    assert types.count("AWS::Lambda::Function") == 7
    # the job queue, its DLQ, the events' DLQ; the archive type's queue and DLQ
    assert types.count("AWS::SQS::Queue") == 5
    assert types.count("AWS::Lambda::Version") == 1  # the archive worker's, which its executions run
    assert types.count("AWS::Events::Rule") == 1  # the archive starter's sweep
    assert types.count("AWS::S3::Bucket") == 1
    assert types.count("AWS::DynamoDB::Table") == 1
    assert types.count("AWS::ApiGateway::RestApi") == 1
    assert "JobsUrl" in sample_template["Outputs"]
