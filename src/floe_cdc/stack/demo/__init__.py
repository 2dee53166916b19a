"""The demo: a seeded shop database replicated into Iceberg on the local stack."""
