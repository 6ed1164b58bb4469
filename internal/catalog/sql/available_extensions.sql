-- Extensions whose files the server has, installed or not.
SELECT name, COALESCE(default_version, '') FROM pg_catalog.pg_available_extensions ORDER BY name
