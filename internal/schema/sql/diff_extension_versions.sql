-- Versions of each extension the server could install or update to.
SELECT name, version FROM pg_catalog.pg_available_extension_versions ORDER BY 1, 2
