output "publication" {
  description = "Name of the publication of the replicated tables."
  value       = postgresql_publication.floe.name
}

output "slot" {
  description = "Name of the logical replication slot (pgoutput) the connector streams from."
  value       = postgresql_replication_slot.floe.name
}

output "role" {
  description = "Name of the replication role."
  value       = postgresql_role.replication.name
}
