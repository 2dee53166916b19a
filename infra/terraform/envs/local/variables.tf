variable "rendered_dir" {
  description = "Directory `floe render` wrote its JSON files to."
  type        = string
  default     = "rendered"
}

variable "project_dir" {
  description = "Floe project folder the Prefect workers run the flows from."
  type        = string
}

variable "warehouse_bucket" {
  description = "Name of the S3 bucket for Iceberg data and reports."
  type        = string
}

variable "s3_endpoint" {
  description = "URL of the local stack's S3 server, e.g. http://127.0.0.1:8333."
  type        = string
}

variable "s3_access_key" {
  description = "Access key of the S3 server."
  type        = string
  sensitive   = true
}

variable "s3_secret_key" {
  description = "Secret key of the S3 server."
  type        = string
  sensitive   = true
}

variable "postgres_host" {
  description = "Host of the PostgreSQL server of every PostgreSQL source."
  type        = string
  default     = "127.0.0.1"
}

variable "postgres_port" {
  description = "Port of that PostgreSQL server."
  type        = number
}

variable "postgres_user" {
  description = "Role that creates the publications and replication slots."
  type        = string
}

variable "postgres_password" {
  description = "Password of postgres_user."
  type        = string
  sensitive   = true
}

variable "connect_url" {
  description = "Kafka Connect REST URL."
  type        = string
}

variable "connector_secrets" {
  description = "Connector name -> secret property (each name in connectors.json's sensitive_keys) -> value."
  type        = map(map(string))
  sensitive   = true
}

variable "prefect_api_url" {
  description = "Prefect API URL, e.g. http://127.0.0.1:4200/api."
  type        = string
}

variable "notify_block_document_id" {
  description = "Id of the Prefect block the alert automations notify through; null: the Prefect UI only."
  type        = string
  default     = null
}
