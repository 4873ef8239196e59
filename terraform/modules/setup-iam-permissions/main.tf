################################################################################
# A deployment role and permissions boundaries, as upstream's `setup-iam-permissions`: the
# runners are deployed by a role that may create roles only under `role_namespace` and only with
# the boundary `boundary`, which caps what the functions and runners can ever be granted.
################################################################################

data "aws_caller_identity" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  arn        = "arn:${var.aws_partition}"
  roles      = "${local.arn}:iam::${local.account_id}:role/${var.namespaces.role_namespace}/*"
  policies   = "${local.arn}:iam::${local.account_id}:policy/${var.namespaces.policy_namespace}/*"
  profiles   = "${local.arn}:iam::${local.account_id}:instance-profile/${var.namespaces.instance_profile_namespace}/*"
  # What the functions and runners use, and nothing else, whatever their own policies say.
  boundary_services = ["ec2:*", "ssm:*", "ssmmessages:*", "ec2messages:*", "sqs:*", "s3:*", "logs:*", "cloudwatch:*", "events:*", "lambda:*", "xray:*", "resource-groups:*"]
  # What deploying the modules manages.
  deploy_services = ["iam:*", "ec2:*", "ssm:*", "sqs:*", "s3:*", "logs:*", "cloudwatch:*", "events:*", "scheduler:*", "lambda:*", "apigateway:*", "kms:*", "resource-groups:*", "sts:GetCallerIdentity"]
}

resource "aws_iam_policy" "boundary" {
  #checkov:skip=CKV_AWS_286:A permissions boundary caps the deployment's roles; it grants nothing by itself (each role's own policy is narrower).
  #checkov:skip=CKV_AWS_287:A permissions boundary caps the deployment's roles; it grants nothing by itself (each role's own policy is narrower).
  #checkov:skip=CKV_AWS_288:A permissions boundary caps the deployment's roles; it grants nothing by itself (each role's own policy is narrower).
  #checkov:skip=CKV_AWS_289:A permissions boundary caps the deployment's roles; it grants nothing by itself (each role's own policy is narrower).
  #checkov:skip=CKV_AWS_290:A permissions boundary caps the deployment's roles; it grants nothing by itself (each role's own policy is narrower).
  #checkov:skip=CKV_AWS_355:A permissions boundary caps the deployment's roles; it grants nothing by itself (each role's own policy is narrower).
  name        = "${var.prefix}-boundary"
  path        = "/${var.namespaces.boundary_namespace}/"
  description = "The most the runner deployment's roles can be granted."
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Sid = "ServiceBoundaries", Effect = "Allow", Action = local.boundary_services, Resource = "*" },
      { Sid = "RoleInNamespace", Effect = "Allow", Action = ["iam:PassRole"], Resource = local.roles },
      { Sid = "Decrypt", Effect = "Allow", Action = ["kms:Decrypt", "kms:GenerateDataKey"], Resource = "*" },
    ]
  })
}

