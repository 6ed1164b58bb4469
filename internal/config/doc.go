// Package config reads migration.yml (the seed's variable names plus
// pgmove's own) and command-line overrides into one resolved Migration:
// both endpoints, the names of the publication, subscription and slot, the
// table filters and the migration context directory.
//
// It must not connect to anything, and it must never hold a password: a
// connection string or config value carrying one is rejected, because
// passwords come only from libpq's own sources (.pgpass, PGPASSFILE,
// PGPASSWORD, service files).
package config
