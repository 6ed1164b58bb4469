-- The copy ledger: pgmove's own record, on the target, of the rows it
-- loaded. One row per copy in pgmove.copy, one per load transaction in
-- pgmove.load, written in that transaction. Nothing else may use it.
CREATE SCHEMA IF NOT EXISTS pgmove;
COMMENT ON SCHEMA pgmove IS 'pgmove''s copy ledger: which tables pgmove loaded here, by which transactions; pgmove cleanup drops it';
CREATE TABLE IF NOT EXISTS pgmove.copy (
    copy_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    migration text NOT NULL,
    slot      text NOT NULL,
    src_sysid bigint NOT NULL,
    src_dboid oid NOT NULL,
    dst_sysid bigint NOT NULL,
    dst_dboid oid NOT NULL,
    started   timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE TABLE IF NOT EXISTS pgmove.load (
    copy_id bigint NOT NULL,
    relid   oid NOT NULL,
    relname text NOT NULL,
    xid     bigint NOT NULL,
    rows    bigint NOT NULL,
    loaded  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX IF NOT EXISTS load_relid ON pgmove.load (relid);
