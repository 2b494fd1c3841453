# The task role: exactly the S3 actions the service's requests need, on
# exactly its bucket and prefix. tests/deploy/terraform.test.mjs derives the
# list from the S3 client (src/storage/s3/s3_operations.cpp) and fails when
# this policy grants one more or one fewer.
#
#   PutObject, CreateMultipartUpload, UploadPart,
#   UploadPartCopy, CompleteMultipartUpload      -> s3:PutObject
#   GetObject, HeadObject, UploadPartCopy source -> s3:GetObject
#   DeleteObject                                 -> s3:DeleteObject
#   AbortMultipartUpload                         -> s3:AbortMultipartUpload
#   ListParts                                    -> s3:ListMultipartUploadParts
#   ListObjectsV2, HeadBucket (readiness)        -> s3:ListBucket
#   ListMultipartUploads                         -> s3:ListBucketMultipartUploads
#
# The bucket-level actions carry no s3:prefix condition: HeadBucket has no
# prefix, and a condition on an absent key denies it.
data "aws_iam_policy_document" "s3_access" {
  statement {
    sid = "Objects"
    actions = [
      "s3:AbortMultipartUpload",
      "s3:DeleteObject",
      "s3:GetObject",
      "s3:ListMultipartUploadParts",
      "s3:PutObject",
    ]
    resources = ["${aws_s3_bucket.objects.arn}/${var.key_prefix}*"]
  }
  statement {
    sid = "Bucket"
    actions = [
      "s3:ListBucket",
      "s3:ListBucketMultipartUploads",
    ]
    resources = [aws_s3_bucket.objects.arn]
  }
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# The service's own identity: credentials reach it through the ECS
# credentials endpoint, which its S3 client reads.
resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "task_s3" {
  name   = "s3-access"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.s3_access.json
}

# ECS's identity for starting the task: pull the image, write the logs,
# read the database password into the container's environment.
resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "read_database_secret" {
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_db_instance.metadata.master_user_secret[0].secret_arn]
  }
}

resource "aws_iam_role_policy" "execution_secret" {
  name   = "read-database-secret"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.read_database_secret.json
}
