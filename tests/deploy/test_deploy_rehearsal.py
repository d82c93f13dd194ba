"""Deploy rehearsal: the real ``cdk bootstrap`` and ``cdk deploy --method=direct`` of the sample app, through the
pinned CLI, against a moto server; then what moto holds, read back through boto3.

It proves the deploy path up to CloudFormation: the app synthesizes under the CLI, the assets are built and
uploaded to the bootstrap bucket, the template is accepted, and every resource moto supports is created with
what the template says (functions with their code, handler, runtime and environment; the queues and their
redrive; the table; the event source mappings; the IAM-authorized methods). It cannot prove what moto does not
model: ``KNOWN_...`` below lists what moto drops, and the ``test_known_gap_...`` tests assert each gap, so a moto
upgrade that closes one fails here, to be turned into a real assertion. ``docs/deploy.md`` has the steps by hand.

One synthesis (``cdk synth --output`` into a temporary directory, beside the bootstrap; the deploy takes that
assembly with ``--app``); the expectations come from the template it wrote, never from typed-out ARNs.
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import pytest
from cfnlint.decode import decode_str

from lambda_handlers import config
from lambda_handlers.contract import METADATA_KEY, Env, Role
from lambda_handlers.durable_config import DurableWorkerConfig, StarterConfig
from tests.deploy.rehearsal import (
    ACCOUNT,
    CLI,
    PSEUDO_PARAMETERS,
    REGION,
    ROOT,
    MotoProcess,
    Rehearsal,
    cli_environment,
    resolve,
    run_cdk,
)

STACK: Final = "AsyncJobSample"
TOOLKIT_STACK: Final = "CDKToolkit"
#: The whole rehearsal (moto, bootstrap beside the synth, asset builds, deploy): 15 s on a machine of two cores,
#: 146-162 s with both cores busy with other work (docs/deploy.md); the bound stays under three minutes.

#: Resource types moto's CloudFormation (5.2.5) does not implement: it logs "No Moto CloudFormation support",
#: marks them CREATE_COMPLETE without a type or physical id, and creates nothing.
KNOWN_UNSUPPORTED_TYPES: Final = frozenset(
    {
        "AWS::ApiGateway::Account",
        "AWS::ApiGateway::GatewayResponse",
        "AWS::ApiGateway::Model",
        "AWS::ApiGateway::RequestValidator",
        "AWS::ApiGateway::Stage",
        "AWS::CDK::Metadata",
        "AWS::CloudWatch::Alarm",
        "AWS::Logs::QueryDefinition",
        "AWS::S3::BucketPolicy",
        "AWS::SQS::QueuePolicy",
    }
)
#: The bootstrap stack's resources moto's CloudFormation skips (an AWS::S3::BucketPolicy).
KNOWN_BOOTSTRAP_UNCREATED: Final = frozenset({"StagingBucketPolicy"})
#: The bootstrap stack's resources whose condition is false with the default parameters (not made on AWS either).
KNOWN_BOOTSTRAP_CONDITIONAL: Final = frozenset(
    {
        "FileAssetsBucketEncryptionKey",
        "FileAssetsBucketEncryptionKeyAlias",
        "CdkBoostrapPermissionsBoundaryPolicy",
    }
)
#: Environment variables that are not the contract's: Powertools' own settings.
_POWERTOOLS_ENV: Final = re.compile(r"POWERTOOLS_[A-Z_]+")
#: The Powertools for AWS Lambda (Python) v3 public layer, in the rehearsal's region, any account and version.
_POWERTOOLS_LAYER: Final = re.compile(
    rf"arn:aws:lambda:{REGION}:\d{{12}}:layer:AWSLambdaPowertoolsPythonV3-python3\d+-(x86_64|arm64):\d+"
)
#: Each function's role (its template metadata) and the settings its runtime loads at cold start.
_CONFIG_OF_ROLE: Final[dict[str, type[Any]]] = {
    Role.SUBMIT: config.SubmitConfig,
    Role.STATUS: config.StatusConfig,
    Role.WORKER: config.WorkerConfig,
    Role.DEAD_LETTER: config.DeadLetterConfig,
    Role.STARTER: StarterConfig,
}


def config_of(resource: dict[str, Any]) -> type[Any]:
    """The settings class the function's runtime loads (a long type's durable worker has its own)."""
    if resource["Properties"]["Handler"] == "lambda_handlers.durable_worker.handler":
        return DurableWorkerConfig
    return _CONFIG_OF_ROLE[role_of(resource)]


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    """moto started, the environment bootstrapped and the sample stack deployed, once for the module."""
    assert CLI.exists(), "the pinned CDK CLI is missing: run scripts/setup"
    work = tmp_path_factory.mktemp("deploy-rehearsal")
    started = time.monotonic()
    moto = MotoProcess(work / "moto.log")
    try:
        seconds = {"moto start": time.monotonic() - started}
        env = cli_environment(moto.endpoint, work)
        assembly, outputs = work / "cdk.out", work / "outputs.json"
        # Bootstrapping (from a directory without cdk.json: it synthesizes nothing) overlaps the one synthesis.
        with ThreadPoolExecutor(max_workers=2) as pool:
            bootstrap = pool.submit(run_cdk, ["bootstrap", f"aws://{ACCOUNT}/{REGION}"], cwd=work, env=env)
            synth = pool.submit(
                run_cdk, ["synth", STACK, "--quiet", "--output", str(assembly)], cwd=ROOT, env=env
            )
            seconds["cdk bootstrap"], seconds["cdk synth"] = bootstrap.result(), synth.result()
        seconds["cdk deploy"] = run_cdk(
            [
                "deploy",
                STACK,
                "--app",
                str(assembly),
                "--require-approval",
                "never",
                "--method=direct",
                "--outputs-file",
                str(outputs),
            ],
            cwd=ROOT,
            env=env,
        )
        seconds["total"] = time.monotonic() - started
        print("deploy rehearsal: " + ", ".join(f"{step} {took:.1f} s" for step, took in seconds.items()))
        yield Rehearsal(
            endpoint=moto.endpoint,
            stack_name=STACK,
            assembly=assembly,
            outputs=json.loads(outputs.read_text())[STACK],
            seconds=seconds,
        )
    finally:
        moto.close()


@pytest.fixture(scope="module")
def resources(rehearsal: Rehearsal) -> dict[str, dict[str, Any]]:
    """The deployed template's resources by logical id."""
    return dict(rehearsal.template["Resources"])


