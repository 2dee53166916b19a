variable "rendered_dir" {
  description = "Directory `floe render` wrote prefect.json to."
  type        = string
}

variable "project_dir" {
  description = "Where the workers find the Floe project (its flows/ and floe.yaml)."
  type        = string
}

variable "notify_block_document_id" {
  description = "Id of the Prefect notification block alerts go to (floe.yaml alerts.notify_block); null: automations fire without notifying."
  type        = string
  default     = null
}
