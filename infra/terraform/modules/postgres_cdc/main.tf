# What a PostgreSQL source needs before its Debezium connector starts: a login role with the
# REPLICATION attribute, SELECT on the replicated tables, the publication of exactly those
# tables, and the replication slot, all from `floe render`'s postgres.json.

terraform {
  required_version = ">= 1.5"
  required_providers {
    postgresql = {
      source  = "cyrilgdn/postgresql"
      version = "~> 1.25"
    }
  }
}

locals {
  source = jsondecode(file("${var.rendered_dir}/postgres.json"))[var.source_name]
  # schema -> the tables of that schema the source replicates
  schemas = {
    for schema in distinct([for t in local.source.tables : t.schema]) :
    schema => [for t in local.source.tables : t.table if t.schema == schema]
  }
}

resource "postgresql_role" "replication" {
  name        = local.source.user
  login       = true
  replication = true
  password    = var.replication_password
}

resource "postgresql_grant" "select" {
  for_each = local.schemas

  database    = local.source.database
  role        = postgresql_role.replication.name
  schema      = each.key
  object_type = "table"
  objects     = each.value
  privileges  = ["SELECT"]
}

resource "postgresql_publication" "floe" {
  name     = local.source.publication
  database = local.source.database
  owner    = var.publication_owner
  tables   = [for t in local.source.tables : "${t.schema}.${t.table}"]
}

resource "postgresql_replication_slot" "floe" {
  name     = local.source.slot
  database = local.source.database
  plugin   = "pgoutput"
}