resource "aws_iam_policy" "deploy_boundary" {
  #checkov:skip=CKV_AWS_286:The deployment role's boundary: it must be able to create the whole deployment; role creation is limited to the namespace and the runner boundary.
  #checkov:skip=CKV_AWS_287:The deployment role's boundary: it must be able to create the whole deployment; role creation is limited to the namespace and the runner boundary.
  #checkov:skip=CKV_AWS_288:The deployment role's boundary: it must be able to create the whole deployment; role creation is limited to the namespace and the runner boundary.
  #checkov:skip=CKV_AWS_289:The deployment role's boundary: it must be able to create the whole deployment; role creation is limited to the namespace and the runner boundary.
  #checkov:skip=CKV_AWS_290:The deployment role's boundary: it must be able to create the whole deployment; role creation is limited to the namespace and the runner boundary.
  #checkov:skip=CKV_AWS_355:The deployment role's boundary: it must be able to create the whole deployment; role creation is limited to the namespace and the runner boundary.
  name        = "${var.prefix}-terraform-boundary"
  path        = "/${var.namespaces.boundary_namespace}/"
  description = "The deployment role may create roles only in its namespace and only under the boundary."
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "CreateOrChangeOnlyWithBoundary"
        Effect    = "Allow"
        Action    = ["iam:CreateRole", "iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy"]
        Resource  = local.roles
        Condition = { StringEquals = { "iam:PermissionsBoundary" = aws_iam_policy.boundary.arn } }
      },
      {
        Sid    = "RoleInNamespace"
        Effect = "Allow"
        Action = ["iam:TagRole", "iam:UntagRole", "iam:GetRole", "iam:GetRolePolicy", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole",
        "iam:DeleteRole", "iam:PassRole", "iam:DetachRolePolicy", "iam:DeleteRolePolicy", "iam:UpdateAssumeRolePolicy"]
        Resource = local.roles
      },
      {
        Sid      = "PolicyInNamespace"
        Effect   = "Allow"
        Action   = ["iam:CreatePolicy", "iam:DeletePolicy", "iam:CreatePolicyVersion", "iam:DeletePolicyVersion", "iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyVersions", "iam:SetDefaultPolicyVersion"]
        Resource = local.policies
      },
      {
        Sid      = "InstanceProfileInNamespace"
        Effect   = "Allow"
        Action   = ["iam:CreateInstanceProfile", "iam:DeleteInstanceProfile", "iam:GetInstanceProfile", "iam:TagInstanceProfile", "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile"]
        Resource = local.profiles
      },
      { Sid = "ServiceLinkedRoles", Effect = "Allow", Action = ["iam:CreateServiceLinkedRole", "iam:GetRole"], Resource = "${local.arn}:iam::${local.account_id}:role/aws-service-role/*" },
      { Sid = "Services", Effect = "Allow", NotAction = ["iam:*", "organizations:*", "account:*"], Resource = "*" },
    ]
  })
}

resource "aws_iam_policy" "deploy" {
  #checkov:skip=CKV_AWS_286:The deployment role manages IAM, Lambda, EC2... of the whole deployment (as upstream's); its boundary limits role creation to the namespace.
  #checkov:skip=CKV_AWS_287:The deployment role manages IAM, Lambda, EC2... of the whole deployment (as upstream's); its boundary limits role creation to the namespace.
  #checkov:skip=CKV_AWS_288:The deployment role manages IAM, Lambda, EC2... of the whole deployment (as upstream's); its boundary limits role creation to the namespace.
  #checkov:skip=CKV_AWS_289:The deployment role manages IAM, Lambda, EC2... of the whole deployment (as upstream's); its boundary limits role creation to the namespace.
  #checkov:skip=CKV_AWS_290:The deployment role manages IAM, Lambda, EC2... of the whole deployment (as upstream's); its boundary limits role creation to the namespace.
  #checkov:skip=CKV_AWS_355:The deployment role manages IAM, Lambda, EC2... of the whole deployment (as upstream's); its boundary limits role creation to the namespace.
  #checkov:skip=CKV2_AWS_40:The deployment role manages IAM, Lambda, EC2... of the whole deployment (as upstream's); its boundary limits role creation to the namespace.
  name        = "${var.prefix}-terraform"
  path        = "/"
  description = "What deploying the runner modules manages (capped by the deployment boundary)."
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Sid = "Services", Effect = "Allow", Action = local.deploy_services, Resource = "*" }]
  })
}

resource "aws_iam_role" "deploy" {
  name                 = "${substr("${var.prefix}-terraform", 0, 54)}-${substr(md5("${var.prefix}-terraform"), 0, 8)}"
  description          = "Deploys the GitHub Actions runners (assumed with MFA by principals of ${var.account_id})."
  permissions_boundary = aws_iam_policy.deploy_boundary.arn
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { AWS = "arn:${var.aws_partition}:iam::${var.account_id}:root" }
      Condition = { Bool = { "aws:MultiFactorAuthPresent" = "true" } }
    }]
  })
}

resource "aws_iam_role_policy_attachment" "deploy" {
  role       = aws_iam_role.deploy.name
  policy_arn = aws_iam_policy.deploy.arn
}
