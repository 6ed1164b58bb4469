package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/pgtest"
)

// phaseSource gives the source two small tables with keys.
func phaseSource(t *testing.T, p *pair) {
	t.Helper()
	pgtest.Exec(t, p.src, "meta", `
		CREATE TABLE t1 (id int PRIMARY KEY, v text NOT NULL);
		INSERT INTO t1 SELECT g, 'v' || g FROM generate_series(1, 200) g;
		CREATE TABLE t2 (id bigint PRIMARY KEY, u int UNIQUE, n numeric);
		CREATE INDEX t2_n ON t2 (n);
		INSERT INTO t2 SELECT g, g, g * 1.5 FROM generate_series(1, 300) g;
		CREATE TABLE t3 (id int NOT NULL UNIQUE, t1 int REFERENCES t1, CHECK (id > 0));
		ALTER TABLE t3 REPLICA IDENTITY USING INDEX t3_id_key;
		INSERT INTO t3 SELECT g, g FROM generate_series(1, 50) g;
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
}

// deadPort is a loopback port nothing listens on.
func deadPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// withSourceDown writes a config like the pair's whose source port is dead
// (the context directory is the same: it is named after src_cls and src_db).
func (p *pair) withSourceDown(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(p.config)
	if err != nil {
		t.Fatal(err)
	}
	yml := strings.Replace(string(b), fmt.Sprintf("src_port: %d", p.src.Port), fmt.Sprintf("src_port: %d", deadPort(t)), 1)
	path := filepath.Join(p.dir, "source-down.yml")
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (p *pair) recreateTarget(t *testing.T) {
	t.Helper()
	pgtest.Exec(t, p.dst, "postgres", "DROP DATABASE test")
	pgtest.CreateDB(t, p.dst, "test")
}

func statusSteps(t *testing.T, p *pair) ([]string, result) {
	t.Helper()
	r := p.run("status", "--json")
	var st Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r)
	}
	var steps []string
	for _, e := range st.LastSteps {
		steps = append(steps, e.Step+":"+e.Status)
	}
	return steps, r
}

// TestExitCodesTellTheTruth: cleanup and remove-sub with the source down
// leave its slot behind and exit 1 naming it and the statement; cleanup
// --dry-run while replication streams prints the real run's statements in
// its order and changes nothing; check-special-object exits 3 on a blocking
// problem. Issue 12 point 8.
func TestExitCodesTellTheTruth(t *testing.T) {
	p := newPair(t, 15, 17)
	phaseSource(t, p)
	p.must("migrate")
	before := p.objectsLeft()

	t.Run("cleanup --dry-run while streaming", func(t *testing.T) {
		r := p.run("cleanup", "--dry-run")
		if r.code != 0 || strings.Contains(r.stdout+r.stderr, "in use") {
			t.Fatalf("cleanup --dry-run: %s", r)
		}
		order := []string{"DISABLE", "DROP SUBSCRIPTION", "DROP PUBLICATION"}
		at := -1
		for _, s := range order {
			i := strings.Index(r.stdout, s)
			if i <= at {
				t.Fatalf("cleanup --dry-run: %q missing or out of order (%v): %s", s, order, r)
			}
			at = i
		}
		if strings.Contains(r.stdout, "pg_drop_replication_slot") {
			t.Errorf("dry run drops the slot that DROP SUBSCRIPTION drops: %s", r)
		}
		if after := p.objectsLeft(); strings.Join(after, ",") != strings.Join(before, ",") {
			t.Errorf("dry run changed objects: %v, was %v", after, before)
		}
		if !p.src.Running() || len(p.sourceSlots()) != 1 {
			t.Errorf("slots after the dry run: %v", p.sourceSlots())
		}
	})

	t.Run("check-special-object blocking", func(t *testing.T) {
		pgtest.Exec(t, p.src, "meta", `ALTER ROLE replicator NOBYPASSRLS; ALTER TABLE t1 ENABLE ROW LEVEL SECURITY`)
		defer pgtest.Exec(t, p.src, "meta", `ALTER ROLE replicator BYPASSRLS; ALTER TABLE t1 DISABLE ROW LEVEL SECURITY`)
		r := p.run("check-special-object")
		if r.code != ExitProblems || !strings.Contains(r.stdout, "not ready: 1 blocking problem") || !strings.Contains(r.stderr, "row-level security") {
			t.Fatalf("check-special-object with a blocking problem: %s", r)
		}
	})

	down := p.withSourceDown(t)
	t.Run("remove-sub with the source down", func(t *testing.T) {
		r := pgmove(t, "-c", down, "remove-sub")
		if r.code != ExitError || !strings.Contains(r.stderr, "source: unreachable") || !strings.Contains(r.stderr, `pg_drop_replication_slot('sub_pg_meta_meta')`) {
			t.Fatalf("remove-sub with the source down: %s", r)
		}
		if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM pg_subscription"); n != 0 {
			t.Errorf("the subscription is still on the target")
		}
	})
	t.Run("cleanup with the source down", func(t *testing.T) {
		r := pgmove(t, "-c", down, "cleanup")
		if r.code != ExitError || !strings.Contains(r.stderr, `replication slot "sub_pg_meta_meta"`) ||
			!strings.Contains(r.stderr, "DROP PUBLICATION") || !strings.Contains(r.stderr, "pg_drop_replication_slot") {
			t.Fatalf("cleanup with the source down: %s", r)
		}
		if st := p.run("status"); strings.Contains(st.stdout, "finished") {
			t.Errorf("a cleanup that left the slot counts as finished: %s", st)
		}
		if slots := p.sourceSlots(); len(slots) != 1 {
			t.Fatalf("the slot should be left on the source: %v", slots)
		}
	})
	t.Run("cleanup once the source is back", func(t *testing.T) {
		p.must("cleanup")
		if left := p.objectsLeft(); len(left) != 0 {
			t.Fatalf("left after cleanup: %v", left)
		}
		if st := p.must("status"); !strings.Contains(st.stdout, "finished") {
			t.Errorf("status after cleanup: %s", st)
		}
	})
}

// TestStateOfAnotherMigration: a second migration after cleanup into a
// fresh target database, and a target database re-created under the same
// name while a migration was under way (new servers at the same address),
// never act on the earlier journal: no "interrupted copy", no TRUNCATE;
// status shows the current migration's steps only. status and cleanup with
// the source down create no context directory. Issue 12 point 7.
func TestStateOfAnotherMigration(t *testing.T) {
	p := newPair(t, 15, 17)
	phaseSource(t, p)
	p.must("migrate")
	p.must("cleanup")
	archived := func() int {
		es, _ := os.ReadDir(filepath.Join(p.contextDir(), "archive"))
		return len(es)
	}

	t.Run("after cleanup, a fresh target database", func(t *testing.T) {
		p.recreateTarget(t)
		r := p.must("migrate")
		if strings.Contains(r.stdout+r.stderr, "interrupted") || strings.Contains(r.stderr, "TRUNCATE") {
			t.Fatalf("second migration acted on the first one's journal: %s", r)
		}
		if !strings.Contains(r.stderr, "archived to") || archived() != 1 {
			t.Errorf("the first migration's journal was not archived (%d): %s", archived(), r)
		}
		assertSameRows(t, p.src, p.dst, "t1", "t2", "t3")
		list, _ := statusSteps(t, p)
		steps := strings.Join(list, " ")
		if strings.Contains(steps, "cleanup") {
			t.Errorf("status shows the previous migration's steps: %s", steps)
		}
	})

	t.Run("the target database re-created mid-migration", func(t *testing.T) {
		// The target is rebuilt under the same name: its database OID
		// changes; someone loads a table of the same name into it.
		pgtest.Exec(t, p.dst, "test", `ALTER SUBSCRIPTION sub_pg_meta_meta DISABLE;
			ALTER SUBSCRIPTION sub_pg_meta_meta SET (slot_name = NONE);
			DROP SUBSCRIPTION sub_pg_meta_meta`)
		p.recreateTarget(t)
		pgtest.Exec(t, p.dst, "test", `CREATE TABLE t1 (id int PRIMARY KEY, v text NOT NULL); INSERT INTO t1 VALUES (1, 'theirs'), (2, 'theirs'), (3, 'theirs')`)
		r := p.run("migrate")
		if r.code == 0 || strings.Contains(r.stdout+r.stderr, "interrupted") || strings.Contains(r.stderr, "TRUNCATE") {
			t.Fatalf("migrate into a re-created target: %s", r)
		}
		if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM t1 WHERE v = 'theirs'"); n != 3 {
			t.Fatalf("the target's own rows: %d of 3 left", n)
		}
		list, st := statusSteps(t, p)
		steps := strings.Join(list, " ")
		if strings.Contains(steps, "catch-up") || strings.Contains(steps, "create-sub:done") {
			t.Errorf("status shows the previous migration's steps: %s", steps)
		}
		// Whichever command opened the journal first set it aside.
		if !strings.Contains(r.stderr+st.stderr, "target database's OID is") || archived() != 2 {
			t.Errorf("the journal of the old target database was not archived (%d): %s\nstatus: %s", archived(), r, st)
		}
	})

	t.Run("a copy.json of another target", func(t *testing.T) {
		path := filepath.Join(p.contextDir(), "copy.json")
		if err := os.WriteFile(path, []byte(`{"phase":"failed","source_id":"1/1","target_id":"2/2","tables":[{"table":"public.t1","state":"copying"}]}`), 0o600); err != nil {
			t.Fatal(err)
		}
		r := p.run("progress")
		if !strings.Contains(r.stderr, "copy.json is of source database 1/1") || archived() != 3 {
			t.Errorf("a copy.json of other servers was not set aside (%d): %s", archived(), r)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) || strings.Contains(r.stdout, "copying") {
			t.Errorf("progress read another migration's copy.json (%v): %s", err, r)
		}
	})

	t.Run("status and cleanup with the source down create no directory", func(t *testing.T) {
		home := t.TempDir()
		t.Setenv("HOME", home)
		src := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/meta", deadPort(t))
		dst := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/test", p.dst.Port)
		st := pgmove(t, "--src", src, "--dst", dst, "status")
		cl := pgmove(t, "--src", src, "--dst", dst, "cleanup")
		if cl.code != ExitError {
			t.Errorf("cleanup with the source down: %s", cl)
		}
		if es, err := os.ReadDir(home); err != nil || len(es) != 0 {
			t.Fatalf("made in $HOME: %v %v\nstatus: %s\ncleanup: %s", es, err, st, cl)
		}
	})
}

// TestCheckKnowsThePhase: after the documented copy-schema --section
// pre-data, and after a failed copy, check does not report the indexes and
// constraints create-sub builds next as drift: one summary line, exit 0.
// Once the handoff is done, a missing index is drift again. Issue 12 point 4.
func TestCheckKnowsThePhase(t *testing.T) {
	p := newPair(t, 15, 17)
	phaseSource(t, p)
	p.must("copy-schema", "--section", "pre-data")
	r := p.run("check", "--no-probe")
	if r.code != 0 || strings.Contains(r.stdout, "schema drift") || strings.Count(r.stdout, "will be built by create-sub after the copy") != 1 {
		t.Fatalf("check after copy-schema --section pre-data: %s", r)
	}
	if !strings.Contains(r.stdout, "3 table(s)' indexes and constraints") || !strings.Contains(r.stdout, "ready: 0 warning(s)") {
		t.Errorf("check's summary: %s", r)
	}

	// A copy that fails (the target refuses t1's rows) leaves the other
	// tables loaded and the indexes unbuilt: still no drift but the
	// target's own constraint, and the rows are the interrupted copy's.
	pgtest.Exec(t, p.dst, "test", "ALTER TABLE t1 ADD CONSTRAINT no_rows CHECK (id < 0) NOT VALID")
	if r := p.run("migrate"); r.code == 0 {
		t.Fatalf("migrate into a target that refuses t1's rows: %s", r)
	}
	r = p.run("check", "--no-probe")
	if r.code != 0 || strings.Count(r.stdout, "schema drift") != 1 || !strings.Contains(r.stdout, `public.t1.no_rows: schema drift: constraint exists on the target only`) ||
		strings.Count(r.stdout, "will be built by create-sub after the copy") != 1 || !strings.Contains(r.stdout, "create-sub (or migrate) restarts the copy from a new slot") {
		t.Fatalf("check after a failed copy: %s", r)
	}
	pgtest.Exec(t, p.dst, "test", "ALTER TABLE t1 DROP CONSTRAINT no_rows")
	p.must("migrate")
	r = p.must("check", "--no-probe")
	if strings.Contains(r.stdout, "will be built by create-sub") || strings.Contains(r.stdout, "schema drift") {
		t.Errorf("check once replicating: %s", r)
	}
	pgtest.Exec(t, p.dst, "test", "DROP INDEX t2_n")
	r = p.run("check", "--no-probe")
	if !strings.Contains(r.stdout, "public.t2_n: schema drift: index exists on the source only") {
		t.Errorf("a missing index after the handoff is drift: %s", r)
	}
	p.must("cleanup")
}

// TestRunbookSpecialObjects: for a source with large objects and an
// unlogged table, the runbook says copy-seq carries both (not lo_export,
// not "pgmove does not copy them"), and copy-seq then does what it says.
// dst_list repeating the leader and an admin who is the replication user
// are listed once. Issue 12 point 13.
func TestRunbookSpecialObjects(t *testing.T) {
	p := newPair(t, 15, 17, "dst_list: [ 127.0.0.1, 127.0.0.2 ]")
	phaseSource(t, p)
	pgtest.Exec(t, p.src, "meta", `
		CREATE UNLOGGED TABLE sessions (id int PRIMARY KEY, who text);
		INSERT INTO sessions SELECT g, 'u' || g FROM generate_series(1, 40) g;
		SELECT lo_from_bytea(0, 'first large object'), lo_from_bytea(0, 'second');
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
	p.must("plan")
	b, err := os.ReadFile(filepath.Join(p.contextDir(), "runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	rb := string(b)
	for _, want := range []string{
		"| `(database)` | large objects | 2 large object(s): not replicated; at the switch copy-seq makes the target's large objects the source's",
		"| `public.sessions` | unlogged table | unlogged table: not replicated; at the switch copy-seq empties it on the target and copies its rows from the source again |",
		"large objects made the source's, by OID and content; unlogged tables emptied and their rows copied again",
		"- [ ] `public.sessions` (unlogged table):",
		"- Target hosts: the leader `127.0.0.1` and the replica(s) `127.0.0.2`, reachable",
		"AND usename NOT IN ('postgres', 'replicator')",
	} {
		if !strings.Contains(rb, want) {
			t.Errorf("runbook.md lacks %q", want)
		}
	}
	for _, not := range []string{"lo_export", "pgmove does not copy", "`127.0.0.1:" + fmt.Sprint(p.dst.Port) + "` (dst_list)"} {
		if strings.Contains(rb, not) {
			t.Errorf("runbook.md says %q", not)
		}
	}
	// What the runbook says copy-seq does, it does.
	p.must("migrate")
	pgtest.Exec(t, p.src, "meta", `INSERT INTO sessions VALUES (41, 'late'); SELECT lo_from_bytea(0, 'third')`)
	p.must("copy-seq")
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM sessions"); n != 41 {
		t.Errorf("unlogged table on the target: %d rows, want 41", n)
	}
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM pg_largeobject_metadata"); n != 3 {
		t.Errorf("large objects on the target: %d, want 3", n)
	}
	p.must("cleanup")
}
