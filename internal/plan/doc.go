// Package plan writes a migration's context directory, the seed's
// reviewable workflow made safe: small scripts with the seed's names that
// each run one pgmove step (showing its statements and asking first), an
// activate file to enter the context, a copy of migration.yml, a runbook
// filled in with this migration's facts (as markdown, and as one HTML page
// for a change ticket), and plan.json, the snapshot plan --check compares
// the live catalogue with.
//
// It only reads the servers, through check and catalog. It must never write
// a password into the directory, and the scripts must never hold a list of
// tables or sequences: they call pgmove, which reads the live catalogue when
// it runs.
package plan
