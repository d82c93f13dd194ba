"""The deploy rehearsal's machinery: a moto server in a child process and the pinned CDK CLI pointed at it.

``docs/deploy.md`` gives the same steps as shell commands. Nothing here knows the sample stack: the tests read
what to expect from the template that the deploy itself synthesized.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import boto3

ROOT: Final = Path(__file__).resolve().parents[2]
CLI: Final = ROOT / "node_modules" / ".bin" / "cdk"
#: moto's default account and the region the rehearsal deploys to.
ACCOUNT: Final = "123456789012"
REGION: Final = "us-east-1"
#: What the pseudo parameters resolve to in that environment (as moto's CloudFormation resolves them).
PSEUDO_PARAMETERS: Final = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}
#: A Docker endpoint that cannot answer: moto would fail on it if creating a function needed Docker.
NO_DOCKER: Final = "unix:///nonexistent/docker.sock"
_BANNER: Final = re.compile(r"http://127\.0\.0\.1:(\d+)")
_SUB: Final = re.compile(r"\$\{([^}!]+)\}")


class MotoProcess:
    """``python -m async_job_local.moto_server`` on a free loopback port, in a child process of its own.

    A child process keeps the deployed stack out of this process's moto state (``mock_aws`` in other tests
    shares it). ``endpoint`` names the host ``localhost``, not ``127.0.0.1``: moto's CloudFormation reads the
    bucket of a ``TemplateURL`` from its path only for ``localhost`` (or ``s3*.amazonaws.com``); for any other
    host it takes the host's first label ("127") as the bucket, and ``cdk deploy`` fails with NoSuchBucket.
    """

    def __init__(self, log: Path) -> None:
        self._log = log.open("w")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "async_job_local.moto_server", "--port", "0"],
            cwd=ROOT,
            env={**os.environ, "DOCKER_HOST": NO_DOCKER},
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        assert self._process.stdout is not None
        banner = self._process.stdout.readline()
        match = _BANNER.search(banner)
        if match is None:
            self.close()
            raise RuntimeError(f"moto_server did not start: {banner!r} (its log: {log})")
        self.endpoint = f"http://localhost:{match.group(1)}"

    def close(self) -> None:
        """Stop the server (Ctrl-C, as by hand), killing it if it does not end in 20 s."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._log.close()


def cli_environment(endpoint: str, home: Path) -> dict[str, str]:
    """The environment of the CLI: every AWS call to ``endpoint``, fake credentials, no profile, no telemetry."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "CDK_"))}
    return {
        **environ,
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{environ.get('PATH', '')}",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "CDK_DEFAULT_ACCOUNT": ACCOUNT,
        "CDK_DEFAULT_REGION": REGION,
        "CDK_DISABLE_VERSION_CHECK": "1",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }


def run_cdk(args: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float = 240) -> float:
    """Run the pinned CLI; return its wall time in seconds, or fail with the end of its output."""
    started = time.monotonic()
    result = subprocess.run(
        [str(CLI), *args, "--no-notices"],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise AssertionError(f"cdk {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}")
    return elapsed


@dataclass
class Rehearsal:
    """A finished rehearsal: where moto is, what was deployed, and how long each step took."""

    endpoint: str
    stack_name: str
    assembly: Path
    outputs: dict[str, str]
    seconds: dict[str, float] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        """A boto3 client of ``service`` on the moto server."""
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    @property
    def template(self) -> dict[str, Any]:
        """The template that was deployed (the deploy's own synthesis)."""
        template: dict[str, Any] = json.loads(
            (self.assembly / f"{self.stack_name}.template.json").read_text()
        )
        return template

    @property
    def asset_manifest(self) -> dict[str, Any]:
        """The stack's asset manifest: each asset's source in the assembly and its bucket and key."""
        manifest: dict[str, Any] = json.loads((self.assembly / f"{self.stack_name}.assets.json").read_text())
        return manifest

    def stack_resource_summaries(self, stack_name: str | None = None) -> list[dict[str, Any]]:
        """moto's stack resources, as it lists them: one it did not create has no logical id, type or
        physical id (it is listed CREATE_COMPLETE all the same)."""
        paginator = self.client("cloudformation").get_paginator("list_stack_resources")
        pages = paginator.paginate(StackName=stack_name or self.stack_name)
        return [summary for page in pages for summary in page["StackResourceSummaries"]]

    def created_resources(self, stack_name: str | None = None) -> dict[str, dict[str, Any]]:
        """The stack's resources that moto created, by logical id."""
        summaries = self.stack_resource_summaries(stack_name)
        return {s["LogicalResourceId"]: s for s in summaries if s["LogicalResourceId"] and s["ResourceType"]}


def resolve(value: Any, refs: Mapping[str, str], template: Mapping[str, Any] | None = None) -> Any:
    """``value`` as CloudFormation resolves it: ``Ref``, ``Fn::GetAtt`` (``refs["Logical.Attribute"]``),
    ``Fn::Join``, ``Fn::Sub``, ``Fn::Select``, ``Fn::Split``, and, with the ``template``, ``Fn::FindInMap`` (its
    Mappings) and ``Fn::If`` (its Conditions: ``Fn::Equals``, ``Fn::Not``, ``Fn::And``, ``Fn::Or``, ``Condition``).

    Examples
    --------
    >>> resolve({"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}]]}, {"AWS::Partition": "aws"})
    'arn:aws'
    """
    template = template or {}
    if isinstance(value, list):
        return [resolve(item, refs, template) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((name, argument),) = value.items()
        if name == "Ref":
            return refs[argument]
        if name == "Fn::GetAtt":
            return refs[f"{argument[0]}.{argument[1]}"]
        if name == "Fn::Join":
            separator, parts = argument
            return separator.join(str(resolve(part, refs, template)) for part in parts)
        if name == "Fn::Select":
            index, items = resolve(argument, refs, template)
            return items[int(index)]
        if name == "Fn::Split":
            separator, text = resolve(argument, refs, template)
            return text.split(separator)
        if name == "Fn::FindInMap":
            mapping, top, second = (resolve(part, refs, template) for part in argument)
            return template["Mappings"][mapping][top][second]
        if name == "Fn::If":
            condition, if_true, if_false = argument
            return resolve(if_true if _condition(condition, refs, template) else if_false, refs, template)
        if name == "Fn::Sub":
            text, names = (argument, {}) if isinstance(argument, str) else argument
            known = {**refs, **{key: resolve(item, refs, template) for key, item in names.items()}}
            return _SUB.sub(lambda match: str(known[match.group(1)]), text)
    return {key: resolve(item, refs, template) for key, item in value.items()}


def _condition(name: str, refs: Mapping[str, str], template: Mapping[str, Any]) -> bool:
    """The value of the template's condition ``name``."""
    return _truth(template["Conditions"][name], refs, template)


def _truth(value: Any, refs: Mapping[str, str], template: Mapping[str, Any]) -> bool:
    ((name, argument),) = value.items()
    if name == "Condition":
        return _condition(argument, refs, template)
    if name == "Fn::Equals":
        left, right = (resolve(part, refs, template) for part in argument)
        return bool(left == right)
    if name == "Fn::Not":
        return not _truth(argument[0], refs, template)
    if name == "Fn::And":
        return all(_truth(part, refs, template) for part in argument)
    if name == "Fn::Or":
        return any(_truth(part, refs, template) for part in argument)
    raise ValueError(f"not a condition function: {name}")
