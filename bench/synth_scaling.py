"""How synth time and resource count grow with job types in one AsyncJobApi, and with AsyncJobApi instances.

Job types (the default): one stack with one ``AsyncJobApi`` of 1, 10 and 30 job types (``add_job_type``), against
one instance of the single-handler form (``AsyncJobApi(handler=..., code=...)``), measured in the same run and
interleaved (fresh process each, medians of --runs). Prints resources per extra type, how many types fit
CloudFormation's 500-resource limit per stack, and synth time as a ratio to the single-handler instance.
``--instances`` measures whole instances per stack instead (1, 5, 12).

    .venv/bin/python bench/synth_scaling.py [--runs 3] [--types 1 10 30] [--instances 1 5 12]
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
{body}
app.synth()
"""
SINGLE = 'AsyncJobApi(stack, "Jobs", handler="report.generate", code=code)'
INSTANCES = (
    'for i in range({count}):\n    AsyncJobApi(stack, f"Jobs{{i}}", handler="report.generate", code=code)'
)
TYPES = (
    'jobs = AsyncJobApi(stack, "Jobs")\n'
    'for i in range({count}):\n    jobs.add_job_type(f"type-{{i}}", handler="report.generate", code=code)'
)


def synth(body: str) -> tuple[float, float, int] | str:
    """(seconds, peak RSS MB, resources) of one fresh synth, or why it did not synthesize."""
    with tempfile.TemporaryDirectory() as out:
        program = PROGRAM.format(root=str(ROOT), out=out, code=str(ROOT / "sample_jobs"), body=body)
        try:
            run = run_fresh([sys.executable, "-c", program])
        except RuntimeError as error:
            if "TooManyResourcesInStack" not in str(error):
                raise
            found = re.search(r"Number of resources in stack '\w+': (\d+)", str(error))
            return f"does not synthesize: {found.group(1) if found else '?'} resources > {CFN_RESOURCE_LIMIT}"
        resources = len(json.loads((Path(out) / "Scaling.template.json").read_text())["Resources"])
    return run.seconds, run.peak_rss_mb, resources


def measure(cases: dict[str, str], runs: int) -> dict[str, tuple[float, float, int] | str]:
    """Median of ``runs`` synths per case, the cases interleaved so that machine noise hits them alike."""
    samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in cases}
    failed: dict[str, str] = {}
    for _ in range(runs):
        for name, body in cases.items():
            if name in failed:
                continue
            result = synth(body)
            if isinstance(result, str):
                failed[name] = result
            else:
                samples[name].append(result)
    results: dict[str, tuple[float, float, int] | str] = dict(failed)
    for name, values in samples.items():
        if values:
            results[name] = (median([v[0] for v in values]), median([v[1] for v in values]), values[0][2])
    return results


def report_types(counts: list[int], runs: int) -> None:
    cases = {"single": SINGLE, **{f"types={n}": TYPES.format(count=n) for n in counts}}
    results = measure(cases, runs)
    base = results["single"]
    assert not isinstance(base, str)
    print(f"{'stack':>22s}{'synth s':>9s}{'x single':>10s}{'RSS MB':>8s}{'resources':>11s}")
    print(f"{'single-handler form':>22s}{base[0]:9.2f}{1.0:10.2f}{base[1]:8.0f}{base[2]:11d}")
    rows = []
    for n in counts:
        result = results[f"types={n}"]
        if isinstance(result, str):
            print(f"{f'1 API, {n} types':>22s}  {result}")
            continue
        rows.append((n, result[2]))
        print(
            f"{f'1 API, {n} types':>22s}{result[0]:9.2f}{result[0] / base[0]:10.2f}{result[1]:8.0f}{result[2]:11d}"
        )
    (n1, r1), (nn, rn) = rows[0], rows[-1]
    per_type = (rn - r1) / (nn - n1)
    fits = n1 + int((CFN_RESOURCE_LIMIT - r1) // per_type)
    print(f"resources_per_extra_type={per_type:.1f} types_per_stack={fits} (CloudFormation limit 500)")


def report_instances(counts: list[int], runs: int) -> None:
    results = measure({f"instances={n}": INSTANCES.format(count=n) for n in counts}, runs)
    rows = []
    for n in counts:
        result = results[f"instances={n}"]
        if isinstance(result, str):
            print(f"instances={n:3d} {result}")
            continue
        rows.append((n, result[2]))
        print(
            f"instances={n:3d} synth {result[0]:6.2f} s  peak RSS {result[1]:5.0f} MB  resources {result[2]}"
        )
    (c1, r1), (cn, rn) = rows[0], rows[-1]
    per_instance = (rn - r1) / (cn - c1) if cn != c1 else r1 / c1
    fixed = r1 - per_instance * c1
    print(
        f"instances_per_stack={int((CFN_RESOURCE_LIMIT - fixed) // per_instance)} (CloudFormation limit 500)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--types", type=int, nargs="+", default=[1, 10, 30])
    parser.add_argument("--instances", type=int, nargs="*", default=None, help="measure instances instead")
    args = parser.parse_args()
    if args.instances is not None:
        report_instances(args.instances or [1, 5, 12], args.runs)
    else:
        report_types(args.types, args.runs)


if __name__ == "__main__":
    main()
