"""The integ test's assertions replayed offline: its encoded events, decoded as the assertion provider does,
drive the real handlers on moto to the answer its expectation matches.

Run in a child process of its own (it imports the entry points with the integ stack's environment, and moto's
state is per process) by ``tests/integ/test_integ_snapshot.py``::

    python -m tests.integ.replay_assertions <cloud assembly directory>

It prints one JSON object: the submit's status code, the job's status as the status function reads it after
the worker ran, and whether the assertion's own ``expected`` (decoded from the template) matches.
What it cannot replay: API Gateway and its SigV4 check, the Lambda runtime and the Powertools layer, and the
provider's own SDK call (here the decoded payload goes straight to the handler).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Final

from tests.deploy.rehearsal import PSEUDO_PARAMETERS, resolve

ROOT: Final = Path(__file__).resolve().parents[2]
_INVOKE: Final = "Custom::DeployAssert@SdkCallLambdainvoke"
_ID_ATTRIBUTE: Final = "apiCallResponse.Payload.body.id"


def decode_parameter(value: str) -> Any:
    """A parameter as the assertion provider decodes it before its SDK call (``JSON.parse``, else as is)."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def matches(expected: Any, actual: Any) -> bool:
    """integ-tests' encoded matchers (``$ObjectLike``, ``$SerializedJson``) and literals, applied to ``actual``."""
    if isinstance(expected, dict) and len(expected) == 1:
        ((name, pattern),) = expected.items()
        if name == "$ObjectLike":
            return isinstance(actual, dict) and all(
                key in actual and matches(item, actual[key]) for key, item in pattern.items()
            )
        if name == "$SerializedJson":
            return isinstance(actual, str) and matches(pattern, json.loads(actual))
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and set(expected) == set(actual)
            and all(matches(item, actual[key]) for key, item in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual)


def replay(assembly: Path) -> dict[str, Any]:
    from moto import mock_aws

    integ = json.loads((assembly / "integ.json").read_text())
    ((case_name, case),) = integ["testCases"].items()
    (stack_name,) = case["stacks"]
    stack = json.loads((assembly / f"{stack_name}.template.json").read_text())
    assertions = json.loads((assembly / f"{case['assertionStackName']}.template.json").read_text())
    calls = {k: r for k, r in assertions["Resources"].items() if r["Type"] == _INVOKE}
    (submit_call,) = (k for k, r in calls.items() if "expected" not in r["Properties"])
    (status_call,) = (k for k, r in calls.items() if "expected" in r["Properties"])

    with mock_aws():
        import boto3

        dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
        refs: dict[str, str] = dict(PSEUDO_PARAMETERS)
        for logical, resource in stack["Resources"].items():
            if resource["Type"] == "AWS::DynamoDB::Table":
                properties = resource["Properties"]
                dynamodb.create_table(
                    TableName=logical,
                    KeySchema=properties["KeySchema"],
                    AttributeDefinitions=properties["AttributeDefinitions"],
                    BillingMode=properties["BillingMode"],
                    GlobalSecondaryIndexes=properties.get("GlobalSecondaryIndexes", []),
                )
                refs[logical] = logical
            elif resource["Type"] == "AWS::S3::Bucket":
                boto3.client("s3").create_bucket(Bucket=logical.lower())
                refs[logical] = logical.lower()
                refs[f"{logical}.Arn"] = f"arn:aws:s3:::{logical.lower()}"
            elif resource["Type"] == "AWS::SQS::Queue":
                refs[logical] = sqs.create_queue(QueueName=logical)["QueueUrl"]
                refs[f"{logical}.Arn"] = (
                    f"arn:aws:sqs:{os.environ['AWS_DEFAULT_REGION']}:123456789012:{logical}"
                )
        functions = {
            resource["Metadata"]["AsyncJob"]["role"]: resource
            for resource in stack["Resources"].values()
            if resource["Type"] == "AWS::Lambda::Function"
        }
        for function in functions.values():  # the variables the functions share have one value
            os.environ.update(resolve(function["Properties"]["Environment"]["Variables"], refs, stack))
        sys.path.insert(0, str(ROOT / "sample_jobs"))  # the worker's code asset
        submit = importlib.import_module("lambda_handlers.submit")
        status = importlib.import_module("lambda_handlers.status")
        worker = importlib.import_module("lambda_handlers.worker")
        from tests.unit.handlers.events import FakeLambdaContext, record_from_message, sqs_event

        # 1. the submit, with its payload decoded as the provider decodes it
        submit_payload = decode_parameter(
            resolve(calls[submit_call]["Properties"]["parameters"]["Payload"], refs)
        )
        submitted = submit.handler(json.loads(submit_payload), FakeLambdaContext())
        job_id = json.loads(submitted["body"])["id"]  # what the flattened Payload.body.id reads

        # the worker runs the job from the queue, as the event source mapping would deliver it
        (queue,) = (
            k
            for k, r in stack["Resources"].items()
            if r.get("Metadata", {}).get("AsyncJob", {}).get("role") == "queue"
        )
        (message,) = sqs.receive_message(QueueUrl=refs[queue], AttributeNames=["All"])["Messages"]
        worker.handler(sqs_event(record_from_message(message, refs[f"{queue}.Arn"])), FakeLambdaContext())

        # 2. the status read, with the job id spliced in where the template's GetAtt is
        refs[f"{submit_call}.{_ID_ATTRIBUTE}"] = job_id
        properties = calls[status_call]["Properties"]
        status_payload = decode_parameter(resolve(properties["parameters"]["Payload"], refs))
        read = status.handler(json.loads(status_payload), FakeLambdaContext())
        expected = json.loads(properties["expected"])
        actual = {"StatusCode": 200, "Payload": json.dumps(read)}  # a synchronous invoke's answer
        return {
            "test_case": case_name,
            "submit_status": submitted["statusCode"],
            "read_status": read["statusCode"],
            "job_status": json.loads(read["body"])["status"],
            "expectation_matches": matches(expected, actual),
        }


if __name__ == "__main__":
    print(json.dumps(replay(Path(sys.argv[1]))))
