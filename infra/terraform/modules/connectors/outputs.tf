output "connector_names" {
  description = "Names of the Debezium connectors on Kafka Connect."
  value       = sort(keys(kafka-connect_connector.floe))
}

output "topic_names" {
  description = "Names of the topics Floe reads and signals through."
  value       = sort(keys(kafka_topic.floe))
}
