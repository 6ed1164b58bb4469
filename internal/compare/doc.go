// Package compare verifies a migration: row counts, and with checksums every
// row's content by key range on one snapshot per side, the differing rows
// located by key (missing, extra, changed), settled across fence LSNs while
// replication runs, and the SQL that repairs them. Sequences are compared
// through package sequence. How far a comparison has come is kept in a
// Progress the caller reads and shows; this package draws nothing.
//
// It only reads both sides, except ApplyRepair, which the user asks for
// (--apply), and the fence, a logical message on the source that flushes
// its WAL. One query per .sql file under sql/ where the query is fixed;
// range and row queries are built with quoted identifiers and parameters.
package compare
