output "bucket" {
  description = "The distribution bucket: id (name), arn and tags."
  value       = { id = aws_s3_bucket.dist.id, arn = aws_s3_bucket.dist.arn, tags = aws_s3_bucket.dist.tags }
}

output "runner_distribution" {
  description = "Where the runner tarball is, for the runners module: `bucket`, `key`, `bucket_arn`."
  value       = { bucket = aws_s3_bucket.dist.id, key = local.object_key, bucket_arn = aws_s3_bucket.dist.arn }
}

output "location" {
  description = "`s3://<bucket>/<key>` of the runner tarball."
  value       = "s3://${aws_s3_bucket.dist.id}/${local.object_key}"
}

output "lambda" {
  description = "The syncer function, role and log group."
  value       = { function = module.lambda.function, role = module.lambda.role, log_group = module.lambda.log_group }
}
