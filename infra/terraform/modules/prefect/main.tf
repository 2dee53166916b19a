# Floe on a Prefect server or Prefect Cloud workspace: the process work pool, the flows and
# their deployments (replicate per source, reconcile, resnapshot, pause, resume, connectors,
# maintain), the one-writer-per-table concurrency limits and the alert automations, from
# `floe render`'s prefect.json.

terraform {
  required_version = ">= 1.5"
  required_providers {
    prefect = {
      source  = "PrefectHQ/prefect"
      version = "~> 2.20"
    }
  }
}

locals {
  prefect = jsondecode(file("${var.rendered_dir}/prefect.json"))
}

resource "prefect_work_pool" "floe" {
  name = local.prefect.work_pool.name
  type = local.prefect.work_pool.type
}

resource "prefect_flow" "floe" {
  for_each = toset([for d in local.prefect.deployments : d.flow])

  name = each.key
}

resource "prefect_deployment" "floe" {
  for_each = local.prefect.deployments

  name              = each.key
  description       = each.value.description
  flow_id           = prefect_flow.floe[each.value.flow].id
  entrypoint        = each.value.entrypoint
  path              = var.project_dir
  parameters        = jsonencode(each.value.parameters)
  work_pool_name    = prefect_work_pool.floe.name
  job_variables     = each.value.job_variables == null ? null : jsonencode(each.value.job_variables)
  concurrency_limit = each.value.concurrency_limit
  concurrency_options = each.value.concurrency_limit == null ? null : {
    collision_strategy = "CANCEL_NEW"
  }
}

resource "prefect_deployment_schedule" "floe" {
  for_each = { for name, d in local.prefect.deployments : name => d if d.interval_seconds != null }

  deployment_id = prefect_deployment.floe[each.key].id
  active        = true
  interval      = each.value.interval_seconds
}

resource "prefect_global_concurrency_limit" "floe" {
  for_each = local.prefect.concurrency_limits

  name   = each.key
  limit  = each.value
  active = true
}

resource "prefect_automation" "floe" {
  for_each = local.prefect.automations

  name        = each.key
  description = each.value.description
  enabled     = true
  trigger = {
    event = {
      posture       = each.value.trigger.posture
      expect        = each.value.trigger.expect
      for_each      = each.value.trigger.for_each
      match         = jsonencode(each.value.trigger.match)
      match_related = jsonencode(each.value.trigger.match_related)
      threshold     = each.value.trigger.threshold
      within        = each.value.trigger.within
    }
  }
  actions = [
    for action in each.value.actions : {
      type              = var.notify_block_document_id == null ? "do-nothing" : "send-notification"
      block_document_id = var.notify_block_document_id
      subject           = var.notify_block_document_id == null ? null : action.subject
      body              = var.notify_block_document_id == null ? null : action.body
    }
  ]
}