@pytest.fixture(scope="module")
def physical(rehearsal: Rehearsal) -> dict[str, str]:
    """What each ``Ref`` and ``Fn::GetAtt`` of the template resolved to in moto."""
    refs = dict(PSEUDO_PARAMETERS)
    refs.update(
        (logical, summary["PhysicalResourceId"])
        for logical, summary in rehearsal.created_resources().items()
        if summary.get("PhysicalResourceId")
    )
    lambda_, sqs = rehearsal.client("lambda"), rehearsal.client("sqs")
    layers = lambda_.list_layers()["Layers"]
    for logical, resource in rehearsal.template["Resources"].items():
        kind = resource["Type"]
        if kind == "AWS::Lambda::LayerVersion":
            # moto records no physical id for a layer version: find it by the name CloudFormation gave it.
            (layer,) = (layer for layer in layers if layer["LayerName"].startswith(f"{STACK}-{logical}-"))
            refs[logical] = layer["LatestMatchingVersion"]["LayerVersionArn"]
        elif kind == "AWS::SQS::Queue":
            attributes = sqs.get_queue_attributes(QueueUrl=refs[logical], AttributeNames=["QueueArn"])
            refs[f"{logical}.Arn"] = attributes["Attributes"]["QueueArn"]
        elif kind == "AWS::Lambda::Function":
            refs[f"{logical}.Arn"] = lambda_.get_function(FunctionName=refs[logical])["Configuration"][
                "FunctionArn"
            ]
        elif kind == "AWS::DynamoDB::Table":
            table = rehearsal.client("dynamodb").describe_table(TableName=refs[logical])["Table"]
            refs[f"{logical}.Arn"] = table["TableArn"]
            if "LatestStreamArn" in table:
                refs[f"{logical}.StreamArn"] = table["LatestStreamArn"]
        elif kind == "AWS::S3::Bucket":
            refs[f"{logical}.Arn"] = f"arn:aws:s3:::{refs[logical]}"
        elif kind == "AWS::Logs::LogGroup":
            (group,) = rehearsal.client("logs").describe_log_groups(logGroupNamePrefix=refs[logical])[
                "logGroups"
            ]
            refs[f"{logical}.Arn"] = group["arn"]
        elif kind == "AWS::IAM::Role":
            refs[f"{logical}.Arn"] = rehearsal.client("iam").get_role(RoleName=refs[logical])["Role"]["Arn"]
    return refs


