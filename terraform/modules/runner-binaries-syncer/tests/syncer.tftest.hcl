# The runner binaries syncer: a private, encrypted, TLS-only bucket and the function that fills it.

mock_provider "aws" {
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/test/test-syncer" }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn        = "arn:aws:lambda:eu-west-1:123456789012:function:test-syncer"
      invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:test-syncer/invocations"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/test-syncer" }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:eu-west-1:123456789012:rule/test-syncer-rule" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::test-dist-0123456789ab" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
}

variables {
  prefix              = "test"
  runner_os           = "linux"
  runner_architecture = "arm64"
  lambda              = { prefix = "test", environment = "test", zip = "syncer.zip" }
}

run "bucket_and_function" {
  command = apply

  assert {
    condition     = module.lambda.function.runtime == "provided.al2023" && module.lambda.function.handler == "bootstrap" && module.lambda.function.name == "test-syncer"
    error_message = "The syncer is a Rust function named <prefix>-syncer."
  }
  assert {
    condition     = can(regex("^test-dist-[0-9a-f]{12}$", aws_s3_bucket.dist.bucket))
    error_message = "The bucket name is unique per account, region and prefix without the random provider."
  }
  assert {
    condition = (aws_s3_bucket_public_access_block.dist.block_public_acls && aws_s3_bucket_public_access_block.dist.block_public_policy
      && aws_s3_bucket_public_access_block.dist.ignore_public_acls && aws_s3_bucket_public_access_block.dist.restrict_public_buckets
    && one(aws_s3_bucket_ownership_controls.dist.rule).object_ownership == "BucketOwnerEnforced")
    error_message = "The bucket is private."
  }
  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.dist.rule).apply_server_side_encryption_by_default).sse_algorithm == "AES256"
    error_message = "SSE-S3 by default."
  }
  assert {
    condition = (jsondecode(aws_s3_bucket_policy.dist.policy).Statement[0].Effect == "Deny"
      && jsondecode(aws_s3_bucket_policy.dist.policy).Statement[0].Condition.Bool["aws:SecureTransport"] == "false"
    && jsondecode(aws_s3_bucket_policy.dist.policy).Statement[0].Resource == [aws_s3_bucket.dist.arn, "${aws_s3_bucket.dist.arn}/*"])
    error_message = "The bucket refuses plain HTTP."
  }
  assert {
    condition     = [for r in aws_s3_bucket_lifecycle_configuration.dist.rule : r.status] == ["Enabled", "Enabled"] && one(aws_s3_bucket_lifecycle_configuration.dist.rule[0].abort_incomplete_multipart_upload).days_after_initiation == 7
    error_message = "Incomplete uploads are aborted after 7 days."
  }
  assert {
    condition = (module.lambda.function.environment.S3_BUCKET_NAME == aws_s3_bucket.dist.id
      && module.lambda.function.environment.S3_OBJECT_KEY == "actions-runner-linux.tar.gz"
      && module.lambda.function.environment.GITHUB_RUNNER_OS == "linux"
    && module.lambda.function.environment.GITHUB_RUNNER_ARCHITECTURE == "arm64")
    error_message = "The syncer writes the tarball for the runners' OS and architecture to the bucket."
  }
  assert {
    condition     = output.runner_distribution == { bucket = aws_s3_bucket.dist.id, key = module.lambda.function.environment.S3_OBJECT_KEY, bucket_arn = aws_s3_bucket.dist.arn }
    error_message = "The runners get the object the syncer writes."
  }
  assert {
    condition = jsondecode(aws_iam_role_policy.syncer.policy).Statement == [{
      Sid      = "MirrorObject"
      Effect   = "Allow"
      Action   = ["s3:GetObjectTagging", "s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload"]
      Resource = "${aws_s3_bucket.dist.arn}/actions-runner-linux.tar.gz"
    }]
    error_message = "The syncer touches only its one object."
  }
  assert {
    condition     = aws_cloudwatch_event_target.syncer.arn == module.lambda.function.arn && aws_cloudwatch_event_rule.syncer.schedule_expression == "cron(27 * * * ? *)" && aws_cloudwatch_event_rule.syncer.state == "ENABLED"
    error_message = "Hourly at :27 (upstream)."
  }
  assert {
    condition = (one(aws_s3_bucket_notification.trigger.lambda_function).lambda_function_arn == module.lambda.function.arn
      && one(aws_s3_bucket_notification.trigger.lambda_function).filter_prefix == "triggers/"
    && startswith(aws_s3_object.trigger.key, "triggers/"))
    error_message = "The trigger object runs the first sync right after deployment."
  }
}

run "windows_with_kms" {
  command = plan
  variables {
    runner_os = "windows"
    s3_sse_configuration = {
      rule = {
        apply_server_side_encryption_by_default = { sse_algorithm = "aws:kms", kms_master_key_id = "arn:aws:kms:eu-west-1:123456789012:key/abcd" }
      }
    }
  }
  assert {
    condition     = module.lambda.function.environment.S3_OBJECT_KEY == "actions-runner-windows.zip" && module.lambda.function.environment.GITHUB_RUNNER_OS == "win"
    error_message = "Windows runners get GitHub's `win` zip."
  }
  assert {
    condition     = module.lambda.function.environment.S3_SSE_ALGORITHM == "aws:kms" && module.lambda.function.environment.S3_SSE_KMS_KEY_ID == "arn:aws:kms:eu-west-1:123456789012:key/abcd"
    error_message = "The syncer uploads with the bucket's KMS key."
  }
  assert {
    condition     = one([for s in jsondecode(aws_iam_role_policy.syncer.policy).Statement : s.Resource if s.Sid == "Key"]) == ["arn:aws:kms:eu-west-1:123456789012:key/abcd"]
    error_message = "And may use only that key."
  }
}
