output "role" {
  description = "ARN of the role to deploy the runners with (assume it in the deploying provider)."
  value       = aws_iam_role.deploy.arn
}

output "boundary" {
  description = "ARN of the permissions boundary to give the deployment's roles (`role_permissions_boundary`)."
  value       = aws_iam_policy.boundary.arn
}
