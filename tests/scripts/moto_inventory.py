"""Everything a Terraform apply can leave in moto, as one JSON document on stdout.

Usage: moto_inventory.py <endpoint> <region>

The apply-against-moto test (tests/tests/e2e/deploy.rs) reads it after apply (function
configurations, policy documents, the dashboard, the API route) and compares it before apply
with after destroy ("destroy leaves nothing"). boto3 comes with moto in the project virtualenv.
"""
import json
import sys

import boto3

endpoint, region = sys.argv[1], sys.argv[2]


def client(service):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def pages(c, operation, key, **kwargs):
    paginator = c.get_paginator(operation)
    for page in paginator.paginate(**kwargs):
        yield from page.get(key, [])


def as_document(value):
    return json.loads(value) if isinstance(value, str) else value


resources = {}
policies = []


def add(kind, name):
    resources.setdefault(kind, []).append(name)


iam = client("iam")
for role in pages(iam, "list_roles", "Roles"):
    name = role["RoleName"]
    add("iam:role", role["Path"] + name)
    policies.append({"source": f"role {name} trust policy", "kind": "trust", "role": name,
                     "document": as_document(role["AssumeRolePolicyDocument"])})
    for policy_name in pages(iam, "list_role_policies", "PolicyNames", RoleName=name):
        document = iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
        add("iam:role-policy", f"{name}/{policy_name}")
        policies.append({"source": f"role {name} inline policy {policy_name}", "kind": "identity",
                         "role": name, "document": as_document(document)})
    for attached in pages(iam, "list_attached_role_policies", "AttachedPolicies", RoleName=name):
        add("iam:role-attachment", f"{name}/{attached['PolicyArn']}")
        policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
        version = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"])
        policies.append({"source": f"role {name} attached policy {attached['PolicyArn']}", "kind": "identity",
                         "role": name, "managed": True,
                         "document": as_document(version["PolicyVersion"]["Document"])})
for profile in pages(iam, "list_instance_profiles", "InstanceProfiles"):
    add("iam:instance-profile", profile["Path"] + profile["InstanceProfileName"])
for policy in pages(iam, "list_policies", "Policies", Scope="Local"):
    add("iam:policy", policy["Arn"])

sqs = client("sqs")
for url in sqs.list_queues().get("QueueUrls", []):
    add("sqs:queue", url.rsplit("/", 1)[-1])
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    if attributes.get("Policy"):
        policies.append({"source": f"queue {url.rsplit('/', 1)[-1]} policy", "kind": "resource",
                         "document": as_document(attributes["Policy"])})

s3 = client("s3")
for bucket in s3.list_buckets().get("Buckets", []):
    name = bucket["Name"]
    add("s3:bucket", name)
    for obj in pages(s3, "list_objects_v2", "Contents", Bucket=name):
        add("s3:object", f"{name}/{obj['Key']}")
    try:
        policies.append({"source": f"bucket {name} policy", "kind": "resource",
                         "document": as_document(s3.get_bucket_policy(Bucket=name)["Policy"])})
    except s3.exceptions.ClientError:
        pass

ssm = client("ssm")
for parameter in pages(ssm, "describe_parameters", "Parameters"):
    add("ssm:parameter", parameter["Name"])

lam = client("lambda")
functions = {}
for function in pages(lam, "list_functions", "Functions"):
    name = function["FunctionName"]
    add("lambda:function", name)
    functions[name] = lam.get_function_configuration(FunctionName=name)
    functions[name].pop("ResponseMetadata", None)
    try:
        policy = as_document(lam.get_policy(FunctionName=name)["Policy"])
        policies.append({"source": f"function {name} resource policy", "kind": "resource", "document": policy})
    except lam.exceptions.ResourceNotFoundException:
        pass
    try:
        url = lam.get_function_url_config(FunctionName=name)
        add("lambda:function-url", name)
        functions[name]["FunctionUrl"] = url["FunctionUrl"]
    except lam.exceptions.ResourceNotFoundException:
        pass
mappings = []
for mapping in pages(lam, "list_event_source_mappings", "EventSourceMappings"):
    add("lambda:event-source-mapping", mapping["UUID"])
    mappings.append(mapping)

logs = client("logs")
for group in pages(logs, "describe_log_groups", "logGroups"):
    add("logs:group", group["logGroupName"])

cloudwatch = client("cloudwatch")
for alarm in pages(cloudwatch, "describe_alarms", "MetricAlarms"):
    add("cloudwatch:alarm", alarm["AlarmName"])
dashboards = {}
for dashboard in pages(cloudwatch, "list_dashboards", "DashboardEntries"):
    name = dashboard["DashboardName"]
    add("cloudwatch:dashboard", name)
    dashboards[name] = json.loads(cloudwatch.get_dashboard(DashboardName=name)["DashboardBody"])

events = client("events")
for bus in events.list_event_buses().get("EventBuses", []):
    if bus["Name"] != "default":
        add("events:bus", bus["Name"])
    for rule in events.list_rules(EventBusName=bus["Name"]).get("Rules", []):
        add("events:rule", f"{bus['Name']}/{rule['Name']}")
        for target in events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus["Name"]).get("Targets", []):
            add("events:target", f"{bus['Name']}/{rule['Name']}/{target['Id']}")

apis = []
apigw = client("apigatewayv2")
for api in apigw.get_apis().get("Items", []):
    add("apigatewayv2:api", api["Name"])
    api_id = api["ApiId"]
    routes = apigw.get_routes(ApiId=api_id).get("Items", [])
    integrations = apigw.get_integrations(ApiId=api_id).get("Items", [])
    stages = apigw.get_stages(ApiId=api_id).get("Items", [])
    apis.append({"api": api, "routes": routes, "integrations": integrations, "stages": stages})

ec2 = client("ec2")
for template in pages(ec2, "describe_launch_templates", "LaunchTemplates"):
    add("ec2:launch-template", template["LaunchTemplateName"])
for group in pages(ec2, "describe_security_groups", "SecurityGroups"):
    if group["GroupName"] != "default":
        add("ec2:security-group", group["GroupId"])
for reservation in pages(ec2, "describe_instances", "Reservations"):
    for instance in reservation["Instances"]:
        if instance["State"]["Name"] not in ("terminated", "shutting-down"):
            add("ec2:instance", instance["InstanceId"])

kms = client("kms")
for key in pages(kms, "list_keys", "Keys"):
    if kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled":
        add("kms:key", key["KeyId"])

scheduler = client("scheduler")
try:
    for schedule in pages(scheduler, "list_schedules", "Schedules"):
        add("scheduler:schedule", schedule["Name"])
except Exception as error:  # the schedules API is newer than some moto versions
    add("scheduler:unavailable", type(error).__name__)

json.dump(
    {
        "resources": {kind: sorted(names) for kind, names in resources.items()},
        "policies": policies,
        "functions": functions,
        "event_source_mappings": mappings,
        "dashboards": dashboards,
        "apis": apis,
    },
    sys.stdout,
    default=str,
)
