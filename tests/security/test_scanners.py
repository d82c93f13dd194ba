"""cdk-nag (AwsSolutions), cfn-lint and checkov judge the sample stack and an every-option stack.

Each stack is synthesized once with cdk-nag registered; the test then reads cdk-nag's validation report and runs
cfn-lint and checkov on the written template. Findings the design has on purpose are acknowledged (cdk-nag) or
skipped (checkov) in the construct, each on its own resource with its reason (see the README's security model).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from cdk_nag import AwsSolutionsChecks

from app import build_app
from tests.security.stacks import build_all_options_stack, build_job_types_stack

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
REPORT_CONTEXT = {"@aws-cdk/core:validationReportJson": True}


@dataclass
class Scanned:
    template: Path
    nag_violations: list[dict[str, Any]]


def synth_with_nag(app: cdk.App, stack_name: str, outdir: Path) -> Scanned:
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    try:
        app.synth()
    except RuntimeError as error:  # cdk-nag fails synthesis while unacknowledged findings remain
        if "ValidationFailed" not in str(error):
            raise
    report = json.loads((outdir / "policy-validation-report.json").read_text())
    violations = [
        {
            "rule": v["ruleName"],
            "severity": v["severity"],
            "paths": [r["constructPath"] for r in v["violatingResources"]],
        }
        for plugin in report["pluginReports"]
        for v in plugin["violations"]
    ]
    return Scanned(template=outdir / f"{stack_name}.template.json", nag_violations=violations)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Scanned:
    outdir = tmp_path_factory.mktemp("sample")
    return synth_with_nag(build_app(outdir=str(outdir), context=REPORT_CONTEXT), "AsyncJobSample", outdir)


@pytest.fixture(scope="module")
def all_options(tmp_path_factory: pytest.TempPathFactory) -> Scanned:
    outdir = tmp_path_factory.mktemp("all-options")
    app = cdk.App(outdir=str(outdir), context=REPORT_CONTEXT)
    build_all_options_stack(app)
    return synth_with_nag(app, "AllOptions", outdir)


@pytest.fixture(scope="module")
def job_types(tmp_path_factory: pytest.TempPathFactory) -> Scanned:
    outdir = tmp_path_factory.mktemp("job-types")
    app = cdk.App(outdir=str(outdir), context=REPORT_CONTEXT)
    build_job_types_stack(app)
    return synth_with_nag(app, "JobTypes", outdir)


@pytest.fixture(params=["sample", "all_options", "job_types"])
def scanned(request: pytest.FixtureRequest) -> Scanned:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def test_cdk_nag_aws_solutions_has_no_unacknowledged_error_or_warning(scanned: Scanned) -> None:
    assert scanned.template.exists()
    assert scanned.nag_violations == []


def test_cfn_lint_finds_nothing(scanned: Scanned) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(scanned.template)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, ""), result.stdout + result.stderr


def test_checkov_fails_no_check_and_every_skip_has_a_reason(scanned: Scanned, tmp_path: Path) -> None:
    assert CHECKOV.exists(), "checkov is missing: run scripts/setup"
    result = subprocess.run(
        [
            str(CHECKOV),
            "-f",
            str(scanned.template),
            "--framework",
            "cloudformation",
            "--skip-download",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    failed = [(f["check_id"], f["resource"]) for f in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] > 50
    skipped = report["results"]["skipped_checks"]
    assert skipped, "the design's justified skips should show up as skipped"
    assert all(len(s["check_result"]["suppress_comment"]) > 40 for s in skipped), [
        s["check_id"] for s in skipped
    ]
