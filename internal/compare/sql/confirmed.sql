-- What the subscriber confirmed of the migration's slot.
SELECT confirmed_flush_lsn::text FROM pg_catalog.pg_replication_slots WHERE slot_name = $1
