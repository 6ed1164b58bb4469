// Package sandbox builds the seed's example on loopback for users without
// clusters of their own: pg-meta (database meta, pgbench tables) and pg-test
// (database test, empty), the seed's roles with random passwords in a
// .pgpass, a migration.yml pointing at them, and a steady write load.
//
// It manages only servers it started, in its own directory.
package sandbox
