output "warehouse_location" {
  description = "Iceberg warehouse location for floe.yaml."
  value       = "s3://${aws_s3_bucket.warehouse.bucket}/warehouse"
}

output "replication_slots" {
  description = "PostgreSQL source -> its replication slot."
  value       = { for source, slot in floe_replication_slot.floe : source => slot.name }
}

output "connector_names" {
  description = "Debezium connectors on Kafka Connect."
  value       = [for c in floe_connector.floe : c.name]
}

output "deployment_ids" {
  description = "Prefect deployment name -> id."
  value       = { for name, d in floe_deployment.floe : name => d.id }
}
