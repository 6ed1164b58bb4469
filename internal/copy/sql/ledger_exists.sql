SELECT pg_catalog.to_regclass('pgmove.load') IS NOT NULL AND pg_catalog.to_regclass('pgmove.copy') IS NOT NULL
