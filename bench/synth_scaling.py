"""How synth time and resource count grow with the number of AsyncJobApi instances in one stack.

Synthesizes one stack with 1, 5 and 20 instances (fresh process each, medians of --runs), prints time, peak RSS,
resources per instance, and how many instances fit CloudFormation's 500-resource limit per stack.

    .venv/bin/python bench/synth_scaling.py [--runs 3] [--counts 1 5 20]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, median, run_fresh

CFN_RESOURCE_LIMIT = 500
PROGRAM = """
import sys
sys.path.insert(0, {root!r})
import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from async_job_construct import AsyncJobApi
app = cdk.App(outdir={out!r})
stack = cdk.Stack(app, "Scaling")
code = lambda_.Code.from_asset({code!r})
for i in range({count}):
    AsyncJobApi(stack, f"Jobs{{i}}", handler="report.generate", code=code)
app.synth()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 5, 20])
    args = parser.parse_args()

    rows = []
    for count in args.counts:
        seconds, rss, resources = [], [], 0
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as out:
                program = PROGRAM.format(root=str(ROOT), out=out, code=str(ROOT / "sample_jobs"), count=count)
                try:
                    run = run_fresh([sys.executable, "-c", program])
                except RuntimeError as error:
                    if "TooManyResourcesInStack" not in str(error):
                        raise
                    found = re.search(r"Number of resources in stack '\w+': (\d+)", str(error))
                    print(
                        f"instances={count:3d} does not synthesize: {found.group(1) if found else '?'} resources > 500"
                    )
                    break
                resources = len(json.loads((Path(out) / "Scaling.template.json").read_text())["Resources"])
            seconds.append(run.seconds)
            rss.append(run.peak_rss_mb)
        if not seconds:
            continue
        rows.append((count, median(seconds), median(rss), resources))
        print(
            f"instances={count:3d} synth {median(seconds):6.2f} s  peak RSS {median(rss):5.0f} MB  resources {resources}"
        )

    print()
    print(f"{'instances':>9s}{'synth s':>9s}{'s/instance':>12s}{'resources':>11s}{'per instance':>14s}")
    for count, seconds, _, resources in rows:
        print(f"{count:9d}{seconds:9.2f}{seconds / count:12.2f}{resources:11d}{resources / count:14.1f}")
    (c1, _, _, r1), (cn, _, _, rn) = rows[0], rows[-1]  # resources grow linearly: fixed + per_instance * n
    per_instance = (rn - r1) / (cn - c1) if cn != c1 else r1 / c1
    fixed = r1 - per_instance * c1
    print(
        f"instances_per_stack={int((CFN_RESOURCE_LIMIT - fixed) // per_instance)} (CloudFormation limit 500)"
    )


if __name__ == "__main__":
    main()
