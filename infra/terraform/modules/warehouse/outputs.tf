output "bucket" {
  description = "Name of the warehouse bucket."
  value       = aws_s3_bucket.warehouse.bucket
}

output "warehouse_location" {
  description = "Iceberg warehouse location for floe.yaml's catalog properties."
  value       = "s3://${aws_s3_bucket.warehouse.bucket}/${var.namespace}"
}

output "reports_location" {
  description = "Value for floe.yaml's iceberg.reports_location."
  value       = "s3://${aws_s3_bucket.warehouse.bucket}/reports"
}

output "table_bucket_arn" {
  description = "ARN of the S3 Tables table bucket (catalog = \"s3tables\"), else null."
  value       = var.catalog == "s3tables" ? aws_s3tables_table_bucket.floe[0].arn : null
}

output "worker_policy_arn" {
  description = "ARN of the IAM policy Floe's workers need."
  value       = aws_iam_policy.workers.arn
}
