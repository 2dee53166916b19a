# Floe's topics and Debezium connectors, exactly as `floe render` writes them: the rendered JSON
# is the single source of truth, shared with `floe connectors apply`.

terraform {
  required_version = ">= 1.5"
  required_providers {
    kafka = {
      source  = "Mongey/kafka"
      version = "~> 0.8"
    }
    kafka-connect = {
      source  = "Mongey/kafka-connect"
      version = "~> 0.4"
    }
  }
}

locals {
  connectors = jsondecode(file("${var.rendered_dir}/connectors.json"))
  topics     = jsondecode(file("${var.rendered_dir}/topics.json"))
}

resource "kafka_topic" "floe" {
  for_each = local.topics

  name               = each.key
  partitions         = each.value.partitions
  replication_factor = var.replication_factor
  config             = each.value.config
}

resource "kafka-connect_connector" "floe" {
  for_each = local.connectors

  name   = each.key
  config = each.value.config
  # Passwords and connection strings stay out of the rendered files and the plan output.
  config_sensitive = {
    for key in each.value.sensitive_keys : key => var.connector_secrets[each.key][key]
  }

  depends_on = [kafka_topic.floe]
}