def of_type(resources: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """The resources of one type, by logical id."""
    return {logical: resource for logical, resource in resources.items() if resource["Type"] == kind}


def expected(properties: Any, rehearsal: Rehearsal, physical: dict[str, str]) -> Any:
    """Template properties as CloudFormation resolves them in the rehearsal's stack."""
    return resolve(properties, physical, rehearsal.template)


def role_of(resource: dict[str, Any]) -> str:
    return str(resource.get("Metadata", {}).get(METADATA_KEY, {}).get("role"))


def uploaded_objects(rehearsal: Rehearsal) -> dict[str, dict[str, Any]]:
    """Every object in the bootstrap stack's assets bucket, by key."""
    bucket = rehearsal.created_resources(TOOLKIT_STACK)["StagingBucket"]["PhysicalResourceId"]
    listing = rehearsal.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: {**item, "Bucket": bucket} for item in listing}


# -- bootstrap ----------------------------------------------------------------------------------------------


def test_bootstrap_creates_the_toolkit_stack_its_assets_bucket_and_version_parameter(
    rehearsal: Rehearsal,
) -> None:
    (stack,) = rehearsal.client("cloudformation").describe_stacks(StackName=TOOLKIT_STACK)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    created = rehearsal.created_resources(TOOLKIT_STACK)
    bucket = created["StagingBucket"]["PhysicalResourceId"]
    assert bucket == f"cdk-hnb659fds-assets-{ACCOUNT}-{REGION}"  # where the asset manifest says to upload
    rehearsal.client("s3").head_bucket(Bucket=bucket)
    for role in ("FilePublishingRole", "DeploymentActionRole", "CloudFormationExecutionRole", "LookupRole"):
        rehearsal.client("iam").get_role(RoleName=created[role]["PhysicalResourceId"])
    parameter = rehearsal.client("ssm").get_parameter(Name="/cdk-bootstrap/hnb659fds/version")["Parameter"]
    assert int(parameter["Value"]) >= 6  # the lowest version the stack's deploy-time check accepts


def test_known_gap_moto_skips_the_bootstrap_bucket_policy_and_outputs(rehearsal: Rehearsal) -> None:
    cloudformation = rehearsal.client("cloudformation")
    template, _ = decode_str(cloudformation.get_template(StackName=TOOLKIT_STACK)["TemplateBody"])
    uncreated = set(template["Resources"]) - set(rehearsal.created_resources(TOOLKIT_STACK))
    # as on AWS, the KMS key and the permissions boundary are not made with the default parameters
    assert {r for r in uncreated if "Condition" in template["Resources"][r]} == KNOWN_BOOTSTRAP_CONDITIONAL
    # moto has no AWS::S3::BucketPolicy (the TLS-only policy of the assets bucket)
    assert {r for r in uncreated if "Condition" not in template["Resources"][r]} == KNOWN_BOOTSTRAP_UNCREATED
    # and the stack comes without the template's outputs (BucketName, BootstrapVersion, ...)
    assert template["Outputs"]
    (stack,) = cloudformation.describe_stacks(StackName=TOOLKIT_STACK)["Stacks"]
    assert "Outputs" not in stack, "moto now gives CDKToolkit its outputs"


# -- assets -------------------------------------------------------------------------------------------------


def test_every_asset_is_uploaded_to_the_bootstrap_bucket_as_built(rehearsal: Rehearsal) -> None:
    # GIVEN the stack's asset manifest: the function code, the runtime layer and the template itself
    files = rehearsal.asset_manifest["files"]
    objects = uploaded_objects(rehearsal)
    s3 = rehearsal.client("s3")
    assert len(files) >= 4
    for asset_hash, asset in files.items():
        source = rehearsal.assembly / asset["source"]["path"]
        for destination in asset["destinations"].values():
            key = destination["objectKey"]
            bucket = resolve({"Fn::Sub": destination["bucketName"]}, PSEUDO_PARAMETERS)
            # THEN each is in the bootstrap bucket under its hash
            assert key in objects, f"asset {asset_hash} ({source.name}) was not uploaded"
            assert objects[key]["Bucket"] == bucket
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            if asset["source"].get("packaging") == "zip":
                # AND a directory asset's zip holds exactly the directory's files
                names = {
                    name for name in zipfile.ZipFile(io.BytesIO(body)).namelist() if not name.endswith("/")
                }
                assert names == {
                    str(path.relative_to(source)) for path in source.rglob("*") if path.is_file()
                }
            else:
                assert body == source.read_bytes()


