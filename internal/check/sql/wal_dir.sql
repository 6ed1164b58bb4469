-- The size of the source's pg_wal now (pg_ls_waldir: superuser or
-- pg_monitor), and the settings that bound what slots keep there.
SELECT (SELECT COALESCE(pg_catalog.sum(size), 0)::int8 FROM pg_catalog.pg_ls_waldir()),
       pg_catalog.pg_size_bytes(pg_catalog.current_setting('max_slot_wal_keep_size'))::int8,
       pg_catalog.pg_size_bytes(pg_catalog.current_setting('max_wal_size'))::int8
