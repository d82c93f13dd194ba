"""S3 buckets and Secrets Manager secrets of a template, created on embedded moto by the local runtime.

A hand-written template (no synthesis): the single-type API plus a results bucket (marked ``bucket``), a
generated signing secret (marked), a literal secret and a function (marked ``probe``) that puts an object and
presigns it in its own process, as a handler would.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from async_job_local.api_spec import apis_of
from async_job_local.assembly import CloudAssembly
from async_job_local.backend import bucket_name, secret_value_request
from async_job_local.functions import FunctionLogs
from async_job_local.runtime import LocalRuntime
from async_job_local.template import StackSpec
from tests.unit.local.templates import CODE_ASSET, api_template, function, make_assets, mark

STACK = "S3SecretsStack"
BUCKET_RULE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
PROBE = """
import os

import boto3


def handler(event, context):
    s3 = boto3.client("s3")
    s3.put_object(Bucket=os.environ["BUCKET"], Key=event["key"], Body=bytes.fromhex(event["hex"]))
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": os.environ["BUCKET"], "Key": event["key"]}, ExpiresIn=300
    )
    return {"url": url, "local": os.environ.get("ASYNC_JOB_LOCAL_RUNTIME")}
"""


def _template() -> dict[str, Any]:
    template = api_template()
    resources = template["Resources"]
    resources["ResultsBucket12AB34CD"] = {
        "Type": "AWS::S3::Bucket",
        "Metadata": mark("bucket"),
        "Properties": {"LifecycleConfiguration": {"Rules": [{"ExpirationInDays": 7, "Status": "Enabled"}]}},
    }
    resources["SigningSecret"] = {
        "Type": "AWS::SecretsManager::Secret",
        "Metadata": mark("webhook-secret"),
        "Properties": {"GenerateSecretString": {"PasswordLength": 40, "ExcludePunctuation": True}},
    }
    resources["PlainSecret"] = {
        "Type": "AWS::SecretsManager::Secret",
        "Properties": {"SecretString": "s3cret"},
    }
    resources["Probe"] = function(
        "probe.handler",
        "probe",
        environment={
            "BUCKET": {"Ref": "ResultsBucket12AB34CD"},
            "BUCKET_ARN": {"Fn::GetAtt": ["ResultsBucket12AB34CD", "Arn"]},
            "SECRET_ARN": {"Ref": "SigningSecret"},
            "PLAIN_SECRET_ARN": {"Ref": "PlainSecret"},
        },
    )
    return template


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    """The API with its bucket, secrets and probe function, on embedded moto (started once for the module)."""
    directory = tmp_path_factory.mktemp("assembly")
    make_assets(directory)
    (directory / CODE_ASSET / "probe.py").write_text(PROBE, encoding="utf-8")
    stack = StackSpec(artifact_id=STACK, stack_name=STACK, template=_template(), directory=directory)
    assembly = CloudAssembly(
        directory=directory, stacks=(stack,), apis=tuple(apis_of(stack, set())), warnings=()
    )
    with LocalRuntime(
        assembly, port=0, logs=FunctionLogs(None), check_handlers=False, warn=lambda _: None
    ) as started:
        yield started


def _probe_environment(runtime: LocalRuntime) -> dict[str, str]:
    return runtime.functions[(STACK, "Probe")].environment


def test_the_bucket_gets_a_valid_local_name_and_exists_on_the_backend(runtime: LocalRuntime) -> None:
    # GIVEN the running API
    api = runtime.api()

    # WHEN its bucket's Ref and Arn are read
    name = runtime.attribute(api, "ResultsBucket12AB34CD")
    arn = runtime.attribute(api, "ResultsBucket12AB34CD", "Arn")

    # THEN the name is a DNS-compatible bucket name, the bucket exists, and the function sees both
    assert BUCKET_RULE.match(name), name
    assert arn == f"arn:aws:s3:::{name}"
    runtime.backend.client("s3").head_bucket(Bucket=name)
    assert _probe_environment(runtime)["BUCKET"] == name
    assert _probe_environment(runtime)["BUCKET_ARN"] == arn


def test_a_presigned_url_of_the_backend_downloads_the_object_byte_for_byte(runtime: LocalRuntime) -> None:
    # GIVEN an object in the bucket, and a boto3 client configured as a function's (AWS_ENDPOINT_URL)
    env = runtime.backend.child_environment()
    s3 = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
        region_name=env["AWS_REGION"],
    ).client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
    bucket = runtime.attribute(runtime.api(), "ResultsBucket12AB34CD")
    body = bytes(range(256)) * 8
    s3.put_object(Bucket=bucket, Key="results/job-1/out.bin", Body=body)

    # WHEN it is presigned and fetched with urllib
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "results/job-1/out.bin"}, ExpiresIn=60
    )
    with urllib.request.urlopen(url, timeout=10) as response:
        downloaded = response.read()

    # THEN the URL is path-style on the loopback endpoint, and the bytes are the object's
    assert url.startswith(f"{env['AWS_ENDPOINT_URL']}/{bucket}/results/job-1/out.bin?")
    assert downloaded == body


def test_a_function_presigns_in_its_own_process_a_url_the_host_can_fetch(runtime: LocalRuntime) -> None:
    # GIVEN the probe function, running in a child process with the runtime's environment
    probe = runtime.functions[(STACK, "Probe")]
    body = b"\x00\xffresult\r\n" * 100

    # WHEN it puts and presigns an object with a default boto3 client
    result = probe.invoke({"key": "job-2/result.bin", "hex": body.hex()})
    assert result.ok, result.error
    with urllib.request.urlopen(result.payload["url"], timeout=10) as response:
        downloaded = response.read()

    # THEN the host downloads the same bytes, and the function knew it ran locally
    assert downloaded == body
    assert result.payload["local"] == "1"


def test_every_function_is_told_it_runs_in_the_local_runtime(runtime: LocalRuntime) -> None:
    # GIVEN the runtime's functions
    functions = runtime.functions.values()

    # WHEN their environments are read
    values = {function.name: function.environment.get("ASYNC_JOB_LOCAL_RUNTIME") for function in functions}

    # THEN each has ASYNC_JOB_LOCAL_RUNTIME=1
    assert len(values) >= 5
    assert set(values.values()) == {"1"}, values


def test_a_generated_secret_honours_its_length_and_exclusions_and_ref_is_its_arn(
    runtime: LocalRuntime,
) -> None:
    # GIVEN the generated secret of the template (40 characters, no punctuation)
    arn = runtime.attribute(runtime.api(), "SigningSecret")

    # WHEN its value is read from the backend
    value = runtime.backend.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]

    # THEN Ref is its ARN, and the value follows the options
    assert arn.startswith("arn:aws:secretsmanager:")
    assert _probe_environment(runtime)["SECRET_ARN"] == arn
    assert len(value) == 40
    assert value.isalnum(), value


def test_a_literal_secret_string_is_stored_as_it_is(runtime: LocalRuntime) -> None:
    # GIVEN the secret with a SecretString, referenced by the probe only (not marked)
    arn = _probe_environment(runtime)["PLAIN_SECRET_ARN"]

    # WHEN its value is read
    value = runtime.backend.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]

    # THEN it is the template's string
    assert value == "s3cret"


def test_a_secret_string_template_gets_the_password_under_its_key() -> None:
    # GIVEN GenerateSecretString with a template and a key
    properties = {
        "GenerateSecretString": {
            "SecretStringTemplate": '{"user": "hooks"}',
            "GenerateStringKey": "password",
            "ExcludeCharacters": "/@",
        }
    }

    # WHEN the request is read
    template, key, options = secret_value_request(properties)

    # THEN the password goes under the key, with CloudFormation's default length
    assert (template, key) == ('{"user": "hooks"}', "password")
    assert options == {"ExcludeCharacters": "/@", "PasswordLength": 32}


@pytest.mark.parametrize(
    ("parts", "other"),
    [
        (("Stack", "Bucket"), ("Stack", "BUCKET")),
        (("My_Stack" * 10, "ResultsBucket" * 5), ("My_Stack" * 10, "ResultsBucket" * 5 + "2")),
        (("---", "..."), ("--", "...")),
    ],
)
def test_bucket_names_are_valid_and_distinct(parts: tuple[str, str], other: tuple[str, str]) -> None:
    # GIVEN two pairs of parts that differ (in case, in length, or only in what is replaced)
    # WHEN bucket names are made of them
    first, second = bucket_name(*parts), bucket_name(*other)

    # THEN both are valid bucket names, and different
    assert BUCKET_RULE.match(first), first
    assert BUCKET_RULE.match(second), second
    assert first != second
