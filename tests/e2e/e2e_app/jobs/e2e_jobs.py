"""The end-to-end tests' job handler: ``payload["mode"]`` picks a behaviour."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from lambda_handlers import JobFailedError


def run(payload: dict[str, Any], job: Any) -> Any:
    """Behave as ``payload["mode"]`` says.

    - ``ok``: report progress over ``steps`` steps of ``delay`` seconds, return the payload and the worker's
      ``E2E_GREETING`` (set through the construct's ``environment``).
    - ``fail``: raise (a retryable failure, every attempt).
    - ``give_up``: raise ``JobFailedError`` (the job ends FAILED at once).
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
    if mode == "give_up":
        raise JobFailedError("the e2e handler gave up on purpose")
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


def objects(payload: dict[str, Any], job: Any) -> Any:
    """Save ``payload["files"]`` (name -> text), then return a digest of the payload as the handler saw it and, with
    ``result_bytes``, a JSON string of that many bytes (``"xxx..."``)."""
    for name, text in payload.get("files", {}).items():
        job.save_file(name, text, "text/plain")
    seen = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    if "result_bytes" in payload:
        return "x" * (int(payload["result_bytes"]) - 2)
    return {"payloadSha256": hashlib.sha256(seen).hexdigest(), "payloadBytes": len(seen)}
