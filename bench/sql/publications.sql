-- Publications left in the current database after a tool's cleanup.
SELECT pubname FROM pg_catalog.pg_publication ORDER BY 1
