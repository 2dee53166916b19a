variable "bucket_name" {
  description = "S3 bucket for the Iceberg data files and Floe's reports (freshness charts)."
  type        = string
}

variable "namespace" {
  description = "Iceberg namespace of the replicated tables (floe.yaml iceberg.namespace)."
  type        = string
}

variable "catalog" {
  description = "Iceberg catalog: \"glue\" (an AWS Glue database) or \"s3tables\" (an S3 Tables table bucket)."
  type        = string
  default     = "glue"
  validation {
    condition     = contains(["glue", "s3tables"], var.catalog)
    error_message = "catalog must be \"glue\" or \"s3tables\"."
  }
}

variable "worker_role_names" {
  description = "IAM roles of the machines that run Floe's Prefect workers; each gets the warehouse policy."
  type        = list(string)
  default     = []
}

variable "report_retention_days" {
  description = "Days Floe's reports under reports/ are kept."
  type        = number
  default     = 30
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete a bucket that still holds objects."
  type        = bool
  default     = false
}
