"""The live-updates tests' job handler: reports progress ``steps`` times, ``delay`` seconds apart."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def run(payload: dict[str, Any], job: Any) -> Any:
    """Report ``100 * step / steps`` percent (message ``step i/n``) after each of ``steps`` pauses of ``delay``
    seconds; append each report to ``payload["log"]`` (one JSON line) when given; return the step count.

    A ``delay`` of at least 1.1 s keeps every report written (the runtime writes progress at most once a
    second, the first and 100 % always).
    """
    steps = int(payload.get("steps", 3))
    log = payload.get("log")
    for step in range(1, steps + 1):
        time.sleep(float(payload.get("delay", 1.1)))
        percent, message = 100 * step / steps, f"step {step}/{steps}"
        job.report_progress(percent, message)
        if log:
            with Path(log).open("a", encoding="utf-8") as out:
                out.write(json.dumps({"percent": percent, "message": message}) + "\n")
    return {"steps": steps}
