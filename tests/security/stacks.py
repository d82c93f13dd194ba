"""The stacks the scanners judge: the sample stack, one with every option of AsyncJobApi on, and one of several
job types (short and long)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_wafv2 as wafv2

from async_job_construct import AsyncJobApi, JobApiAuth, JobWebSocketOptions
from async_job_construct.compliance import skip_checkov, skip_function_checks
from tests.unit.construct.helpers import TEAM_CODE


def _web_acl(stack: cdk.Stack) -> wafv2.CfnWebACL:
    return wafv2.CfnWebACL(
        stack,
        "WebAcl",
        scope="REGIONAL",
        default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
        visibility_config=wafv2.CfnWebACL.VisibilityConfigProperty(
            cloud_watch_metrics_enabled=True, metric_name="jobs", sampled_requests_enabled=True
        ),
        rules=[
            wafv2.CfnWebACL.RuleProperty(
                name=rule_group,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS", name=rule_group
                    )
                ),
                visibility_config=wafv2.CfnWebACL.VisibilityConfigProperty(
                    cloud_watch_metrics_enabled=True, metric_name=rule_group, sampled_requests_enabled=True
                ),
            )
            for priority, rule_group in enumerate(
                ["AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"]
            )
        ],
    )


def _user_pool(stack: cdk.Stack) -> cognito.UserPool:
    return cognito.UserPool(
        stack,
        "Users",
        password_policy=cognito.PasswordPolicy(
            min_length=12,
            require_digits=True,
            require_lowercase=True,
            require_uppercase=True,
            require_symbols=True,
        ),
        mfa=cognito.Mfa.REQUIRED,
        mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
        feature_plan=cognito.FeaturePlan.PLUS,
        standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION,
        removal_policy=cdk.RemovalPolicy.RETAIN,
    )


def _token_verifier(stack: cdk.Stack) -> lambda_.Function:
    """The team's WebSocket authorizer: a Cognito token verifier is the team's function (docs/websockets.md)."""
    function = lambda_.Function(
        stack,
        "TokenVerifier",
        runtime=lambda_.Runtime.PYTHON_3_14,
        architecture=lambda_.Architecture.ARM_64,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    raise NotImplementedError\n"),
    )
    reason = "Scanner test stack: the team's authorizer function stands in for theirs (not the construct's)."
    cfn = function.node.default_child
    assert isinstance(cfn, lambda_.CfnFunction)
    cfn.add_deletion_override("DependsOn")  # CDK's DependsOn on the role its GetAtt orders already (W3005)
    skip_function_checks(function)
    skip_checkov(function, "CKV_AWS_116", reason)
    assert function.role is not None
    cdk.Validations.of(function.role).acknowledge(
        cdk.Acknowledgment(
            id="AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaBasicExecutionRole]",
            reason=reason,
        )
    )
    return function


def build_all_options_stack(app: cdk.App) -> cdk.Stack:
    """Every option of AsyncJobApi on, in one stack."""
    stack = cdk.Stack(app, "AllOptions")
    key = kms.Key(stack, "Key", enable_key_rotation=True, description="async jobs")
    api = AsyncJobApi(
        stack,
        "Cognito",
        handler="reports.generate",
        code=TEAM_CODE,
        timeout=cdk.Duration.minutes(10),
        auth=JobApiAuth.cognito([_user_pool(stack)]),
        api_key_required=True,
        operators=["11111111-2222-3333-4444-555555555555"],
        throttling_rate_limit=20,
        throttling_burst_limit=40,
        cors=apigateway.CorsOptions(allow_origins=["https://reports.example.com"]),
        encryption_key=key,
        web_acl_arn=_web_acl(stack).attr_arn,
        cloud_watch_role=True,
        max_concurrency=10,
        architecture=lambda_.Architecture.ARM_64,
        removal_policy=cdk.RemovalPolicy.DESTROY,
        job_events="all",
        webhook_allowed_hosts=["hooks.example.com", "*.partner.example.com"],
        websocket=JobWebSocketOptions(
            authorizer_function=_token_verifier(stack),
            identity_source=["route.request.querystring.token"],
            point_in_time_recovery=True,
        ),
    )
    # A long type (durable executions) under the same key, tracing and architecture.
    api.add_job_type(
        "archive",
        handler="archive.build",
        code=TEAM_CODE,
        timeout=cdk.Duration.hours(6),
        max_concurrency=2,
        architecture=lambda_.Architecture.ARM_64,
    )
    return stack


def build_job_types_stack(app: cdk.App) -> cdk.Stack:
    """One API with several job types (on two architectures), and a second API sharing the
    stack's API Gateway account logging role."""
    stack = cdk.Stack(app, "JobTypes")
    media = AsyncJobApi(stack, "Media", cloud_watch_role=True, websocket=True)
    media.add_job_type(
        "reports", handler="reports.generate", code=TEAM_CODE, timeout=cdk.Duration.minutes(10)
    )
    media.add_job_type(
        "thumbnails",
        handler="thumbs.make",
        code=TEAM_CODE,
        max_concurrency=5,
        architecture=lambda_.Architecture.ARM_64,  # another runtime would be AwsSolutions-L1 (not the latest)
    )
    # A long type: a durable worker and its version, a starter on the queue and the sweep's schedule.
    media.add_job_type(
        "archive",
        handler="archive.build",
        code=TEAM_CODE,
        timeout=cdk.Duration.hours(2),
        invocation_timeout=cdk.Duration.minutes(5),
        max_concurrency=4,
    )
    AsyncJobApi(stack, "Single", handler="reports.generate", code=TEAM_CODE, cloud_watch_role=True)
    for api in (media, stack.node.find_child("Single")):
        assert isinstance(api, AsyncJobApi)
        cdk.Validations.of(api.api.deployment_stage).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions::AwsSolutions-APIG3",
                reason="Scanner test stack: the WAF association is covered by the all-options stack.",
            )
        )
    return stack
