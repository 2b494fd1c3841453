# The service: N Fargate tasks behind an application load balancer that
# terminates TLS, each task checked by GET /readyz.

resource "aws_cloudwatch_log_group" "service" {
  name              = "/ecs/${var.name}"
  retention_in_days = 30
  tags              = var.tags
}

resource "aws_ecs_cluster" "this" {
  name = var.name
  tags = var.tags
}

locals {
  container_port = 8080
  # Settings through the environment only; the password arrives as
  # PGPASSWORD (libpq reads it), never in the URL.
  environment = merge({
    S3UP_LISTEN         = "0.0.0.0:${local.container_port}"
    S3UP_STORAGE        = "s3://${aws_s3_bucket.objects.bucket}/${var.key_prefix}"
    AWS_REGION          = data.aws_region.current.name
    S3UP_DATABASE       = "host=${aws_db_instance.metadata.address} port=${aws_db_instance.metadata.port} dbname=${aws_db_instance.metadata.db_name} user=${aws_db_instance.metadata.username} sslmode=require"
    S3UP_PUBLIC_URL     = var.public_url
    S3UP_BUFFER_BUDGET  = var.buffer_budget
    S3UP_LOG_FORMAT     = "json"
    S3UP_SHUTDOWN_DRAIN = "10s"
    S3UP_SHUTDOWN_GRACE = "60s"
  }, var.environment)
}

resource "aws_ecs_task_definition" "service" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  task_role_arn            = aws_iam_role.task.arn
  execution_role_arn       = aws_iam_role.execution.arn
  tags                     = var.tags

  container_definitions = jsonencode([
    {
      name      = "s3uploader"
      image     = var.image
      essential = true
      portMappings = [{
        containerPort = local.container_port
        protocol      = "tcp"
      }]
      environment = [for k, v in local.environment : { name = k, value = v }]
      secrets = [{
        name      = "PGPASSWORD"
        valueFrom = "${aws_db_instance.metadata.master_user_secret[0].secret_arn}:password::"
      }]
      healthCheck = {
        command     = ["CMD", "s3uploader", "check"] # GET /readyz on S3UP_LISTEN's port
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 30
      }
      stopTimeout = 90
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.service.name
          awslogs-region        = data.aws_region.current.name
          awslogs-stream-prefix = "s3uploader"
        }
      }
    }
  ])
}

resource "aws_security_group" "load_balancer" {
  name        = "${var.name}-alb"
  description = "HTTPS from anywhere to the s3uploader load balancer"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "https" {
  security_group_id = aws_security_group.load_balancer.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "load_balancer_to_service" {
  security_group_id            = aws_security_group.load_balancer.id
  referenced_security_group_id = aws_security_group.service.id
  ip_protocol                  = "tcp"
  from_port                    = local.container_port
  to_port                      = local.container_port
}

resource "aws_security_group" "service" {
  name        = "${var.name}-service"
  description = "s3uploader tasks: from the load balancer; out to S3 and the database"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "service_from_load_balancer" {
  security_group_id            = aws_security_group.service.id
  referenced_security_group_id = aws_security_group.load_balancer.id
  ip_protocol                  = "tcp"
  from_port                    = local.container_port
  to_port                      = local.container_port
}

resource "aws_vpc_security_group_egress_rule" "service_https" {
  security_group_id = aws_security_group.service.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  description       = "S3, ECR, Secrets Manager, CloudWatch Logs, webhooks"
}

resource "aws_vpc_security_group_egress_rule" "service_database" {
  security_group_id            = aws_security_group.service.id
  referenced_security_group_id = aws_security_group.database.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_lb" "this" {
  name               = var.name
  load_balancer_type = "application"
  internal           = false
  subnets            = var.public_subnet_ids
  security_groups    = [aws_security_group.load_balancer.id]
  # Large uploads keep a request open for long; an idle connection still ends.
  idle_timeout = 300
  tags         = var.tags
}

resource "aws_lb_target_group" "service" {
  name                 = var.name
  port                 = local.container_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 60
  tags                 = var.tags

  health_check {
    path                = "/readyz"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.service.arn
  }
}

resource "aws_ecs_service" "service" {
  name            = var.name
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.service.arn
  desired_count   = var.desired_count
  launch_type     = "FARGATE"
  # Rolling: new tasks start (migrations run on start) before old ones drain.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = 30
  tags                               = var.tags

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.service.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.service.arn
    container_name   = "s3uploader"
    container_port   = local.container_port
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  depends_on = [aws_lb_listener.https]
}
