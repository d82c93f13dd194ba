"""The end-to-end tests' job handler: ``payload["mode"]`` picks a behaviour."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any


def run(payload: dict[str, Any], job: Any) -> Any:
    """Behave as ``payload["mode"]`` says.

    - ``ok``: report progress over ``steps`` steps of ``delay`` seconds, return the payload and the worker's
      ``E2E_GREETING`` (set through the construct's ``environment``).
    - ``fail``: raise (a retryable failure, every attempt).
    - ``crash``: end the process at once, as an out-of-memory kill would.
    - ``sleep``: sleep ``seconds``, past the timeout (the runtime stops the handler before the deadline).
    - ``hang``: write the process id to ``pid_file``, block the runtime's timer signal and sleep: only the
      Lambda timeout (the local runtime killing the environment) ends it.
    """
    mode = payload.get("mode", "ok")
    if mode == "ok":
        steps = int(payload.get("steps", 3))
        for step in range(1, steps + 1):
            time.sleep(float(payload.get("delay", 0.3)))
            job.report_progress(100 * step / steps, f"step {step}/{steps}")
        return {"echo": payload, "greeting": os.environ.get("E2E_GREETING")}
    if mode == "fail":
        raise RuntimeError("the e2e handler failed on purpose")
    if mode == "crash":
        os._exit(137)
    if mode == "sleep":
        time.sleep(float(payload.get("seconds", 60)))
        return {"slept": True}
    if mode == "hang":
        Path(payload["pid_file"]).write_text(str(os.getpid()))
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(float(payload.get("seconds", 60)))
        return {"hung": True}
    raise ValueError(f"unknown mode {mode!r}")
