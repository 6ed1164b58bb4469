-- Autovacuum workers at work on the server, which a tool's run would share
-- the CPU with.
SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'autovacuum worker'
