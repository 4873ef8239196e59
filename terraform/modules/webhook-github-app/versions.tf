terraform {
  # terraform_data: no provider needed (upstream's uses the null provider).
  required_version = ">= 1.7"
}
