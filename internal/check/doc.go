// Package check finds everything that blocks or endangers a migration —
// reachability, versions, wal_level, capacity, privileges, the replication
// connection, replica identities, objects replication does not carry, and
// leftovers of earlier runs — each with a severity and the exact statement or
// setting that fixes it.
//
// It only reads, except for the subscription probe, which runs inside a
// transaction it rolls back. It never fixes anything itself.
package check