def test_every_function_and_layer_runs_the_code_uploaded_for_it(
    rehearsal: Rehearsal, resources: dict[str, dict[str, Any]], physical: dict[str, str]
) -> None:
    objects = uploaded_objects(rehearsal)
    lambda_ = rehearsal.client("lambda")
    for logical, resource in of_type(resources, "AWS::Lambda::Function").items():
        code = expected(resource["Properties"]["Code"], rehearsal, physical)
        configuration = lambda_.get_function(FunctionName=physical[logical])["Configuration"]
        assert configuration["CodeSize"] == objects[code["S3Key"]]["Size"], logical
    for logical, resource in of_type(resources, "AWS::Lambda::LayerVersion").items():
        content = expected(resource["Properties"]["Content"], rehearsal, physical)
        name, version = physical[logical].rsplit(":", 1)
        layer = lambda_.get_layer_version(LayerName=name, VersionNumber=int(version))
        assert layer["Content"]["CodeSize"] == objects[content["S3Key"]]["Size"], logical
        assert layer["CompatibleRuntimes"] == resource["Properties"]["CompatibleRuntimes"]


# -- functions ----------------------------------------------------------------------------------------------


def test_every_function_exists_with_its_handler_runtime_memory_timeout_and_role(
    rehearsal: Rehearsal, resources: dict[str, dict[str, Any]], physical: dict[str, str]
) -> None:
    functions = of_type(resources, "AWS::Lambda::Function")
    assert {role_of(resource) for resource in functions.values()} == set(_CONFIG_OF_ROLE) | {Role.EVENTS}
    lambda_ = rehearsal.client("lambda")
    for logical, resource in functions.items():
        want = expected(resource["Properties"], rehearsal, physical)
        got = lambda_.get_function(FunctionName=physical[logical])["Configuration"]
        assert (got["Handler"], got["Runtime"], got["MemorySize"], got["Timeout"], got["Role"]) == (
            want["Handler"],
            want["Runtime"],
            want["MemorySize"],
            want["Timeout"],
            want["Role"],
        ), logical
        assert got["State"] == "Active"


def test_every_function_has_the_environment_of_its_template(
    rehearsal: Rehearsal, resources: dict[str, dict[str, Any]], physical: dict[str, str]
) -> None:
    lambda_ = rehearsal.client("lambda")
    for logical, resource in of_type(resources, "AWS::Lambda::Function").items():
        want = expected(resource["Properties"]["Environment"]["Variables"], rehearsal, physical)
        got = lambda_.get_function(FunctionName=physical[logical])["Configuration"]["Environment"][
            "Variables"
        ]
        assert got == want, logical


def test_every_deployed_environment_is_one_its_runtime_starts_with(
    rehearsal: Rehearsal, resources: dict[str, dict[str, Any]], physical: dict[str, str]
) -> None:
    # GIVEN each function's environment as deployed, and the contract's variable names
    contract_names = {value for name, value in vars(Env).items() if name.isupper()}
    lambda_ = rehearsal.client("lambda")
    for logical, resource in of_type(resources, "AWS::Lambda::Function").items():
        environment = lambda_.get_function(FunctionName=physical[logical])["Configuration"]["Environment"]
        variables = environment["Variables"]
        # THEN it names only the contract's variables and Powertools' settings
        unknown = {n for n in variables if n not in contract_names and not _POWERTOOLS_ENV.fullmatch(n)}
        assert not unknown, f"{logical}: not in lambda_handlers.contract.Env: {sorted(unknown)}"
        if role_of(resource) not in _CONFIG_OF_ROLE:  # the events function reads its two variables itself
            assert variables[Env.EVENT_BUS] == "default"
            continue
        # AND the runtime's cold-start validation accepts it
        settings = config.load(config_of(resource), variables)
        assert settings.table_name == physical[of_role(resources, Role.TABLE)]
        # AND every job type it routes to is a queue that was deployed
        queues = {physical[logical] for logical, queue in resources.items() if role_of(queue) == Role.QUEUE}
        for job_type in (getattr(settings, "job_types", None) or {}).values():
            assert job_type.queue_url in queues


