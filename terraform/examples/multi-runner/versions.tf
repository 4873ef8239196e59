terraform {
  required_version = ">= 1.7"
  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Examples pin exactly (the reusable modules only set a lower bound).
      version = "5.100.0"
    }
  }
}
