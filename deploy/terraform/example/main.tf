# An example root: s3uploader in an existing VPC, behind HTTPS.
#
#   terraform init
#   terraform apply -var image=... -var vpc_id=... -var 'public_subnet_ids=[...]' \
#     -var 'private_subnet_ids=[...]' -var certificate_arn=... -var public_url=https://uploads.example.com
#
# Then create the first user with a one-off task (docs/deploy.md).

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "region" {
  type    = string
  default = "eu-west-1"
}
variable "image" { type = string }
variable "vpc_id" { type = string }
variable "public_subnet_ids" { type = list(string) }
variable "private_subnet_ids" { type = list(string) }
variable "certificate_arn" { type = string }
variable "public_url" { type = string }

module "s3uploader" {
  source = "../modules/s3uploader"

  name               = "s3uploader"
  image              = var.image
  vpc_id             = var.vpc_id
  public_subnet_ids  = var.public_subnet_ids
  private_subnet_ids = var.private_subnet_ids
  certificate_arn    = var.certificate_arn
  public_url         = var.public_url

  desired_count = 2
  versioning    = true

  environment = {
    S3UP_MAX_UPLOAD_BYTES = "50GiB"
  }

  tags = {
    service = "s3uploader"
  }
}

output "load_balancer" {
  value = module.s3uploader.url
}

output "bucket" {
  value = module.s3uploader.bucket
}
