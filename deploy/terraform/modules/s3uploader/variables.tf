variable "name" {
  description = "Prefix of every resource's name (and of the bucket's, unless bucket_name is set)."
  type        = string
  default     = "s3uploader"
}

variable "image" {
  description = "The container image to run (built from deploy/container/Containerfile), e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/s3uploader:1.4.0."
  type        = string
}

variable "vpc_id" {
  description = "The VPC the service, its load balancer and its database live in."
  type        = string
}

variable "public_subnet_ids" {
  description = "Subnets of the load balancer (at least two zones)."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "Subnets of the tasks and the database (at least two zones); the tasks reach S3 and ECR through a NAT gateway or VPC endpoints."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate of the load balancer's HTTPS listener."
  type        = string
}

variable "public_url" {
  description = "The URL clients use (https://uploads.example.com): the service builds tus Location headers and links from it."
  type        = string
}

variable "bucket_name" {
  description = "The bucket's name; empty: <name>-objects-<account id>."
  type        = string
  default     = ""
}

variable "key_prefix" {
  description = "Where in the bucket the service keeps its objects; the IAM policy grants this prefix only. Ends with a slash."
  type        = string
  default     = "uploads/"

  validation {
    condition     = can(regex("^([^/].*/)?$", var.key_prefix))
    error_message = "key_prefix is empty or ends with a slash and does not start with one."
  }
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which S3 aborts a multipart upload nobody finished (the janitor normally does it first)."
  type        = number
  default     = 7
}

variable "versioning" {
  description = "Keep earlier versions of objects (a deleted file can then be restored from the bucket)."
  type        = bool
  default     = false
}

variable "cors_origins" {
  description = "Origins of browser pages that upload to the bucket directly (presigned downloads from a page); empty: no CORS rule."
  type        = list(string)
  default     = []
}

variable "db_instance_class" {
  description = "RDS instance class of the PostgreSQL database."
  type        = string
  default     = "db.t4g.small"
}

variable "db_allocated_storage" {
  description = "GiB of storage for the database (it holds one row per upload, not the files)."
  type        = number
  default     = 20
}

variable "db_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery) of the database."
  type        = number
  default     = 14
}

variable "db_deletion_protection" {
  description = "Refuse to delete the database (turn off only to tear down a test stack)."
  type        = bool
  default     = true
}

variable "desired_count" {
  description = "How many tasks run behind the load balancer (instances share nothing but S3 and the database)."
  type        = number
  default     = 2
}

variable "task_cpu" {
  description = "Fargate CPU units per task."
  type        = number
  default     = 1024
}

variable "task_memory" {
  description = "Fargate memory (MiB) per task: buffer_budget plus about 100 MiB."
  type        = number
  default     = 2048
}

variable "buffer_budget" {
  description = "The service's memory budget for bodies in flight (S3UP_BUFFER_BUDGET); keep it well under task_memory."
  type        = string
  default     = "1GiB"
}

variable "environment" {
  description = "More S3UP_* settings for the service (docs/configuration in the README), e.g. { S3UP_MAX_UPLOAD_BYTES = \"50GiB\" }."
  type        = map(string)
  default     = {}
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
