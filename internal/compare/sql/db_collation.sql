-- Whether the database's default collation orders text by bytes (libc C or
-- POSIX), before PostgreSQL 15 (no datlocprovider).
SELECT datcollate IN ('C', 'POSIX')
FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()
