# The metadata database: PostgreSQL 15 in private subnets, encrypted,
# reachable only from the service's tasks, TLS forced, backed up, and its
# password kept by Secrets Manager (RDS creates and rotates it).

resource "aws_db_subnet_group" "metadata" {
  name       = "${var.name}-metadata"
  subnet_ids = var.private_subnet_ids
  tags       = var.tags
}

resource "aws_security_group" "database" {
  name        = "${var.name}-database"
  description = "PostgreSQL, from the s3uploader tasks only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "database_from_service" {
  security_group_id            = aws_security_group.database.id
  referenced_security_group_id = aws_security_group.service.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  description                  = "PostgreSQL from the service"
}

resource "aws_db_parameter_group" "metadata" {
  name   = "${var.name}-postgres15"
  family = "postgres15"
  tags   = var.tags

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
}

resource "aws_db_instance" "metadata" {
  identifier     = "${var.name}-metadata"
  engine         = "postgres"
  engine_version = "15"
  instance_class = var.db_instance_class
  db_name        = "s3uploader"
  username       = "s3uploader"

  manage_master_user_password = true

  allocated_storage     = var.db_allocated_storage
  max_allocated_storage = var.db_allocated_storage * 5
  storage_type          = "gp3"
  storage_encrypted     = true

  db_subnet_group_name   = aws_db_subnet_group.metadata.name
  vpc_security_group_ids = [aws_security_group.database.id]
  parameter_group_name   = aws_db_parameter_group.metadata.name
  publicly_accessible    = false
  multi_az               = true

  backup_retention_period   = var.db_backup_retention_days
  backup_window             = "03:00-04:00"
  copy_tags_to_snapshot     = true
  deletion_protection       = var.db_deletion_protection
  skip_final_snapshot       = false
  final_snapshot_identifier = "${var.name}-metadata-final"

  auto_minor_version_upgrade = true
  tags                       = var.tags
}
