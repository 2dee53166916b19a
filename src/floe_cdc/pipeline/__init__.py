"""The pipeline: the only layer that joins the stages (``capture``, ``lake``, ``reconcile``).

A replication cycle consumes, decodes, merges and commits; replay and re-snapshot reuse its
steps. Flows and the command line stand on top of it.
"""
