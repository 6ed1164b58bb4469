-- Publications of the current database.
SELECT p.pubname::text, p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate
  FROM pg_catalog.pg_publication p
 ORDER BY p.pubname
