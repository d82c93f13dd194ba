"""The long job type of the e2e long app: steps of ``seconds`` each, a durable wait halfway, progress after
each step.

Payload: ``steps`` (default 4), ``seconds`` per step (default 1.5), ``wait`` seconds halfway (default 1),
``fail_step`` (a step index that raises every attempt), ``marks`` (a directory: each step attempt that runs
writes ``<job id>.<step>.<attempt n>`` there, so a test sees which steps ran and how often).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def _work(job_id: str, index: int, seconds: float, marks: str | None, fail: bool) -> int:
    if marks is not None:
        attempt = len(list(Path(marks).glob(f"{job_id}.{index}.*"))) + 1
        (Path(marks) / f"{job_id}.{index}.{attempt}").write_text(str(os.getpid()))
    time.sleep(seconds)
    if fail:
        raise RuntimeError(f"step {index} fails on purpose")
    return index + 1


def run(payload: dict[str, Any], job: Any) -> dict[str, Any]:
    """Run ``steps`` steps of ``seconds`` each with a durable wait halfway; return how many ran."""
    steps = int(payload.get("steps", 4))
    seconds = float(payload.get("seconds", 1.5))
    wait = float(payload.get("wait", 1))
    marks = payload.get("marks")
    done = 0
    for index in range(steps):
        done = job.step(
            f"part-{index}", _work, job.job_id, index, seconds, marks, payload.get("fail_step") == index
        )
        job.report_progress(100 * done / steps, f"step {done}/{steps}")
        if wait and index == steps // 2 - 1:
            job.wait(wait)
    return {"steps": done}
