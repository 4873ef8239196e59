"""Runs moto in server mode on a free loopback port for the tests.

Prints the port on the first line of stdout, then serves until stdin closes: the test process
holds the other end of the pipe, so moto stops when the tests end, however they end.

MOTO GAPS. moto (5.2.5) differs from AWS in a few places that the Terraform modules meet when
they are applied against it (`make tf-apply-test`). Each gap is worked around HERE, in the
harness, never in the modules (decisions.md #29), and this is the one list of them:

1. S3 bucket policies are evaluated without their conditions: the modules' TLS-only statement
   (`Deny` when `aws:SecureTransport` is `false`) denies every PutObject/GetObject, even the
   deploy-time trigger object. AWS is only ever reached over TLS, so that statement never
   matches a real request: `patch_s3_secure_transport` evaluates bucket policies without the
   statements conditioned on `aws:SecureTransport = false`.
2. An SQS queue's `Policy` is dropped by every `SetQueueAttributes` that does not carry one (the
   provider sets the redrive policy and other attributes after the queue policy), so the second
   plan would re-add it for ever: `patch_sqs_policy_kept` keeps it. Its `RedrivePolicy` comes back
   as JSON with spaces (`json.dumps` defaults) where SQS answers compact JSON, which the provider
   (5.100) reports as a change on every plan: the same patch answers it compact.
3. Lambda's `LoggingConfig` is not stored (the function reads back as Text format with no log
   group), so every plan would change it: `patch_lambda_logging_config` stores and returns it.
4. The event source mapping's `MaximumBatchingWindowInSeconds` is not stored: patched likewise.
5. A log group's class (`logGroupClass`) is not stored: patched likewise.
6. A launch template's own tags (CreateLaunchTemplate's `TagSpecifications` for the resource type
   `launch-template`) are copied into its launch data as a tag specification, so the next plan
   wants to remove it: `patch_launch_template_own_tags` keeps them out of the data.
7. AWS managed policies exist only with `MOTO_IAM_LOAD_MANAGED_POLICIES=true`; the harness sets
   it for the apply test (a user may list managed policy ARNs in
   `runner_iam_role_managed_policy_arns`). Unit tests do not need it (it slows moto's start).

8. `CreateFleet` ignores its `ClientToken`: a retried call with the same token launches a
   second fleet where EC2 answers the first one again (EC2's idempotency). Scale-up's retries
   rely on it, so `patch_create_fleet_idempotent` answers a repeated token with the fleet it
   created first.

9. `PutEvents` fails (500, NotImplementedError) when a rule that matches the event has a Lambda
   target: moto cannot invoke functions without Docker and raises instead of skipping them. The
   EventBridge mode's rule targets the dispatcher, so every published job would fail:
   `patch_events_skip_lambda_targets` skips Lambda targets (the other targets still receive the
   event); the drive-through adds an SQS target to capture the event and invokes the
   dispatcher itself.

A patch that no longer finds what it patches (another moto version) fails loudly at start.
"""
import json
import os
import sys

from moto.server import ThreadedMotoServer


def patch_s3_secure_transport():
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    def only_insecure_transport(statement):
        condition = statement.get("Condition") or {}
        bool_condition = condition.get("Bool") or {}
        value = bool_condition.get("aws:SecureTransport")
        return len(condition) == 1 and len(bool_condition) == 1 and str(value).lower() == "false"

    def get_permission(self, action, resource):
        if self.policy is None:
            return PermissionResult.NEUTRAL
        document = json.loads(self.policy.decode())
        statements = document.get("Statement", [])
        if isinstance(statements, dict):
            statements = [statements]
        kept = [s for s in statements if not only_insecure_transport(s)]
        if not kept:
            return PermissionResult.NEUTRAL
        return IAMPolicy(json.dumps({**document, "Statement": kept})).is_action_permitted(action, resource)

    assert hasattr(FakeBucket, "get_permission"), "moto changed: FakeBucket.get_permission is gone"
    FakeBucket.get_permission = get_permission


def patch_sqs_policy_kept():
    from moto.sqs.models import Queue

    original = Queue._set_attributes

    def _set_attributes(self, attributes, now=None):
        policy = getattr(self, "policy", None)
        original(self, attributes, now)
        if "Policy" not in attributes:
            self.policy = policy

    Queue._set_attributes = _set_attributes

    original_attributes = Queue.attributes.fget

    def attributes(self):
        result = original_attributes(self)
        if self.redrive_policy:
            result["RedrivePolicy"] = json.dumps(self.redrive_policy, separators=(",", ":"))
        return result

    Queue.attributes = property(attributes)