def of_role(resources: dict[str, dict[str, Any]], role: str) -> str:
    """The logical id of the one resource with this role."""
    (logical,) = (logical for logical, resource in resources.items() if role_of(resource) == role)
    return logical


def test_the_template_gives_every_function_the_powertools_layer_and_the_worker_the_runtime_layer(
    rehearsal: Rehearsal, resources: dict[str, dict[str, Any]], physical: dict[str, str]
) -> None:
    # moto keeps no layers (below), so the layers are checked as the template resolves them in this stack
    runtime_layers = {physical[logical] for logical in of_type(resources, "AWS::Lambda::LayerVersion")}
    assert len(runtime_layers) == 1
    for logical, resource in of_type(resources, "AWS::Lambda::Function").items():
        layers = expected(resource["Properties"]["Layers"], rehearsal, physical)
        powertools = [arn for arn in layers if _POWERTOOLS_LAYER.fullmatch(arn)]
        assert len(powertools) == 1, f"{logical}: no Powertools layer in {layers}"
        want_runtime = runtime_layers if role_of(resource) == Role.WORKER else set()
        assert set(layers) - set(powertools) == want_runtime, logical


def test_known_gap_moto_creates_every_function_without_its_layers(
    rehearsal: Rehearsal, resources: dict[str, dict[str, Any]], physical: dict[str, str]
) -> None:
    # moto's CloudFormation passes no Layers to CreateFunction (and moto's Lambda API would refuse the
    # Powertools layer anyway: it looks a layer up by name and version in the caller's own account).
    lambda_ = rehearsal.client("lambda")
    for logical, resource in of_type(resources, "AWS::Lambda::Function").items():
        assert resource["Properties"]["Layers"]
        assert lambda_.get_function(FunctionName=physical[logical])["Configuration"]["Layers"] == [], (
            f"moto now keeps {logical}'s layers: assert them against the template instead"
        )


def test_known_gap_moto_drops_tracing_and_logging_config(
    rehearsal: Rehearsal, resources: dict[str, dict[str, Any]], physical: dict[str, str]
) -> None:
    lambda_ = rehearsal.client("lambda")
    for logical, resource in of_type(resources, "AWS::Lambda::Function").items():
        assert resource["Properties"]["TracingConfig"] == {"Mode": "Active"}
        assert resource["Properties"]["LoggingConfig"]["LogFormat"] == "JSON"
        got = lambda_.get_function(FunctionName=physical[logical])["Configuration"]
        assert got["TracingConfig"] == {"Mode": "PassThrough"}, f"moto now keeps {logical}'s TracingConfig"
        assert "LoggingConfig" not in got, f"moto now keeps {logical}'s LoggingConfig"


def test_every_event_source_mapping_connects_its_queue_to_its_function(
    rehearsal: Rehearsal, resources: dict[str, dict[str, Any]], physical: dict[str, str]
) -> None:
    mappings = of_type(resources, "AWS::Lambda::EventSourceMapping")
    # the reports worker and the archive starter on their job queues, the dead-letter function on both DLQs, the
    # events function on the table's stream
    assert len(mappings) == 5
    lambda_ = rehearsal.client("lambda")
    for logical, resource in mappings.items():
        want = expected(resource["Properties"], rehearsal, physical)
        got = lambda_.get_event_source_mapping(UUID=physical[logical])
        assert got["EventSourceArn"] == want["EventSourceArn"], logical
        assert (
            got["FunctionArn"]
            == lambda_.get_function(FunctionName=want["FunctionName"])["Configuration"]["FunctionArn"]
        )
        assert (got["BatchSize"], got["FunctionResponseTypes"]) == (
            want["BatchSize"],
            want["FunctionResponseTypes"],
        )


# -- queues, table, logs ------------------------------------------------------------------------------------


