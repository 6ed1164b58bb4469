package pgserver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// debian15Bin is where Debian's postgresql-15 package puts the server tools.
const debian15Bin = "/usr/lib/postgresql/15/bin"

// CacheDir is where scripts/install-deps unpacks the server builds of each
// major: ${PGMOVE_PG_CACHE:-/var/tmp/pgmove-pg}.
func CacheDir() string {
	if d := os.Getenv("PGMOVE_PG_CACHE"); d != "" {
		return d
	}
	return "/var/tmp/pgmove-pg"
}

// BinDir returns the directory holding initdb, pg_ctl and postgres for a major version.
// Order: $PGMOVE_PG<major>_BIN if set; for 15 the Debian install /usr/lib/postgresql/15/bin
// if present; then ${PGMOVE_PG_CACHE:-/var/tmp/pgmove-pg}/<major>/bin.
func BinDir(major int) (string, error) {
	env := "PGMOVE_PG" + strconv.Itoa(major) + "_BIN"
	if d := os.Getenv(env); d != "" {
		if err := hasServerTools(d); err != nil {
			return "", fmt.Errorf("postgresql %d binaries from $%s: %w", major, env, err)
		}
		return d, nil
	}
	if major == 15 && hasServerTools(debian15Bin) == nil {
		return debian15Bin, nil
	}
	d := filepath.Join(CacheDir(), strconv.Itoa(major), "bin")
	if err := hasServerTools(d); err != nil {
		return "", fmt.Errorf("postgresql %d binaries not found (%w); run scripts/install-deps %d or set %s", major, err, major, env)
	}
	return d, nil
}

// hasServerTools reports whether dir holds executable initdb, pg_ctl and postgres.
func hasServerTools(dir string) error {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("no %s", p)
			}
			return err
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s is not executable", p)
		}
	}
	return nil
}

// ClientDir returns the bin directory of the newest PostgreSQL client the
// tests may use, pg_dump, pg_restore, pg_dumpall and psql of major 18:
// $PGMOVE_CLIENT18_BIN if set, else ${PGMOVE_PG_CACHE}/client-18/bin, where
// scripts/install-deps puts the wrappers around Debian's development
// release's postgresql-client-18 (this machine's Debian ships only 15).
func ClientDir() (string, error) {
	d := os.Getenv("PGMOVE_CLIENT18_BIN")
	if d == "" {
		d = filepath.Join(CacheDir(), "client-18", "bin")
	}
	for _, name := range []string{"pg_dump", "pg_restore", "pg_dumpall", "psql"} {
		p := filepath.Join(d, name)
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("postgresql 18 client: no executable %s; run scripts/install-deps or set PGMOVE_CLIENT18_BIN", p)
		}
	}
	return d, nil
}
