"""Synth time of the sample stack vs the plain-L2 baseline of the seed article's design.

Each synth runs in a fresh process (as `cdk synth` does), interleaved sample/baseline so machine noise hits both
alike; prints wall time and peak RSS (medians), resource counts, and a last line `synth_ratio=<x>`
(sample median / baseline median). Target: <= 1.1 while shipping every feature.

    .venv/bin/python bench/synth.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, median, run_fresh

SYNTH = {
    "sample": "import sys; sys.path.insert(0, {root!r}); from app import build_app; build_app(outdir={out!r}).synth()",
    "baseline": (
        "import sys; sys.path.insert(0, {root!r}); from bench.baselines.seed_stack import build_app; "
        "build_app(outdir={out!r}).synth()"
    ),
}
TEMPLATES = {"sample": "AsyncJobSample.template.json", "baseline": "SeedBaseline.template.json"}


def resource_count(outdir: Path, name: str) -> int:
    return len(json.loads((outdir / TEMPLATES[name]).read_text())["Resources"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    times: dict[str, list[float]] = {name: [] for name in SYNTH}
    rss: dict[str, list[float]] = {name: [] for name in SYNTH}
    counts: dict[str, int] = {}
    for i in range(args.runs):
        for name, code in SYNTH.items():
            with tempfile.TemporaryDirectory() as out:
                run = run_fresh([sys.executable, "-c", code.format(root=str(ROOT), out=out)])
                counts[name] = resource_count(Path(out), name)
            times[name].append(run.seconds)
            rss[name].append(run.peak_rss_mb)
            print(
                f"run {i + 1} {name:8s} {run.seconds:6.2f} s  peak RSS {run.peak_rss_mb:5.0f} MB", flush=True
            )
    print()
    print(f"{'':10s}{'median s':>10s}{'peak RSS MB':>13s}{'resources':>11s}")
    for name in SYNTH:
        print(f"{name:10s}{median(times[name]):10.2f}{median(rss[name]):13.0f}{counts[name]:11d}")
    print(f"synth_ratio={median(times['sample']) / median(times['baseline']):.2f}")


if __name__ == "__main__":
    main()
