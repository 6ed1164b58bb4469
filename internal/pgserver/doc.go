// Package pgserver finds PostgreSQL server binaries by major version and
// starts and stops throwaway local servers: initdb into a fresh directory,
// wal_level=logical, a loopback port, scram-sha-256 for TCP, trust for the
// unix socket. Integration tests (through pgtest) and the demo sandbox use it.
//
// When the process runs as root the server tools run as the "postgres" OS
// user, because initdb refuses root.
//
// It must not be used against a user's real servers: it only manages
// directories it created, and it never writes a password to disk or to a
// child's argv. Binaries come from scripts/install-deps; it does not
// download anything itself.
package pgserver
