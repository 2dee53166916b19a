# Floe's whole path on the local stack (`floe stack up`), applied for real: the warehouse bucket
# through hashicorp/aws against the stack's S3 server, and the rest through Floe's own provider
# (floe/floe, installed by `floe terraform setup`), which creates, reads, updates and deletes the
# publication and slot, the connectors, and Prefect's work pool, deployments, concurrency limits
# and automations, so that `plan` shows what changed behind Terraform's back.
# Run `floe render --out <rendered_dir>` first: everything below reads what it creates from there.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80"
    }
    floe = {
      source  = "floe/floe"
      version = "0.1.0"
    }
  }
}

provider "aws" {
  region                      = "us-east-1"
  access_key                  = var.s3_access_key
  secret_key                  = var.s3_secret_key
  s3_use_path_style           = true
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true
  skip_region_validation      = true
  endpoints {
    s3 = var.s3_endpoint
  }
}

provider "floe" {
  connect_url       = var.connect_url
  prefect_api_url   = var.prefect_api_url
  postgres_host     = var.postgres_host
  postgres_port     = var.postgres_port
  postgres_user     = var.postgres_user
  postgres_password = var.postgres_password
}

locals {
  connectors = jsondecode(file("${var.rendered_dir}/connectors.json"))
  postgres   = jsondecode(file("${var.rendered_dir}/postgres.json"))
  prefect    = jsondecode(file("${var.rendered_dir}/prefect.json"))
}

resource "aws_s3_bucket" "warehouse" {
  bucket        = var.warehouse_bucket
  force_destroy = true
}

resource "floe_publication" "floe" {
  for_each = local.postgres

  name     = each.value.publication
  database = each.value.database
  tables   = [for t in each.value.tables : [t.schema, t.table]]
}

resource "floe_replication_slot" "floe" {
  for_each = local.postgres

  name     = each.value.slot
  database = each.value.database
  plugin   = "pgoutput"
}

resource "floe_connector" "floe" {
  for_each = local.connectors

  name   = each.key
  config = each.value.config
  config_sensitive = {
    for key in each.value.sensitive_keys : key => var.connector_secrets[each.key][key]
  }

  depends_on = [floe_publication.floe, floe_replication_slot.floe]
}

resource "floe_work_pool" "floe" {
  name = local.prefect.work_pool.name
  type = local.prefect.work_pool.type
}

resource "floe_deployment" "floe" {
  for_each = local.prefect.deployments

  name              = each.key
  flow_name         = each.value.flow
  description       = each.value.description
  entrypoint        = each.value.entrypoint
  path              = var.project_dir
  parameters        = jsonencode(each.value.parameters)
  work_pool_name    = floe_work_pool.floe.name
  interval_seconds  = each.value.interval_seconds
  concurrency_limit = each.value.concurrency_limit
  job_variables     = each.value.job_variables == null ? null : jsonencode(each.value.job_variables)
}

resource "floe_global_concurrency_limit" "floe" {
  for_each = local.prefect.concurrency_limits

  name  = each.key
  limit = each.value
}

resource "floe_automation" "floe" {
  for_each = local.prefect.automations

  name                     = each.key
  description              = each.value.description
  trigger                  = jsonencode(each.value.trigger)
  actions                  = jsonencode(each.value.actions)
  notify_block_document_id = var.notify_block_document_id
}
