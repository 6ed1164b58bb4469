// Package phase logs where a migration's time goes: one structured record
// when each phase ends (check, dump, pre-data, publication, copy, indexes,
// post-data, subscription, catch-up), with its duration in seconds, so a
// DBA reads the split in the log and `make bench` reads it from
// `--log-format json` instead of guessing. It only logs; it must not
// decide anything.
package phase
