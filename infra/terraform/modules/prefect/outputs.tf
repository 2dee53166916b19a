output "work_pool" {
  description = "Name of the work pool Floe's workers serve."
  value       = prefect_work_pool.floe.name
}

output "deployment_ids" {
  description = "Deployment name -> id."
  value       = { for name, d in prefect_deployment.floe : name => d.id }
}

output "automation_ids" {
  description = "Automation name -> id."
  value       = { for name, a in prefect_automation.floe : name => a.id }
}
