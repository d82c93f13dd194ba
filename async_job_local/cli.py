"""``async-job local``: serve every ``AsyncJobApi`` of a CDK app on this machine.

Examples
--------
Serve the app of ./cdk.json on port 3000 until Ctrl-C::

    async-job local

Run the sample job end to end, show its progress and exit with its outcome::

    async-job local --submit '{"seconds": 35}' --exit-when-done

Submit a job to it and wait, with a progress bar (``async_job_client.cli``: also ``get``, ``wait``, ``cancel``)::

    async-job submit http://127.0.0.1:3000/prod --data '{"seconds": 5}' --wait

Verify the SigV4 signatures of IAM routes against local credentials (the signer is the caller)::

    async-job local --sigv4-credentials local-credentials.json

Keep the EventBridge events the functions put, one JSON document a line::

    async-job local --events-file events.jsonl

Serve another app (a file or a command), on another port, against a moto server of your own::

    async-job local --app other/app.py --port 3100 --endpoint-url http://127.0.0.1:5000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as distribution_version
from pathlib import Path
from types import FrameType
from typing import IO, Any

from async_job_client import cli as client_cli
from async_job_local.assembly import AssemblyError, app_command, load_assembly, synthesize
from async_job_local.backend import Backend, EndpointBackend
from async_job_local.follow import EXIT_INTERRUPTED, EXIT_SUCCEEDED, EXIT_USAGE, follow
from async_job_local.functions import FunctionLogs
from async_job_local.handler_check import HandlerError
from async_job_local.runtime import (
    DEFAULT_API_CONCURRENCY,
    DEFAULT_CONCURRENCY,
    DEFAULT_PORT,
    LocalRuntime,
)
from async_job_local.server import DEFAULT_PRINCIPAL, DEFAULT_REQUEST_TIMEOUT, PRINCIPAL_HEADER, LocalApi
from async_job_local.sigv4 import LocalCredential, load_credentials

__all__ = ["main"]

DISTRIBUTION = "async-job-construct"


def _version() -> str:
    """The installed distribution's version, as ``async_job_construct.__version__`` gives it (read here from the
    metadata, not imported: importing the construct starts jsii, a second's work that ``--version`` need not do)."""
    try:
        return distribution_version(DISTRIBUTION)
    except PackageNotFoundError:  # a source tree on sys.path without an install
        return "0+unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="async-job",
        description="Tools for AsyncJobApi (async-job-construct).",
        epilog="submit, get, wait, cancel, list: " + client_cli.exit_codes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    client_cli.add_commands(commands)  # submit, get, wait, cancel, list: async_job_client.cli runs them
    local = commands.add_parser(
        "local",
        help="serve the job APIs of a CDK app on this machine (no AWS account, no Docker)",
        description="Synthesize a CDK app and serve the job API of every AsyncJobApi in it on localhost: the "
        "same Lambda handlers, SQS queues and DynamoDB table, emulated by moto. Configuration comes from the "
        "construct (the synthesized template) only.",
    )
    local.add_argument(
        "--app",
        help="the CDK app: a Python file, a command, or a synthesized cloud assembly directory "
        "(default: the 'app' command of ./cdk.json)",
    )
    local.add_argument(
        "-o",
        "--output",
        help="synthesize into this directory and keep it (it can be passed to --app later); "
        "default: a temporary directory",
    )
    local.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to serve on (default: {DEFAULT_PORT})"
    )
    local.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1)")
    local.add_argument(
        "--websocket-port",
        type=int,
        help="port of the WebSocket endpoint of an AsyncJobApi(websocket=...); its @connections management API "
        "is on the next port (default: --port + 1)",
    )
    local.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra CDK context, as `cdk synth -c` (repeatable)",
    )
    backend = local.add_mutually_exclusive_group()
    backend.add_argument(
        "--endpoint-url",
        help="use the DynamoDB and SQS of this endpoint (e.g. a moto server) instead of moto embedded here",
    )
    backend.add_argument(
        "--aws",
        action="store_true",
        help="use DynamoDB and SQS as the usual AWS configuration says (AWS_PROFILE, AWS_ENDPOINT_URL, ...); "
        "tables and queues are created if missing and left in place",
    )
    local.add_argument("--region", help="region of the backend (default: us-east-1, or AWS's configuration)")
    local.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help="pollers (so concurrent worker invocations) per SQS event source, unless the template's "
        f"MaximumConcurrency is lower (default: {DEFAULT_CONCURRENCY})",
    )
    local.add_argument(
        "--api-concurrency",
        type=int,
        default=DEFAULT_API_CONCURRENCY,
        help=f"execution environments per API function (default: {DEFAULT_API_CONCURRENCY})",
    )
    local.add_argument(
        "--principal",
        default=DEFAULT_PRINCIPAL,
        help=f"the caller of requests without a {PRINCIPAL_HEADER} header, and of --submit "
        f"(default: {DEFAULT_PRINCIPAL})",
    )
    local.add_argument(
        "--sigv4-credentials",
        metavar="PATH",
        help="verify the SigV4 signature of every request to a route with IAM authorization against the "
        'credentials in this JSON file, a list of {"accessKeyId", "secretAccessKey", "arn", "sessionToken"?}: '
        "the signer's ARN is the caller, the "
        f"{PRINCIPAL_HEADER} header is ignored there, a missing or bad signature is answered 403 as API "
        "Gateway answers it (IAM policies are not evaluated: every credential of the file may call). "
        "Default: signatures are not checked",
    )
    local.add_argument(
        "--sweep-interval",
        type=_positive_seconds,
        metavar="S",
        help="seconds between the scheduled sweeps of long job types (their starter's rate(...) rule; "
        "default: the rule's own rate, 5 minutes)",
    )
    local.add_argument(
        "--request-timeout",
        type=_positive_seconds,
        default=DEFAULT_REQUEST_TIMEOUT,
        metavar="S",
        help="seconds a request may stop arriving (headers or body) before it is answered 408 "
        f"(default: {DEFAULT_REQUEST_TIMEOUT:g})",
    )
    logs = local.add_mutually_exclusive_group()
    logs.add_argument(
        "--log-file",
        help="write the functions' logs here (default: standard error; with --submit, a temporary file)",
    )
    logs.add_argument("--no-function-logs", action="store_true", help="discard the functions' logs")
    local.add_argument(
        "--events-file",
        metavar="PATH",
        help="append every EventBridge event the functions put on their ASYNC_JOB_EVENT_BUS to this file, "
        "one JSON document a line (they are also shown among the function logs as 'events:<bus> | {...}')",
    )
    local.add_argument(
        "--submit", metavar="JSON", help="submit this job body once the APIs are up, and follow it"
    )
    local.add_argument(
        "--api", help="with several job APIs: which one --submit uses (construct path or prefix)"
    )
    local.add_argument(
        "--type",
        dest="job_type",
        metavar="NAME",
        help="with --submit: the job type to submit (default: the API's only type, or its handler's type jobs)",
    )
    local.add_argument(
        "--exit-when-done",
        action="store_true",
        help="with --submit: exit when the job ends (0 if SUCCEEDED, else 1) instead of serving on",
    )
    local.add_argument(
        "--poll-interval",
        type=float,
        default=0.5,
        help="with --submit: seconds between status reads (default: 0.5)",
    )
    return parser


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"must be a positive number of seconds, such as 5 or 0.5 (given {text!r})"
        )
    return value