def test_the_queues_exist_with_the_redrive_policy_of_the_template(
    rehearsal: Rehearsal, resources: dict[str, dict[str, Any]], physical: dict[str, str]
) -> None:
    sqs = rehearsal.client("sqs")
    queues = of_type(resources, "AWS::SQS::Queue")
    assert {role_of(resource) for resource in queues.values()} == {
        Role.QUEUE,
        Role.DEAD_LETTER_QUEUE,
        Role.EVENTS_DEAD_LETTER_QUEUE,
    }
    for logical, resource in queues.items():
        want = expected(resource["Properties"], rehearsal, physical)
        got = sqs.get_queue_attributes(QueueUrl=physical[logical], AttributeNames=["All"])["Attributes"]
        assert int(got["VisibilityTimeout"]) == want["VisibilityTimeout"], logical
        assert int(got["MessageRetentionPeriod"]) == want["MessageRetentionPeriod"], logical
        assert got["SqsManagedSseEnabled"] == str(want["SqsManagedSseEnabled"]).lower(), logical
        if role_of(resource) == Role.QUEUE:
            assert json.loads(got["RedrivePolicy"]) == want["RedrivePolicy"]
            dead_letter_arns = {
                physical[f"{logical}.Arn"]
                for logical, queue in resources.items()
                if role_of(queue) == Role.DEAD_LETTER_QUEUE
            }
            assert want["RedrivePolicy"]["deadLetterTargetArn"] in dead_letter_arns
        else:
            assert "RedrivePolicy" not in got


def test_the_table_exists_with_its_keys_and_billing_mode(
    rehearsal: Rehearsal, resources: dict[str, dict[str, Any]], physical: dict[str, str]
) -> None:
    (logical,) = of_type(resources, "AWS::DynamoDB::Table")
    want = resources[logical]["Properties"]
    got = rehearsal.client("dynamodb").describe_table(TableName=physical[logical])["Table"]
    assert got["TableStatus"] == "ACTIVE"
    assert got["KeySchema"] == want["KeySchema"]
    assert got["AttributeDefinitions"] == want["AttributeDefinitions"]
    assert got["BillingModeSummary"]["BillingMode"] == want["BillingMode"]
    assert len(got.get("GlobalSecondaryIndexes") or []) == len(want.get("GlobalSecondaryIndexes", []))


def test_known_gap_moto_drops_the_table_s_ttl_point_in_time_recovery_and_encryption(
    rehearsal: Rehearsal, resources: dict[str, dict[str, Any]], physical: dict[str, str]
) -> None:
    (logical,) = of_type(resources, "AWS::DynamoDB::Table")
    want = resources[logical]["Properties"]
    assert want["TimeToLiveSpecification"]["Enabled"] is True
    assert want["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert want["SSESpecification"] == {"SSEEnabled": True}
    dynamodb, table = rehearsal.client("dynamodb"), physical[logical]
    ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "DISABLED"}, "moto now applies TimeToLiveSpecification"
    backups = dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    pitr = backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]
    assert pitr == "DISABLED", "moto now applies PointInTimeRecoverySpecification"
    description = dynamodb.describe_table(TableName=table)["Table"]
    assert "SSEDescription" not in description, "moto now applies SSESpecification"


def test_the_log_groups_exist_with_their_retention(
    rehearsal: Rehearsal, resources: dict[str, dict[str, Any]], physical: dict[str, str]
) -> None:
    logs = rehearsal.client("logs")
    groups = of_type(resources, "AWS::Logs::LogGroup")
    assert len(groups) == 8  # seven functions' and the stage's access log
    for logical, resource in groups.items():
        (group,) = logs.describe_log_groups(logGroupNamePrefix=physical[logical])["logGroups"]
        assert group.get("retentionInDays") == resource["Properties"].get("RetentionInDays"), logical


def test_known_gap_moto_attaches_no_managed_policy_to_a_role(
    rehearsal: Rehearsal, resources: dict[str, dict[str, Any]], physical: dict[str, str]
) -> None:
    iam = rehearsal.client("iam")
    roles = of_type(resources, "AWS::IAM::Role")
    with_managed = {logical for logical, role in roles.items() if role["Properties"].get("ManagedPolicyArns")}
    assert with_managed  # the API's CloudWatch role (AmazonAPIGatewayPushToCloudWatchLogs)
    for logical in roles:
        attached = iam.list_attached_role_policies(RoleName=physical[logical])["AttachedPolicies"]
        assert attached == [], f"moto now attaches {logical}'s ManagedPolicyArns"


