-- The roles this database's objects name (pg_shdepend: owners 'o',
-- privileges 'a', policies 'r'), each with the object and its catalogue.
-- Left out: what pg_dump does not carry into the target (objects of an
-- extension, publications, large objects, which pgmove copies itself).
SELECT r.rolname,
       d.deptype::text,
       d.classid::regclass::text,
       COALESCE(pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), '')
FROM pg_catalog.pg_shdepend d
JOIN pg_catalog.pg_roles r ON r.oid = d.refobjid
WHERE d.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
  AND d.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass
  AND d.deptype IN ('o', 'a', 'r')
  AND d.classid NOT IN ('pg_catalog.pg_publication'::pg_catalog.regclass, 'pg_catalog.pg_largeobject'::pg_catalog.regclass)
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                  WHERE e.classid = d.classid AND e.objid = d.objid AND e.deptype = 'e')
ORDER BY 1, 4
