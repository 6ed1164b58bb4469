-- A content checksum of pgbench_accounts, the same on any major.
SELECT coalesce(sum(pg_catalog.hashtext(t::text)::bigint), 0)::bigint
FROM public.pgbench_accounts t
