variable "rendered_dir" {
  description = "Directory `floe render` wrote connectors.json and topics.json to."
  type        = string
}

variable "replication_factor" {
  description = "Replication factor of Floe's topics (change, signal and notification topics)."
  type        = number
  default     = 3
}

variable "connector_secrets" {
  description = "Per connector name, the value of each of its sensitive_keys (database.password, mongodb.connection.string)."
  type        = map(map(string))
  sensitive   = true
}
