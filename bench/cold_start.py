"""Cold start of each handler module vs a bare boto3 handler that creates the same clients.

"Cold start" here is what a Lambda init pays before the first request is served: a fresh interpreter imports the
entry-point module (reading and validating its configuration) and creates the AWS clients the first request
uses. The baseline is a bare handler: `import boto3` plus the same clients. Both run in fresh processes,
interleaved, medians of --runs; the interpreter's own start-up is measured too (and not counted). Lambda's
environment is simulated (AWS_LAMBDA_FUNCTION_NAME etc.) so Powertools behaves as deployed: by default as the
construct deploys it (trace_aws_calls=False: POWERTOOLS_TRACE_DISABLED=true); `--trace-aws-calls on` measures
the opt-in per-call tracing (Powertools' Tracer and the X-Ray SDK).
Prints per module: ours, baseline, ratio; last line `cold_start_ratio=<worst x>`. Target: <= 1.15.

    .venv/bin/python bench/cold_start.py [--runs 7] [--trace-aws-calls on]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, median

# module -> the clients its first request creates (what the bare baseline creates too)
MODULES = {
    "lambda_handlers.submit": ("dynamodb", "sqs"),
    "lambda_handlers.status": ("dynamodb",),
    "lambda_handlers.worker": ("dynamodb",),
    "lambda_handlers.dead_letter": ("dynamodb",),
}

LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "bench",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.14",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "ASYNC_JOB_TABLE_NAME": "jobs",
    "ASYNC_JOB_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
    "ASYNC_JOB_MAX_PAYLOAD_BYTES": "262144",
    "ASYNC_JOB_TTL_SECONDS": "604800",
    "ASYNC_JOB_RETRY_AFTER_SECONDS": "5",
    "ASYNC_JOB_IDEMPOTENCY_KEY_REQUIRED": "false",
    "ASYNC_JOB_HANDLER": "report.generate",
    "ASYNC_JOB_MAX_RECEIVE_COUNT": "3",
    "ASYNC_JOB_RETRY_BASE_SECONDS": "10",
    "ASYNC_JOB_RETRY_MAX_SECONDS": "900",
    "POWERTOOLS_SERVICE_NAME": "bench",
    "POWERTOOLS_METRICS_NAMESPACE": "Bench",
}

TIMER = """
import time, json, sys
t0 = time.perf_counter()
{body}
print(json.dumps({{"ms": (time.perf_counter() - t0) * 1000}}))
"""


def ours(module: str, clients: tuple[str, ...]) -> str:
    make = "; ".join(f"_c.{client}()" for client in clients)
    return TIMER.format(
        body=f"import importlib; importlib.import_module({module!r}); from lambda_handlers import clients as _c; {make}"
    )


def bare(clients: tuple[str, ...]) -> str:
    make = "; ".join(f"boto3.client({client!r})" for client in clients)
    return TIMER.format(body=f"import boto3; {make}")


def measure(code: str, env: dict[str, str]) -> float:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["ms"])


def interpreter_ms(env: dict[str, str]) -> float:
    import time

    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--trace-aws-calls", choices=["on", "off"], default="off")
    args = parser.parse_args()
    env = {**os.environ, **LAMBDA_ENV, "PYTHONPATH": str(ROOT / "sample_jobs")}
    if args.trace_aws_calls == "off":
        env["POWERTOOLS_TRACE_DISABLED"] = "true"  # what the construct sets unless trace_aws_calls=True

    print(
        f"bare interpreter start-up: {median([interpreter_ms(env) for _ in range(args.runs)]):.0f} ms (not counted)"
    )
    print(f"{'module':30s}{'ours ms':>9s}{'bare boto3 ms':>15s}{'ratio':>7s}   clients")
    worst = 0.0
    for module, clients in MODULES.items():
        mine, base = [], []
        for _ in range(args.runs):  # interleaved, so noise hits both alike
            mine.append(measure(ours(module, clients), env))
            base.append(measure(bare(clients), env))
        ratio = median(mine) / median(base)
        worst = max(worst, ratio)
        print(f"{module:30s}{median(mine):9.0f}{median(base):15.0f}{ratio:7.2f}   {', '.join(clients)}")
    print(f"cold_start_ratio={worst:.2f}")


if __name__ == "__main__":
    main()
