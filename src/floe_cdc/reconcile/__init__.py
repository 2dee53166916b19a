"""Reconciliation of source and Iceberg tables with Soda Core (SodaCL) checks."""
