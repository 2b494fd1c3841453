output "url" {
  description = "The load balancer's DNS name (point public_url's host at it)."
  value       = aws_lb.this.dns_name
}

output "bucket" {
  description = "The bucket the service stores uploads in."
  value       = aws_s3_bucket.objects.bucket
}

output "database_address" {
  description = "The PostgreSQL endpoint (reachable from the tasks only)."
  value       = aws_db_instance.metadata.address
}

output "database_secret_arn" {
  description = "The Secrets Manager secret that holds the database password (for s3uploader admin commands run as a one-off task)."
  value       = aws_db_instance.metadata.master_user_secret[0].secret_arn
}

output "task_role_arn" {
  description = "The role the service's tasks run as (S3 access)."
  value       = aws_iam_role.task.arn
}

output "s3_policy_json" {
  description = "The task role's S3 policy, as granted."
  value       = data.aws_iam_policy_document.s3_access.json
}
