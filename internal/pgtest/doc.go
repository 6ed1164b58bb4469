// Package pgtest starts real PostgreSQL servers for integration tests and
// offers small SQL helpers for their assertions. Every server it starts is
// stopped and removed in t.Cleanup, and a missing server binary fails the
// test: it never skips.
//
// It is for tests only: production code must not import it.
package pgtest
