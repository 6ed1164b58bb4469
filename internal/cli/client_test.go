package cli

import (
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/pgtest"
)

// TestClientChoice: check says which pg_dump and pg_restore the schema
// step will use, and a source newer than every client found is a one-line
// error naming the package to install, before anything is created.
func TestClientChoice(t *testing.T) {
	p := newPair(t, 18, 18) // newPair points PGMOVE_PG_BINDIR at the 18 client
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE orders (id bigserial PRIMARY KEY, item text NOT NULL);
		INSERT INTO orders (item) VALUES ('one'); GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
	r := p.run("check")
	if !strings.Contains(r.stdout, "dumped with pg_dump 18 (") || !strings.Contains(r.stdout, "restored with pg_restore 18 (") {
		t.Fatalf("check does not name the client it will use: %s", r)
	}

	// Only the machine's own client (15) is left.
	t.Setenv("PGMOVE_PG_BINDIR", "")
	r = p.run("check")
	if r.code != ExitProblems || !strings.Contains(r.stdout, "cannot handle a PostgreSQL 18 server; install postgresql-client-18") {
		t.Fatalf("check with a client older than the source: %s", r)
	}
	r = p.run("migrate")
	if r.code == 0 || !strings.Contains(r.stderr, "postgresql-client-18") {
		t.Fatalf("migrate's error does not name what to install: %s", r)
	}
	if left := p.objectsLeft(); len(left) > 0 {
		t.Errorf("a refused migrate left %v", left)
	}
	if n := p.targetTables(); n != 0 {
		t.Errorf("a refused migrate created %d table(s) on the target", n)
	}
}
