-- Replication slots of the current database left after a tool's cleanup,
-- with the backend holding each (NULL when inactive).
SELECT slot_name, active_pid
FROM pg_catalog.pg_replication_slots
WHERE database = pg_catalog.current_database()
ORDER BY 1
