"""The integ app (``integ_async_job.py``) still synthesizes the snapshot committed beside it.

integ-runner's own snapshot check cannot run here: its newest release (2.197.10) bundles a toolkit that reads
cloud assemblies up to schema 53, and aws-cdk-lib 2.275 writes 55 (docs/deploy.md). So this test does what
that check does without an account: synthesize the app and compare each template, the asset manifests and
``integ.json`` with the snapshot, asset hashes and the assertion provider's ``salt`` (a timestamp) scrubbed.
After a change to the construct that changes the templates on purpose, rewrite the snapshot and review its
diff::

    UPDATE_INTEG_SNAPSHOT=1 .venv/bin/pytest tests/integ
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import pytest

from tests.integ import integ_async_job
from tests.integ.replay_assertions import matches

ROOT: Final = Path(__file__).resolve().parents[2]
SNAPSHOT: Final = Path(__file__).resolve().parent / "integ_async_job.py.snapshot"
#: The files of the assembly that the snapshot holds: what integ-runner compares, without the asset sources
#: (build outputs: the function code, the runtime layer and the assertion provider's bundle).
COMPARED: Final = ("*.template.json", "*.assets.json", "integ.json", "manifest.json", "cdk.out")
_ASSET_HASH: Final = re.compile(r"\b[0-9a-f]{64}\b")
#: An asset manifest's destination id: its last part is a hash of the destination, object key included.
_DESTINATION: Final = re.compile(r"\b(current_account-current_region)-[0-9a-f]{8}\b")


def _scrub_text(text: str) -> str:
    return _DESTINATION.sub(r"\1-<hash>", _ASSET_HASH.sub("<asset-hash>", text))


def scrub(value: Any, key: str | None = None) -> Any:
    """``value`` without what changes from one synthesis to the next when the template does not."""
    if isinstance(value, dict):
        scrubbed: dict[str, Any] = {}
        hashed: dict[str, list[Any]] = {}
        for k, v in value.items():
            name = _scrub_text(k)
            if name == k:
                scrubbed[k] = scrub(v, k)
            else:  # assets by hash (an asset manifest's "files"): several become one key, a list of them
                hashed.setdefault(name, []).append(scrub(v, k))
        return scrubbed | {name: sorted(items, key=json.dumps) for name, items in hashed.items()}
    if isinstance(value, list):
        return [scrub(item) for item in value]
    if key == "salt":  # the assertion provider's Date.now(), to force an update on every deploy
        return "<salt>"
    if isinstance(value, str):
        return _scrub_text(value)
    return value


def snapshot_files(directory: Path) -> dict[str, Any]:
    """The compared files of an assembly directory, by name, parsed and scrubbed."""
    return {
        path.name: scrub(json.loads(path.read_text()))
        for pattern in COMPARED
        for path in sorted(directory.glob(pattern))
    }


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The integ app synthesized once, as integ-runner runs it (``python integ_async_job.py``)."""
    outdir = tmp_path_factory.mktemp("integ") / "cdk.out"
    integ_async_job.build_app(str(outdir)).synth()
    if os.environ.get("UPDATE_INTEG_SNAPSHOT") == "1":
        shutil.rmtree(SNAPSHOT, ignore_errors=True)
        SNAPSHOT.mkdir()
        for pattern in COMPARED:
            for path in outdir.glob(pattern):
                shutil.copy2(path, SNAPSHOT / path.name)
    return outdir


def test_the_integ_app_synthesizes_its_committed_snapshot(assembly: Path) -> None:
    got, want = snapshot_files(assembly), snapshot_files(SNAPSHOT)
    assert sorted(got) == sorted(want), (
        "files differ: run UPDATE_INTEG_SNAPSHOT=1 .venv/bin/pytest tests/integ"
    )
    for name in want:
        assert got[name] == want[name], (
            f"{name} changed: review, then UPDATE_INTEG_SNAPSHOT=1 pytest tests/integ"
        )


def test_the_integ_test_names_its_stack_and_assertion_stack(assembly: Path) -> None:
    (case,) = json.loads((assembly / "integ.json").read_text())["testCases"].values()
    assert case["stacks"] == [integ_async_job.STACK_NAME]
    assert case["stackUpdateWorkflow"] is False  # the snapshot holds no asset sources to deploy it from
    assertions = json.loads((assembly / f"{case['assertionStackName']}.template.json").read_text())
    calls = [
        r for r in assertions["Resources"].values() if r["Type"] == "Custom::DeployAssert@SdkCallLambdainvoke"
    ]
    assert len(calls) == 2  # the submit, then the status read polled by a waiter state machine
    state_machines = [
        r for r in assertions["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    assert len(state_machines) == 1


def test_scrub_replaces_asset_hashes_and_the_salt_only() -> None:
    digest = "b" * 64
    assert scrub({"S3Key": f"{digest}.zip", "salt": "1796125462862", "n": 3, "l": [digest]}) == {
        "S3Key": "<asset-hash>.zip",
        "salt": "<salt>",
        "n": 3,
        "l": ["<asset-hash>"],
    }


def test_scrub_keeps_every_asset_keyed_by_its_hash() -> None:
    files = {"a" * 64: {"path": "asset." + "a" * 64}, "c" * 64: {"path": "asset.zip"}}
    assert scrub({"files": files}) == {
        "files": {"<asset-hash>": [{"path": "asset.<asset-hash>"}, {"path": "asset.zip"}]}
    }


def test_the_integ_assertions_replayed_on_moto_drive_the_job_to_succeeded(assembly: Path) -> None:
    # GIVEN the synthesized assertions, replayed in a process of their own against the real handlers on moto
    environ = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    environ |= {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "tests.integ.replay_assertions", str(assembly)],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # THEN the submit is accepted, the worker runs the job, and the status read is what the assertion expects
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "test_case": f"{integ_async_job.TEST_NAME}/DefaultTest",
        "submit_status": 202,
        "read_status": 200,
        "job_status": "SUCCEEDED",
        "expectation_matches": True,
    }


@pytest.mark.parametrize(("status", "verdict"), [("SUCCEEDED", True), ("RUNNING", False), ("FAILED", False)])
def test_the_replay_matches_the_expectation_only_for_a_job_that_succeeded(status: str, verdict: bool) -> None:
    expected = {
        "$ObjectLike": {
            "StatusCode": 200,
            "Payload": {
                "$SerializedJson": {
                    "$ObjectLike": {"body": {"$SerializedJson": {"$ObjectLike": {"status": "SUCCEEDED"}}}}
                }
            },
        }
    }
    read = {"statusCode": 200, "body": json.dumps({"id": "x", "status": status})}
    assert matches(expected, {"StatusCode": 200, "Payload": json.dumps(read)}) is verdict
