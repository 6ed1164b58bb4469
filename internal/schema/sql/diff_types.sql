-- User-defined enums, domains, composite types and ranges, outside system
-- schemas and extensions. Enum labels come in their sort order (their
-- enumsortorder values differ after a dump and restore, the order does not).
SELECT n.nspname, t.typname, t.typtype::text,
       COALESCE((SELECT pg_catalog.array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
                   FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid), '{}') AS labels,
       CASE t.typtype WHEN 'd' THEN pg_catalog.format_type(t.typbasetype, t.typtypmod)
                      WHEN 'r' THEN (SELECT pg_catalog.format_type(r.rngsubtype, NULL) FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid)
                      ELSE '' END AS base,
       CASE WHEN t.typcollation <> 0 AND t.typcollation IS DISTINCT FROM
                 (SELECT b.typcollation FROM pg_catalog.pg_type b WHERE b.oid = t.typbasetype)
            THEN (SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname)
                    FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                   WHERE co.oid = t.typcollation)
            ELSE '' END AS collation,
       COALESCE(t.typdefault, '') AS default_expr,
       t.typnotnull,
       COALESCE((SELECT pg_catalog.array_agg(pg_catalog.quote_ident(c.conname) || ' ' || pg_catalog.pg_get_constraintdef(c.oid) ORDER BY c.conname)
                   FROM pg_catalog.pg_constraint c WHERE c.contypid = t.oid AND c.contype = 'c'), '{}') AS checks,
       COALESCE((SELECT pg_catalog.array_agg(pg_catalog.quote_ident(a.attname) || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum)
                   FROM pg_catalog.pg_attribute a
                  WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), '{}') AS attributes,
       COALESCE((SELECT pg_catalog.concat_ws(', ',
                        CASE WHEN r.rngsubopc <> (SELECT oc.oid FROM pg_catalog.pg_opclass oc
                                                   WHERE oc.opcmethod = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'btree')
                                                     AND oc.opcintype = r.rngsubtype AND oc.opcdefault LIMIT 1)
                             THEN 'SUBTYPE_OPCLASS = ' || (SELECT pg_catalog.quote_ident(ocn.nspname) || '.' || pg_catalog.quote_ident(oc.opcname)
                                                             FROM pg_catalog.pg_opclass oc JOIN pg_catalog.pg_namespace ocn ON ocn.oid = oc.opcnamespace
                                                            WHERE oc.oid = r.rngsubopc) END,
                        CASE WHEN r.rngcanonical <> 0 THEN 'CANONICAL = ' || r.rngcanonical::pg_catalog.regproc::text END,
                        CASE WHEN r.rngsubdiff <> 0 THEN 'SUBTYPE_DIFF = ' || r.rngsubdiff::pg_catalog.regproc::text END)
                   FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid), '') AS range_options,
       t.oid::int8
  FROM pg_catalog.pg_type t
  JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
 WHERE (t.typtype IN ('e', 'd', 'r')
        OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid) = 'c'))
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgmove')
   AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND d.objid = t.oid AND d.deptype = 'e')
 ORDER BY 1, 2
