"""``async-job submit|get|wait|cancel|list``: the job client on the command line.

``async-job`` (``async_job_local.cli:main``) hands these subcommands to ``main`` here; this module imports
neither aws-cdk-lib nor the local runtime.

Examples
--------
Submit a job to the local runtime, wait for it with a progress bar, print its result::

    async-job submit http://127.0.0.1:3000/prod --data '{"seconds": 5}' --wait

Read a deployed API's job (SigV4, botocore's credential chain)::

    async-job get https://abc123.execute-api.eu-west-1.amazonaws.com/prod 4f0c5a0e-... --output json

List the caller's failed report jobs, newest first::

    async-job list https://abc123.execute-api.eu-west-1.amazonaws.com/prod --status FAILED --type reports
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Final

from async_job_client.auth import ApiKey, Auth, BearerToken, LocalCaller, SigV4Auth
from async_job_client.client import JobClient, default_auth
from async_job_client.errors import ApiError, TransportError, WaitTimeout
from async_job_client.models import Job
from async_job_client.retry import RetryPolicy

__all__ = ["COMMANDS", "EXIT_CODES", "build_parser", "main"]

EXIT_SUCCEEDED: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_CANCELLED: Final = 3
EXIT_WAIT_TIMEOUT: Final = 4
EXIT_API_ERROR: Final = 5
EXIT_TRANSPORT_ERROR: Final = 6
EXIT_INTERRUPTED: Final = 130

#: Every exit code of the client commands and what it means (also in ``--help``).
EXIT_CODES: Final[dict[int, str]] = {
    EXIT_SUCCEEDED: (
        "done: the job SUCCEEDED (with --wait, wait), or the request succeeded (get, cancel, submit, list)"
    ),
    EXIT_FAILED: "the job FAILED",
    EXIT_USAGE: "usage error (bad arguments, unreadable --data, no credentials)",
    EXIT_CANCELLED: "the job was CANCELLED",
    EXIT_WAIT_TIMEOUT: "--timeout passed before the job finished",
    EXIT_API_ERROR: "the API answered an error (its problem document is printed)",
    EXIT_TRANSPORT_ERROR: "no answer from the API (connection failed on every attempt)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

#: The subcommands this module serves.
COMMANDS: Final = ("submit", "get", "wait", "cancel", "list")
#: Jobs ``list`` prints unless told ``--limit`` or ``--all``.
DEFAULT_LIST_LIMIT: Final = 20

_STATUS_EXIT: Final = {"SUCCEEDED": EXIT_SUCCEEDED, "FAILED": EXIT_FAILED, "CANCELLED": EXIT_CANCELLED}


def exit_codes_epilog() -> str:
    """The exit-code table, as ``--help`` prints it."""
    return "exit codes:\n" + "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES.items())


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "url",
        metavar="URL",
        help="the API's stage URL, e.g. https://ID.execute-api.REGION.amazonaws.com/prod",
    )
    parser.add_argument(
        "--auth",
        choices=("sigv4", "bearer", "api-key", "local"),
        help="how to authenticate (default: local for http://127.0.0.1 and localhost URLs, else sigv4)",
    )
    parser.add_argument("--token", help="with --auth bearer: the token (Cognito ID or access token)")
    parser.add_argument(
        "--api-key", help="the x-api-key value (--auth api-key; with another --auth, sent too)"
    )
    parser.add_argument(
        "--principal", default="local-user", help="with --auth local: the caller (default: local-user)"
    )
    parser.add_argument("--region", help="with sigv4: the region (default: from the URL)")
    parser.add_argument("--output", choices=("text", "json"), default="text", help="default: text")
    parser.add_argument("--max-attempts", type=int, default=5, help="attempts per request (default: 5)")


def _waiting(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout", type=float, metavar="S", help="give up waiting after S seconds (default: never)"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="plain status lines instead of a progress bar"
    )


def add_commands(commands: Any) -> None:
    """Add ``submit``, ``get``, ``wait``, ``cancel`` and ``list`` to an ``add_subparsers()`` result."""
    formatter = argparse.RawDescriptionHelpFormatter
    submit = commands.add_parser(
        "submit", help="submit a job (POST /TYPE)", epilog=exit_codes_epilog(), formatter_class=formatter
    )
    _common(submit)
    submit.add_argument("--type", dest="job_type", help="the job type (default: jobs)")
    submit.add_argument("--data", default="{}", help="the job's body: JSON, or @FILE (@- for standard input)")
    submit.add_argument("--key", help="the Idempotency-Key (default: a new UUID)")
    submit.add_argument("--callback-url", help="a URL the API POSTs a signed webhook to when the job ends")
    submit.add_argument("--wait", action="store_true", help="wait for the job and exit with its outcome")
    _waiting(submit)
    for name, text in (
        ("get", "read a job (GET /jobs/ID)"),
        ("wait", "wait for a job to finish"),
        ("cancel", "cancel a job (DELETE /jobs/ID)"),
    ):
        command = commands.add_parser(name, help=text, epilog=exit_codes_epilog(), formatter_class=formatter)
        _common(command)
        command.add_argument("job_id", metavar="ID", help="the job's id")
        if name == "wait":
            _waiting(command)
    listing = commands.add_parser(
        "list",
        help="list your jobs, newest first (GET /jobs)",
        epilog=exit_codes_epilog(),
        formatter_class=formatter,
    )
    _common(listing)
    listing.add_argument(
        "--status",
        action="append",
        metavar="STATUS",
        help="only jobs in this status (repeat, or comma-separate, for several)",
    )
    listing.add_argument("--type", dest="job_type", help="only jobs of this job type")
    listing.add_argument("--owner", help="whose jobs (operators only)")
    amount = listing.add_mutually_exclusive_group()
    amount.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIST_LIMIT,
        help=f"print at most N jobs (default: {DEFAULT_LIST_LIMIT})",
    )
    amount.add_argument("--all", action="store_true", help="print every job, following every page")


def build_parser() -> argparse.ArgumentParser:
    """The parser of the client commands alone (``async-job`` adds them to its own)."""
    parser = argparse.ArgumentParser(
        prog="async-job",
        description="A client of AsyncJobApi job APIs.",
        epilog=exit_codes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


class _Usage(Exception):
    pass


def _auth(args: argparse.Namespace) -> Auth:
    kind = args.auth
    if kind is None:
        if args.api_key is not None:
            kind = "api-key"
        elif args.token is not None:
            kind = "bearer"
        else:
            chosen = default_auth(args.url)
            return (
                LocalCaller(args.principal)
                if isinstance(chosen, LocalCaller)
                else SigV4Auth(region=args.region)
            )
    base: Auth
    if kind == "bearer":
        if not args.token:
            raise _Usage("--auth bearer needs --token")
        base = BearerToken(args.token)
    elif kind == "local":
        base = LocalCaller(args.principal)
    elif kind == "sigv4":
        base = SigV4Auth(region=args.region)
    else:
        if not args.api_key:
            raise _Usage("--auth api-key needs --api-key")
        return ApiKey(args.api_key)
    return base if args.api_key is None else ApiKey(args.api_key, also=base)


def _payload(data: str, stdin: IO[str]) -> Any:
    text = data
    if data.startswith("@"):
        source = data[1:]
        try:
            text = stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        except OSError as error:
            raise _Usage(f"--data {data}: cannot read it: {error}") from error
    try:
        payload = json.loads(text)
    except ValueError as error:
        raise _Usage(f"--data is not JSON: {error}") from error
    if not isinstance(payload, dict):
        raise _Usage(f"--data must be a JSON object (given {type(payload).__name__})")
    return payload


def _describe(job: Job) -> str:
    parts = [f"{job.id} {job.status}"]
    if job.progress is not None:
        parts.append(
            f"{job.progress.percent:g}%" + (f" {job.progress.message}" if job.progress.message else "")
        )
    if job.status == "SUCCEEDED":
        parts.append("result: " + json.dumps(job.result))
    if job.error:
        parts.append(f"error: {job.error.get('type')}: {job.error.get('message')}")
    if job.cancel_requested:
        parts.append("(cancellation requested)")
    return "  ".join(parts)


class _Progress:
    """Shows a job's progress while waiting: a rich progress bar on a terminal, else one line per change."""

    def __init__(self, out: IO[str], err: IO[str], bar: bool) -> None:
        self.out = out
        self.err = err
        self.last: tuple[str, float | None, str | None] | None = None
        self._bar: Any = None
        self._task: Any = None
        if bar and err.isatty():
            try:
                from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
            except ImportError:  # the [client] extra is not installed: plain lines
                return
            from rich.console import Console

            self._bar = Progress(
                TextColumn("{task.fields[status]:<9}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
                console=Console(file=err),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("", total=100, status="QUEUED")

    def __call__(self, job: Job) -> None:
        percent = None if job.progress is None else job.progress.percent
        message = None if job.progress is None else job.progress.message
        if self._bar is not None:
            done = 100 if job.status == "SUCCEEDED" else percent or 0
            self._bar.update(self._task, completed=done, status=job.status, description=message or "")
            return
        state = (job.status, percent, message)
        if state != self.last and not job.done:
            self.last = state
            print(_describe(job), file=self.err, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            self.last = None


def _emit(job: Job, output: str, out: IO[str]) -> None:
    if output == "json":
        print(json.dumps(job.to_dict(), indent=2), file=out)
    else:
        print(_describe(job), file=out)


def _wait(client: JobClient, args: argparse.Namespace, first: Job | None, out: IO[str], err: IO[str]) -> int:
    progress = _Progress(out, err, bar=not args.no_progress)
    try:
        job = client.wait(
            first.id if first else args.job_id, timeout=args.timeout, on_progress=progress, first=first
        )
    except WaitTimeout as timeout:
        progress.close()  # before printing: the bar owns the terminal's last line until then
        _emit(timeout.job, args.output, out)
        print(f"async-job: {timeout}", file=err)
        return EXIT_WAIT_TIMEOUT
    finally:
        progress.close()
    _emit(job, args.output, out)
    return _STATUS_EXIT[job.status]


def _list(client: JobClient, args: argparse.Namespace, out: IO[str]) -> int:
    if not args.all and args.limit < 1:
        raise _Usage(f"--limit must be at least 1 (given {args.limit})")
    statuses = None if args.status is None else ",".join(args.status)
    jobs = client.list(
        status=statuses,
        type=args.job_type,
        owner=args.owner,
        page_size=None if args.all else min(args.limit, 100),
    )
    shown = jobs if args.all else itertools.islice(jobs, args.limit)
    if args.output == "json":
        print(json.dumps([job.to_dict() for job in shown], indent=2), file=out)
        return EXIT_SUCCEEDED
    for job in shown:
        print(f"{job.created_at}  {job.type or '-':<12} {_describe(job)}", file=out)
    return EXIT_SUCCEEDED


def run(
    args: argparse.Namespace,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    stdin: IO[str] | None = None,
) -> int:
    """Run one parsed client command; its exit code (``out``, ``err``, ``stdin``: default the process's)."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    stdin = sys.stdin if stdin is None else stdin
    try:
        if args.max_attempts < 1:
            raise _Usage(f"--max-attempts must be at least 1 (given {args.max_attempts})")
        client = JobClient(args.url, auth=_auth(args), retry=RetryPolicy(max_attempts=args.max_attempts))
        if args.command == "submit":
            payload = _payload(args.data, stdin)
            job = client.submit(
                payload, type=args.job_type, idempotency_key=args.key, callback_url=args.callback_url
            )
            if not args.wait:
                _emit(job, args.output, out)
                return EXIT_SUCCEEDED
            if args.output == "text":
                print(f"submitted {job.id}", file=err)
            return _wait(client, args, job, out, err)
        if args.command == "wait":
            return _wait(client, args, None, out, err)
        if args.command == "list":
            return _list(client, args, out)
        job = client.get(args.job_id) if args.command == "get" else client.cancel(args.job_id)
        _emit(job, args.output, out)
        return EXIT_SUCCEEDED
    except _Usage as error:
        print(f"async-job {args.command}: {error}", file=err)
        return EXIT_USAGE
    except ValueError as error:  # a bad URL, no credentials or region for SigV4
        print(f"async-job {args.command}: {error}", file=err)
        return EXIT_USAGE
    except ApiError as error:
        if args.output == "json":
            print(json.dumps({"status": error.status, **error.problem}, indent=2), file=out)
        print(f"async-job {args.command}: {error}", file=err)
        return EXIT_API_ERROR
    except TransportError as error:
        print(f"async-job {args.command}: {error}", file=err)
        return EXIT_TRANSPORT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """``async-job submit|get|wait|cancel|list ...``; the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) if isinstance(exit_.code, int) else EXIT_USAGE
    return run(args, out, err)


if __name__ == "__main__":
    sys.exit(main())