class _Stop:
    """Set by SIGINT/SIGTERM; everything that waits, waits on it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: int | None = None

    def install(self) -> None:
        def handler(number: int, frame: FrameType | None) -> None:
            self.signal = number
            self.event.set()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


def _context(pairs: Sequence[str]) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator:
            raise SystemExit(f"async-job local: -c expects KEY=VALUE (given {pair!r})")
        try:
            context[key] = json.loads(value)
        except ValueError:
            context[key] = value
    return context


def _print(message: str = "") -> None:
    print(message, flush=True)


def _describe_api(api: LocalApi, runtime: LocalRuntime) -> list[str]:
    lines = [f"  {api.spec.path}: {api.jobs_url}"]
    with contextlib.suppress(KeyError):
        websocket = runtime.websocket(api)
        lines.append(f"      WebSocket: {websocket.url} (@connections: {websocket.management_url})")
    for name, job_type in api.spec.job_types.items():
        handler = job_type.handler or job_type.worker.handler
        durable = job_type.worker.durable
        kind = (
            ""
            if durable is None
            else f", long: up to {durable.execution_timeout} s through invocations of {job_type.worker.timeout} s"
        )
        lines.append(f"      job type {name}: POST {api.base_url}/{name} (handler {handler}{kind})")
    for route in api.routes:
        if route.function is not None:
            lines.append(f"      {route.http_method:<6} {api.base_url}{route.resource_path}")
    return lines


def _backend(args: argparse.Namespace) -> Backend | None:
    if args.endpoint_url is not None:
        return EndpointBackend(args.endpoint_url, region=args.region)
    if args.aws:
        return EndpointBackend(None, region=args.region)
    if args.region is not None:
        from async_job_local.backend import EmbeddedMotoBackend

        return EmbeddedMotoBackend(region=args.region)
    return None


def _sigv4_credentials(args: argparse.Namespace) -> list[LocalCredential] | None:
    """The credentials of ``--sigv4-credentials`` (``CredentialsFileError``, ``ValueError`` for a usage error)."""
    if args.sigv4_credentials is None:
        return None
    if args.submit is not None:
        raise ValueError(
            f"--submit names its caller with the {PRINCIPAL_HEADER} header, which --sigv4-credentials does not "
            "accept on IAM routes: submit with a signing client instead (async_job_client.SigV4Auth)"
        )
    return list(load_credentials(args.sigv4_credentials).values())


def _describe_callers(args: argparse.Namespace, runtime: LocalRuntime) -> str:
    if runtime.verifier is None:
        return (
            f"  callers are identified by the header `{PRINCIPAL_HEADER}: <name>` (default: {args.principal})"
        )
    return (
        f"  callers of IAM routes: SigV4 signatures of {len(runtime.verifier.credentials)} credential(s) of "
        f"{args.sigv4_credentials}, region {runtime.verifier.region} ({PRINCIPAL_HEADER} ignored there); "
        f"other routes: `{PRINCIPAL_HEADER}: <name>` (default: {args.principal})"
    )


def _local(args: argparse.Namespace) -> int:
    stop = _Stop()
    cwd = Path.cwd()
    try:
        sigv4_credentials = _sigv4_credentials(args)
    except ValueError as error:  # CredentialsFileError included
        _print(f"async-job local: --sigv4-credentials: {error}")
        return EXIT_USAGE
    with contextlib.ExitStack() as cleanup:
        if args.output is not None:
            outdir = Path(args.output).resolve()
            outdir.mkdir(parents=True, exist_ok=True)
        else:
            outdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="async-job-local-")))
        try:
            if args.app is not None and (cwd / args.app).is_dir():
                _print(f"async-job local: reading the cloud assembly in {args.app}")
            else:
                _print(f"async-job local: synthesizing `{app_command(args.app, cwd)}` ...")
            started = time.monotonic()
            assembly = load_assembly(
                synthesize(args.app, cwd=cwd, outdir=outdir, context=_context(args.context))
            )
        except AssemblyError as error:
            _print(f"async-job local: {error}")
            return EXIT_USAGE
        for warning in assembly.warnings:
            print(f"async-job local: {warning}", file=sys.stderr)
        if not assembly.apis:
            _print("async-job local: the app has no AsyncJobApi: nothing to serve")
            return EXIT_USAGE

        log_stream: IO[str] | None = sys.stderr
        log_path: str | None = args.log_file
        if args.no_function_logs:
            log_stream = None
        elif log_path is None and args.submit is not None:
            handle, log_path = tempfile.mkstemp(prefix="async-job-local-", suffix=".log")
            os.close(handle)
        if log_path is not None and not args.no_function_logs:
            log_stream = cleanup.enter_context(open(log_path, "a", encoding="utf-8"))

        stop.install()
        try:
            runtime = LocalRuntime(
                assembly,
                backend=_backend(args),
                host=args.host,
                port=args.port,
                concurrency=args.concurrency,
                api_concurrency=args.api_concurrency,
                logs=FunctionLogs(log_stream),
                default_principal=args.principal,
                request_timeout=args.request_timeout,
                sigv4_credentials=sigv4_credentials,
                events_file=None if args.events_file is None else Path(args.events_file),
                websocket_port=args.websocket_port,
                sweep_interval=args.sweep_interval,
            )
            cleanup.enter_context(runtime)
        except OSError as error:
            _print(f"async-job local: cannot serve on {args.host}:{args.port}: {error}")
            return EXIT_USAGE
        except HandlerError as error:
            _print(f"async-job local: cannot start: a job handler cannot be loaded:\n{error}")
            return EXIT_USAGE
        except Exception as error:  # an unreachable endpoint, missing credentials, an unsupported template
            _print(f"async-job local: cannot start: {type(error).__name__}: {error}")
            return EXIT_USAGE
        _print(
            f"async-job local: {len(runtime.apis)} job API(s), ready in {time.monotonic() - started:.1f} s"
        )
        for api in runtime.apis:
            for line in _describe_api(api, runtime):
                _print(line)
        _print(f"  backend: {runtime.backend.describe()}")
        if runtime.durable is not None:
            for durable in runtime.durable.functions.values():
                _print(f"  durable function: {durable.version_arn}")
            _print(
                f"  durable executions: {runtime.durable.endpoint_url} (the functions' AWS_ENDPOINT_URL_LAMBDA)"
            )
        _print(_describe_callers(args, runtime))
        where = "discarded" if log_stream is None else (log_path or "standard error")
        _print(f"  function logs: {where}")
        if runtime.event_watchers:
            buses = ", ".join(watcher.bus for watcher in runtime.event_watchers)
            target = f"the function logs and {args.events_file}" if args.events_file else "the function logs"
            _print(f"  events of {buses}: {target}")

        code = EXIT_SUCCEEDED
        if args.submit is not None:
            code = follow(
                runtime,
                body=args.submit,
                api_name=args.api,
                job_type=args.job_type,
                principal=args.principal,
                poll_interval=args.poll_interval,
                stop=stop.event,
            )
            if args.exit_when_done or code == EXIT_USAGE:
                return code
        if not stop.event.is_set():
            _print("Ready. Serving until Ctrl-C.")
            stop.event.wait()
        _print("async-job local: stopping")
        return code if args.submit is not None else EXIT_SUCCEEDED
    return EXIT_SUCCEEDED  # pragma: no cover (the with block always returns)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``async-job`` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "local":
            return _local(args)
        if args.command in client_cli.COMMANDS:
            return client_cli.run(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
