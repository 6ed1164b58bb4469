-- Subscriptions left in the current database after a tool's cleanup.
SELECT s.subname
FROM pg_catalog.pg_subscription s
JOIN pg_catalog.pg_database d ON d.oid = s.subdbid
WHERE d.datname = pg_catalog.current_database()
ORDER BY 1
