variable "rendered_dir" {
  description = "Directory `floe render` wrote postgres.json to."
  type        = string
}

variable "source_name" {
  description = "Name of the PostgreSQL source in floe.yaml (a key of postgres.json)."
  type        = string
}

variable "replication_password" {
  description = "Password of the replication role the connector logs in as (floe.yaml's password for the source)."
  type        = string
  sensitive   = true
}

variable "publication_owner" {
  description = "Role that owns the publication; it must own the published tables (often the application's schema owner)."
  type        = string
}
