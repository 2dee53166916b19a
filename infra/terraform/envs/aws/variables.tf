variable "rendered_dir" {
  description = "Directory `floe render` wrote its JSON files to."
  type        = string
  default     = "rendered"
}

variable "aws_region" {
  description = "AWS region of the warehouse."
  type        = string
}

variable "warehouse_bucket" {
  description = "Name of the S3 bucket for Iceberg data and reports."
  type        = string
}

variable "namespace" {
  description = "Iceberg namespace of the replicated tables (floe.yaml iceberg.namespace)."
  type        = string
}

variable "catalog" {
  description = "Iceberg catalog: \"glue\" or \"s3tables\"."
  type        = string
  default     = "glue"
}

variable "worker_role_names" {
  description = "IAM roles of the machines that run Floe's Prefect workers."
  type        = list(string)
  default     = []
}

variable "postgres_source" {
  description = "Name of the PostgreSQL source in floe.yaml."
  type        = string
}

variable "postgres_host" {
  description = "Host name of the source database (for the PostgreSQL provider)."
  type        = string
}

variable "postgres_port" {
  description = "Port of the source database."
  type        = number
  default     = 5432
}

variable "postgres_admin_user" {
  description = "Role Terraform connects as to create the replication role, grants, publication and slot."
  type        = string
}

variable "postgres_admin_password" {
  description = "Password of postgres_admin_user."
  type        = string
  sensitive   = true
}

variable "replication_password" {
  description = "Password of the replication role the connector logs in as."
  type        = string
  sensitive   = true
}

variable "publication_owner" {
  description = "Role that owns the publication (it must own the published tables)."
  type        = string
}

variable "kafka_bootstrap_servers" {
  description = "Kafka brokers, host:port each."
  type        = list(string)
}

variable "replication_factor" {
  description = "Replication factor of Floe's topics."
  type        = number
  default     = 3
}

variable "kafka_connect_url" {
  description = "REST URL of the Kafka Connect cluster (distributed mode)."
  type        = string
}

variable "connector_secrets" {
  description = "Per connector name, the value of each sensitive key `floe render` lists (database.password, mongodb.connection.string)."
  type        = map(map(string))
  sensitive   = true
}

variable "prefect_api_url" {
  description = "Prefect API URL (a self-hosted server, or Prefect Cloud's)."
  type        = string
}

variable "prefect_api_key" {
  description = "Prefect Cloud API key; null for a self-hosted server without authentication."
  type        = string
  sensitive   = true
}

variable "prefect_account_id" {
  description = "Prefect Cloud account id; null for a self-hosted server."
  type        = string
  default     = null
}

variable "prefect_workspace_id" {
  description = "Prefect Cloud workspace id; null for a self-hosted server."
  type        = string
  default     = null
}

variable "project_dir" {
  description = "Where the workers find the Floe project (flows/ and floe.yaml)."
  type        = string
}

variable "notify_block_document_id" {
  description = "Id of the Prefect notification block for alerts; null: automations fire without notifying."
  type        = string
  default     = null
}
