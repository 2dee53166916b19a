# Floe's whole path on AWS: the warehouse (S3 and a Glue or S3 Tables catalog), the PostgreSQL
# source's replication prerequisites, the Kafka topics and Debezium connectors, and Prefect.
# Run `floe render --out rendered` first: every module reads what it creates from there.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80"
    }
    postgresql = {
      source  = "cyrilgdn/postgresql"
      version = "~> 1.25"
    }
    kafka = {
      source  = "Mongey/kafka"
      version = "~> 0.8"
    }
    kafka-connect = {
      source  = "Mongey/kafka-connect"
      version = "~> 0.4"
    }
    prefect = {
      source  = "PrefectHQ/prefect"
      version = "~> 2.20"
    }
  }
}

provider "aws" {
  region = var.aws_region
}

provider "postgresql" {
  host      = var.postgres_host
  port      = var.postgres_port
  username  = var.postgres_admin_user
  password  = var.postgres_admin_password
  sslmode   = "require"
  superuser = false
}

provider "kafka" {
  bootstrap_servers = var.kafka_bootstrap_servers
  tls_enabled       = true
}

provider "kafka-connect" {
  url = var.kafka_connect_url
}

provider "prefect" {
  endpoint     = var.prefect_api_url
  api_key      = var.prefect_api_key
  account_id   = var.prefect_account_id
  workspace_id = var.prefect_workspace_id
}

module "warehouse" {
  source = "../../modules/warehouse"

  bucket_name       = var.warehouse_bucket
  namespace         = var.namespace
  catalog           = var.catalog
  worker_role_names = var.worker_role_names
}

module "postgres_cdc" {
  source = "../../modules/postgres_cdc"

  rendered_dir         = var.rendered_dir
  source_name          = var.postgres_source
  replication_password = var.replication_password
  publication_owner    = var.publication_owner
}

module "connectors" {
  source = "../../modules/connectors"

  rendered_dir       = var.rendered_dir
  replication_factor = var.replication_factor
  connector_secrets  = var.connector_secrets

  depends_on = [module.postgres_cdc]
}

module "prefect" {
  source = "../../modules/prefect"

  rendered_dir             = var.rendered_dir
  project_dir              = var.project_dir
  notify_block_document_id = var.notify_block_document_id
}
