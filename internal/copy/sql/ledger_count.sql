-- Rows of {{table}} that pgmove did not load, and all its rows, where the
-- ledger proves none: every row is someone else's.
SELECT pg_catalog.count(*), pg_catalog.count(*) FROM {{table}} t
