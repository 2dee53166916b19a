"""MongoDB change capture: Debezium's MongoDB events, extended JSON, document patches, and the
shaping of BSON documents into Arrow columns (typed or raw)."""
