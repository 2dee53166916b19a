output "warehouse_location" {
  description = "Iceberg warehouse location for floe.yaml."
  value       = module.warehouse.warehouse_location
}

output "reports_location" {
  description = "Value for floe.yaml's iceberg.reports_location."
  value       = module.warehouse.reports_location
}

output "worker_policy_arn" {
  description = "IAM policy Floe's workers need."
  value       = module.warehouse.worker_policy_arn
}

output "replication_slot" {
  description = "Replication slot of the PostgreSQL source."
  value       = module.postgres_cdc.slot
}

output "connector_names" {
  description = "Debezium connectors on Kafka Connect."
  value       = module.connectors.connector_names
}

output "deployment_ids" {
  description = "Prefect deployment name -> id."
  value       = module.prefect.deployment_ids
}
