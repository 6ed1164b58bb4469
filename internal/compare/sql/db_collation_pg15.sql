-- Whether the database's default collation orders text by bytes: libc C or
-- POSIX (PostgreSQL 15 and later name the provider; ICU never does).
SELECT datlocprovider = 'c' AND datcollate IN ('C', 'POSIX')
FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()