def patch_lambda_logging_config():
    from moto.awslambda import models

    original_init = models.LambdaFunction.__init__
    original_update = models.LambdaFunction.update_configuration
    original_config = models.LambdaFunction.get_configuration

    def __init__(self, account_id, spec, region, version=1):
        original_init(self, account_id, spec, region, version)
        self._ghr_logging_config = spec.get("LoggingConfig")

    def update_configuration(self, config_updates):
        result = original_update(self, config_updates)
        if config_updates.get("LoggingConfig") is not None:
            self._ghr_logging_config = config_updates["LoggingConfig"]
        return result

    def get_configuration(self, *args, **kwargs):
        config = original_config(self, *args, **kwargs)
        logging_config = getattr(self, "_ghr_logging_config", None)
        if logging_config:
            config["LoggingConfig"] = logging_config
        return config

    models.LambdaFunction.__init__ = __init__
    models.LambdaFunction.update_configuration = update_configuration
    models.LambdaFunction.get_configuration = get_configuration


def patch_event_source_batching_window():
    from moto.awslambda import models

    original_init = models.EventSourceMapping.__init__
    original_json = models.EventSourceMapping.get_configuration
    original_update = models.LambdaBackend.update_event_source_mapping

    def __init__(self, spec):
        original_init(self, spec)
        self._ghr_batching_window = spec.get("MaximumBatchingWindowInSeconds")

    def get_configuration(self):
        config = original_json(self)
        if getattr(self, "_ghr_batching_window", None) is not None:
            config["MaximumBatchingWindowInSeconds"] = self._ghr_batching_window
        return config

    def update_event_source_mapping(self, uuid, spec):
        result = original_update(self, uuid, spec)
        if result is not None and spec.get("MaximumBatchingWindowInSeconds") is not None:
            result._ghr_batching_window = spec["MaximumBatchingWindowInSeconds"]
        return result

    models.EventSourceMapping.__init__ = __init__
    models.EventSourceMapping.get_configuration = get_configuration
    models.LambdaBackend.update_event_source_mapping = update_event_source_mapping


def patch_log_group_class():
    from moto.logs import models, responses

    original_create = responses.LogsResponse.create_log_group
    original_describe = models.LogGroup.to_describe_dict

    def create_log_group(self):
        result = original_create(self)
        group_class = self._get_param("logGroupClass")
        if group_class:
            self.logs_backend.groups[self._get_param("logGroupName")]._ghr_class = group_class
        return result

    def to_describe_dict(self, *args, **kwargs):
        described = original_describe(self, *args, **kwargs)
        # AWS always answers with the class; STANDARD unless another was asked for.
        described["logGroupClass"] = getattr(self, "_ghr_class", None) or "STANDARD"
        return described

    responses.LogsResponse.create_log_group = create_log_group
    models.LogGroup.to_describe_dict = to_describe_dict


def patch_launch_template_own_tags():
    from moto.ec2.models import launch_templates

    original_init = launch_templates.LaunchTemplateVersion.__init__

    def __init__(self, template, number, data, description):
        specs = data.get("TagSpecifications")
        if specs:
            data = {**data, "TagSpecifications": [s for s in specs if s.get("ResourceType") != "launch-template"]}
        original_init(self, template, number, data, description)

    launch_templates.LaunchTemplateVersion.__init__ = __init__


def patch_create_fleet_idempotent():
    from moto.core.responses import ActionResult
    from moto.ec2.responses import fleets

    original = fleets.Fleets.create_fleet

    def create_fleet(self):
        token = self._get_param("ClientToken")
        known = self.ec2_backend.__dict__.setdefault("_ghr_fleet_tokens", {})
        fleet = self.ec2_backend.fleets.get(known.get(token)) if token else None
        if fleet is not None:
            result = {"FleetId": fleet.id}
            if fleet.instances is not None:
                result["Instances"] = fleet.instances
            return ActionResult(result)
        answer = original(self)
        if token:
            known[token] = answer.result["FleetId"]
        return answer

    fleets.Fleets.create_fleet = create_fleet


def patch_events_skip_lambda_targets():
    from moto.events import models

    original = models.Rule.send_to_targets

    def send_to_targets(self, original_event, transform_input=True):
        targets = self.targets
        self.targets = [t for t in targets if ":lambda:" not in t["Arn"]]
        try:
            return original(self, original_event, transform_input)
        finally:
            self.targets = targets

    models.Rule.send_to_targets = send_to_targets


for patch in (
    patch_s3_secure_transport,
    patch_sqs_policy_kept,
    patch_lambda_logging_config,
    patch_event_source_batching_window,
    patch_log_group_class,
    patch_launch_template_own_tags,
    patch_create_fleet_idempotent,
    patch_events_skip_lambda_targets,
):
    patch()

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(port, flush=True)
try:
    sys.stdin.read()
finally:
    os._exit(0)
