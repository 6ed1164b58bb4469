// Package state keeps a migration's journal in its context directory: what
// ran, when, with what result, and the few facts only pgmove knows (a slot's
// consistent point). A journal names the servers it describes (each side's
// system identifier and database OID) so that the state of another
// migration is archived, never acted on.
//
// It must not decide anything the servers can answer: every step checks
// them before acting. Opening a journal creates nothing; the directory is
// made by the first write.
package state