def test_every_role_has_the_inline_policy_of_its_template(
    rehearsal: Rehearsal, resources: dict[str, dict[str, Any]], physical: dict[str, str]
) -> None:
    iam = rehearsal.client("iam")
    policies = of_type(resources, "AWS::IAM::Policy")
    # one per function's role (its grants on its log group, the table, the queues and the bucket), and the archive
    # worker's durable-execution policy
    assert len(policies) == 8
    # known gap: moto's Fn::GetAtt of a log group's Arn lacks the ":*" that CloudFormation's ends with
    on_moto = dict(physical)
    for group in of_type(resources, "AWS::Logs::LogGroup"):
        assert physical[f"{group}.Arn"].endswith(":*")
        on_moto[f"{group}.Arn"] = physical[f"{group}.Arn"].removesuffix(":*")
    for logical, policy in policies.items():
        want = expected(policy["Properties"], rehearsal, physical)
        want_on_moto = expected(policy["Properties"], rehearsal, on_moto)
        if "logs:" in json.dumps(policy["Properties"]["PolicyDocument"]):
            assert want_on_moto != want  # every function's policy grants writing to its log group
        for role in want["Roles"]:
            got = iam.get_role_policy(RoleName=role, PolicyName=want["PolicyName"])["PolicyDocument"]
            assert got == want_on_moto["PolicyDocument"], logical


# -- API ----------------------------------------------------------------------------------------------------


def test_the_api_has_its_iam_authorized_proxy_methods(
    rehearsal: Rehearsal, resources: dict[str, dict[str, Any]], physical: dict[str, str]
) -> None:
    apigateway = rehearsal.client("apigateway")
    api = physical[of_role(resources, Role.API)]
    routes = {}
    for resource in apigateway.get_resources(restApiId=api)["items"]:
        for method in resource.get("resourceMethods") or {}:
            got = apigateway.get_method(restApiId=api, resourceId=resource["id"], httpMethod=method)
            integration = got["methodIntegration"]
            function_arn = integration["uri"].split("/functions/")[1].removesuffix("/invocations")
            routes[(method, resource["path"])] = (got["authorizationType"], integration["type"], function_arn)
    submit = physical[f"{of_role(resources, Role.SUBMIT)}.Arn"]
    status = physical[f"{of_role(resources, Role.STATUS)}.Arn"]
    assert routes == {
        ("POST", "/jobs"): ("AWS_IAM", "AWS_PROXY", submit),
        ("POST", "/archive"): ("AWS_IAM", "AWS_PROXY", submit),
        ("GET", "/jobs"): ("AWS_IAM", "AWS_PROXY", status),
        ("GET", "/jobs/{id}"): ("AWS_IAM", "AWS_PROXY", status),
        ("GET", "/jobs/{id}/result"): ("AWS_IAM", "AWS_PROXY", status),
        ("DELETE", "/jobs/{id}"): ("AWS_IAM", "AWS_PROXY", status),
    }


def test_known_gap_moto_creates_no_stage_so_the_url_output_names_stage_none(
    rehearsal: Rehearsal, resources: dict[str, dict[str, Any]], physical: dict[str, str]
) -> None:
    api = physical[of_role(resources, Role.API)]
    (stage,) = of_type(resources, "AWS::ApiGateway::Stage").values()
    assert stage["Properties"]["StageName"] == "prod"
    assert rehearsal.client("apigateway").get_stages(restApiId=api)["item"] == []
    # on AWS: https://{api}.execute-api.{region}.amazonaws.com/prod/jobs
    assert rehearsal.outputs["JobsUrl"] == f"https://{api}.execute-api.{REGION}.amazonaws.com/None/jobs"


# -- what moto drops --------------------------------------------------------------------------------------


def test_known_gap_moto_creates_every_resource_but_those_of_its_unsupported_types(
    rehearsal: Rehearsal, resources: dict[str, dict[str, Any]]
) -> None:
    summaries = rehearsal.stack_resource_summaries()
    created = rehearsal.created_resources()
    uncreated = set(resources) - set(created)
    # moto skips every resource of the types it does not implement, and creates every other one
    assert {resources[logical]["Type"] for logical in uncreated} == KNOWN_UNSUPPORTED_TYPES
    assert uncreated == {logical for logical, r in resources.items() if r["Type"] in KNOWN_UNSUPPORTED_TYPES}
    assert all(created[logical]["ResourceType"] == resources[logical]["Type"] for logical in created)
    # it lists each skipped one CREATE_COMPLETE, without a logical id, type or physical id
    skipped = [s for s in summaries if not s["LogicalResourceId"]]
    assert len(skipped) == len(uncreated)
    assert {s["ResourceStatus"] for s in summaries} == {"CREATE_COMPLETE"}
