"""`cdk synth` through the pinned npm CLI and cdk.json produces the sample stack."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_cdk_cli_synthesizes_the_sample_stack(tmp_path: Path) -> None:
    cli = ROOT / "node_modules" / ".bin" / "cdk"
    assert cli.exists(), "the pinned CDK CLI is missing: run scripts/setup"
    env = {
        **os.environ,
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "CDK_DISABLE_VERSION_CHECK": "1",
    }
    result = subprocess.run(
        [str(cli), "synth", "--quiet", "--no-notices", "--output", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    template = json.loads((tmp_path / "AsyncJobSample.template.json").read_text())
    assert "JobsUrl" in template["Outputs"]
    # submit, status, dead-letter, events and the reports worker; the archive type's durable worker and starter
    assert sum(r["Type"] == "AWS::Lambda::Function" for r in template["Resources"].values()) == 7
