// Package copy is pgmove's initial data copy: the snapshot handoff to
// native logical replication.
//
// A logical slot is created with an exported snapshot (replication
// package); N workers import that snapshot on the source and stream COPY
// straight into the target without decoding rows (binary where every
// column's type allows, text otherwise), biggest tables first, big tables
// split into key or CTID ranges. Then the indexes and constraints are built
// in parallel (primary keys as a unique index, then ADD CONSTRAINT ... USING
// INDEX), and the tables analysed. The subscription that takes over from the
// slot is the replication package's job.
//
// It must never leave a table with duplicated or missing rows: each table
// (or range) is loaded in one target transaction, retried whole, and a copy
// whose snapshot is lost is restarted from a new slot, never resumed.
package copy
