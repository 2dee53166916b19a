# Where Floe's Iceberg tables live: an S3 bucket for data and reports, a catalog (AWS Glue, or
# S3 Tables), and an IAM policy that lets Floe's workers read and write both.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80"
    }
  }
}

resource "aws_s3_bucket" "warehouse" {
  bucket        = var.bucket_name
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket_public_access_block" "warehouse" {
  bucket                  = aws_s3_bucket.warehouse.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "warehouse" {
  bucket = aws_s3_bucket.warehouse.id

  # Uploads of data files interrupted by a crash: Iceberg never references them.
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
  }

  # Freshness charts and other run reports are worth a few weeks.
  rule {
    id     = "expire-reports"
    status = "Enabled"
    filter {
      prefix = "reports/"
    }
    expiration {
      days = var.report_retention_days
    }
  }
}

resource "aws_glue_catalog_database" "floe" {
  count = var.catalog == "glue" ? 1 : 0

  name         = var.namespace
  location_uri = "s3://${aws_s3_bucket.warehouse.bucket}/${var.namespace}"
}

resource "aws_s3tables_table_bucket" "floe" {
  count = var.catalog == "s3tables" ? 1 : 0

  name = "${var.bucket_name}-tables"
}

resource "aws_s3tables_namespace" "floe" {
  count = var.catalog == "s3tables" ? 1 : 0

  namespace        = var.namespace
  table_bucket_arn = aws_s3tables_table_bucket.floe[0].arn
}

data "aws_iam_policy_document" "workers" {
  statement {
    sid       = "WarehouseObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.warehouse.arn}/*"]
  }
  statement {
    sid       = "WarehouseListing"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.warehouse.arn]
  }
  dynamic "statement" {
    for_each = var.catalog == "glue" ? [1] : []
    content {
      sid = "GlueCatalog"
      actions = [
        "glue:GetDatabase", "glue:GetDatabases", "glue:GetTable", "glue:GetTables", "glue:CreateTable",
        "glue:UpdateTable", "glue:DeleteTable",
      ]
      resources = ["*"]
    }
  }
  dynamic "statement" {
    for_each = var.catalog == "s3tables" ? [1] : []
    content {
      sid       = "S3Tables"
      actions   = ["s3tables:*"]
      resources = [aws_s3tables_table_bucket.floe[0].arn, "${aws_s3tables_table_bucket.floe[0].arn}/*"]
    }
  }
}

resource "aws_iam_policy" "workers" {
  name        = "${var.bucket_name}-floe-workers"
  description = "Floe's Prefect workers: the Iceberg warehouse and its catalog."
  policy      = data.aws_iam_policy_document.workers.json
}

resource "aws_iam_role_policy_attachment" "workers" {
  for_each = toset(var.worker_role_names)

  role       = each.value
  policy_arn = aws_iam_policy.workers.arn
}
