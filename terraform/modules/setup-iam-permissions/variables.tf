variable "prefix" {
  description = "Name prefix of the role and policies."
  type        = string
  default     = "github-actions"
}

variable "namespaces" {
  description = "IAM paths (without slashes): `boundary_namespace` (the boundary policies), `role_namespace` (the roles the deployment may create, its `role_path`), `policy_namespace`, `instance_profile_namespace` (its `instance_profile_path`)."
  type = object({
    boundary_namespace         = string
    role_namespace             = string
    policy_namespace           = string
    instance_profile_namespace = string
  })
}

variable "account_id" {
  description = "The account whose principals (with MFA) may assume the deployment role."
  type        = string
}

variable "aws_partition" {
  description = "The AWS partition of the ARNs."
  type        = string
  default     = "aws"
}
