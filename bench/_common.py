"""Helpers shared by the benchmark scripts: fresh-process timing with peak RSS, medians, interleaving."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mb: float
    stdout: str


def run_fresh(args: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT) -> Run:
    """Run ``args`` in a fresh process; return its wall time and the peak RSS of its process tree's largest child.

    ``ru_maxrss`` of RUSAGE_CHILDREN is the largest resident set among waited-for descendants (the node/jsii
    process for a synth), read as a difference is not possible, so each measured command runs via a wrapper.
    """
    wrapper = (
        "import resource, subprocess, sys, json, time;"
        "t=time.perf_counter(); p=subprocess.run(sys.argv[1:], capture_output=True, text=True);"
        "dt=time.perf_counter()-t; r=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss;"
        "sys.stderr.write(p.stderr[-2000:]) if p.returncode else None;"
        "print(json.dumps({'rc': p.returncode, 's': dt, 'rss_kb': r, 'out': p.stdout[-4000:]}))"
    )
    full_env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", **(env or {})}
    done = subprocess.run(
        [PYTHON, "-c", wrapper, *args], capture_output=True, text=True, env=full_env, cwd=cwd
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr[-2000:]}")
    return Run(seconds=result["s"], peak_rss_mb=result["rss_kb"] / 1024, stdout=result["out"])


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def self_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def now() -> float:
    return time.perf_counter()
