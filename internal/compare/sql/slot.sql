-- Whether the migration's slot exists on the source.
SELECT count(*) FROM pg_catalog.pg_replication_slots WHERE slot_name = $1
