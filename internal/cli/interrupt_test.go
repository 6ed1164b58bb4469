package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgmove/pgmove/internal/copy"
	"github.com/pgmove/pgmove/internal/pgtest"
)

// bigSource fills the source with a table big enough to interrupt its copy
// midway, and a few small ones.
func bigSource(t *testing.T, p *pair) {
	t.Helper()
	pgtest.Exec(t, p.src, "meta", `
		CREATE TABLE big (id bigint PRIMARY KEY, payload text NOT NULL, n numeric);
		INSERT INTO big SELECT g, repeat(md5(g::text), 6), g * 1.5 FROM generate_series(1, 600000) g;
		CREATE INDEX big_n ON big (n);
		CREATE TABLE small (id serial PRIMARY KEY, v text);
		INSERT INTO small (v) SELECT 'v' || g FROM generate_series(1, 1000) g;
		CREATE TABLE nokey (a int, b text);
		ALTER TABLE nokey REPLICA IDENTITY FULL;
		INSERT INTO nokey SELECT g, 'b' FROM generate_series(1, 500) g;
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
}

// waitCopying waits until the snapshot copy has sent some bytes.
func waitCopying(t *testing.T, dir string, deadline time.Duration) {
	t.Helper()
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		st, _ := copy.ReadStatus(dir)
		if st != nil && st.Phase == "copy" {
			for _, tb := range st.Tables {
				if tb.Bytes > 1<<20 && tb.State != "copied" {
					return
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the copy did not start in time")
}

func (p *pair) contextDir() string { return filepath.Join(p.dir, "migration", "pg-meta.meta") }

func (p *pair) sourceSlots() []string {
	var out []string
	for _, r := range pgtest.QueryRows(p.t, p.src, "meta", "SELECT slot_name::text FROM pg_replication_slots") {
		out = append(out, r[0].(string))
	}
	return out
}

func (p *pair) finishAndCompare(t *testing.T, more ...string) {
	t.Helper()
	p.must("progress", "--wait", "--timeout", "2m")
	p.must("copy-seq")
	r := p.must("compare", "--checksum")
	tables := append([]string{"big", "small", "nokey"}, more...)
	if !strings.Contains(r.stdout, fmt.Sprintf("equal: %d table(s)", len(tables))) {
		t.Fatalf("compare: %s", r)
	}
	assertSameRows(t, p.src, p.dst, tables...)
}

// TestCopyKilled kills pgmove (SIGKILL) in the middle of the snapshot copy:
// the rerun must notice, restart from a new slot, and end equal.
func TestCopyKilled(t *testing.T) {
	p := newPair(t, 15, 16)
	bigSource(t, p)
	bin := filepath.Join(t.TempDir(), "pgmove")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/pgmove/pgmove/cmd/pgmove").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-c", p.config, "migrate", "--jobs", "2")
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitCopying(t, p.contextDir(), time.Minute)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if slots := p.sourceSlots(); len(slots) != 1 {
		t.Fatalf("the killed copy should leave its slot: %v", slots)
	}
	// What the rerun deals with itself is not a fault (issue 12 point 4).
	if r := p.run("check", "--no-probe"); r.code != 0 || strings.Contains(r.stdout, "left by an earlier run") || strings.Contains(r.stdout, "schema drift") ||
		!strings.Contains(r.stdout, "slot of this migration's interrupted copy") || !strings.Contains(r.stdout, "will be built by create-sub after the copy") {
		t.Errorf("check after the killed copy: %s", r)
	}
	r := p.must("migrate")
	if !strings.Contains(r.stdout, "interrupted and its snapshot is gone: restarting from a new slot") {
		t.Errorf("the rerun did not say it restarts: %s", r)
	}
	p.finishAndCompare(t)
}

// TestCopyInterrupted stops pgmove (as Ctrl-C does) in the middle of the
// snapshot copy: it must drop its slot, and the rerun start cleanly.
func TestCopyInterrupted(t *testing.T) {
	p := newPair(t, 14, 17)
	bigSource(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result)
	go func() { done <- pgmoveCtx(t, ctx, "-c", p.config, "migrate", "--jobs", "2") }()
	var r result
	end := time.Now().Add(time.Minute)
wait:
	for {
		select {
		case r = <-done:
			t.Fatalf("migrate ended before it could be interrupted: %s", r)
		default:
		}
		if st, _ := copy.ReadStatus(p.contextDir()); st != nil && st.Phase == "copy" {
			for _, tb := range st.Tables {
				if tb.Bytes > 1<<20 && tb.State != "copied" {
					break wait
				}
			}
		}
		if time.Now().After(end) {
			t.Fatal("the copy did not start in time")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	r = <-done
	if r.code != ExitInterrupted {
		t.Fatalf("interrupted migrate: %s", r)
	}
	if slots := p.sourceSlots(); len(slots) != 0 {
		t.Errorf("the interrupted copy left slots behind: %v", slots)
	}
	r = p.must("migrate")
	if !strings.Contains(r.stdout, "restarting from a new slot") {
		t.Errorf("the rerun did not say it restarts: %s", r)
	}
	p.finishAndCompare(t)
}

// TestSplitCopy loads big tables with several target sessions: CTID
// ranges from a 14+ source; from a 13 source, one read dealt out to the
// sessions (a table with a key and one without). Under writes, the target
// must end equal.
func TestSplitCopy(t *testing.T) {
	for _, pairv := range [][2]int{{13, 16}, {15, 17}} {
		t.Run(fmt.Sprintf("%d-to-%d", pairv[0], pairv[1]), func(t *testing.T) {
			p := newPair(t, pairv[0], pairv[1])
			bigSource(t, p)
			// No key; NULLs, escapes, values bigger than a batch of rows; an
			// aclitem column, which has no binary form: the text path, with
			// character(n) values sent without their trailing blanks.
			pgtest.Exec(t, p.src, "meta", `
				CREATE TABLE big_nokey (a int, b text, c bytea, d aclitem, e character(12), f character(3));
				INSERT INTO big_nokey SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE E'line\n\ttab\\' || g END,
				  CASE WHEN g % 5000 = 0 THEN convert_to(repeat(md5(g::text), 20000), 'UTF8') ELSE decode(md5(g::text), 'hex') END,
				  'postgres=r/postgres'::aclitem,
				  CASE WHEN g % 11 = 0 THEN NULL WHEN g % 3 = 0 THEN '' ELSE E'é\\ \t ' || (g % 1000) END,
				  CASE WHEN g % 2 = 0 THEN ' ' ELSE 'abc' END
				FROM generate_series(1, 200000) g;
				ALTER TABLE big_nokey REPLICA IDENTITY FULL;
				GRANT SELECT ON big_nokey TO replicator`)
			pgtest.Exec(t, p.src, "meta", "ANALYZE")
			r := p.must("migrate", "--split-larger-than", "8MB", "--jobs", "3")
			if !strings.Contains(r.stdout, "copy: 4 table(s)") {
				t.Fatalf("migrate: %s", r)
			}
			st, err := copy.ReadStatus(p.contextDir())
			if err != nil || st == nil {
				t.Fatalf("copy status: %v", err)
			}
			for _, tb := range st.Tables {
				if (tb.Name == "public.big" || tb.Name == "public.big_nokey") && tb.Streams < 3 {
					t.Errorf("%s was loaded by %d session(s), want 3", tb.Name, tb.Streams)
				}
			}
			pgtest.Exec(t, p.src, "meta", "UPDATE big SET n = n + 1 WHERE id % 1000 = 0; DELETE FROM big WHERE id % 997 = 0")
			p.finishAndCompare(t, "big_nokey")
		})
	}
}

// TestFreezeCopy loads a table of more than 64 MB whole with TRUNCATE +
// COPY FREEZE (its rows land frozen), and falls back to a plain COPY where
// the target refuses the TRUNCATE: there, a table the target already had
// is referenced by a foreign key.
func TestFreezeCopy(t *testing.T) {
	p := newPair(t, 15, 16)
	ddl := `CREATE TABLE parent (id bigint PRIMARY KEY, payload text NOT NULL);
		CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint REFERENCES parent);
		CREATE TABLE wide (id bigint PRIMARY KEY, payload text NOT NULL)`
	pgtest.Exec(t, p.src, "meta", ddl+`;
		INSERT INTO parent SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 600000) g;
		INSERT INTO wide SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 600000) g;
		INSERT INTO child SELECT g, g FROM generate_series(1, 1000) g;
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
	pgtest.Exec(t, p.dst, "test", ddl)
	r := p.must("migrate", "-v")
	if !strings.Contains(r.stderr+r.stdout, "copy public.parent: TRUNCATE + COPY FREEZE failed") {
		t.Errorf("no fallback to a plain COPY for parent: %s", r)
	}
	// COPY FREEZE marks the pages it fills all-frozen in the visibility
	// map (all but those two batches share).
	frozen := func(table string) float64 {
		return pgtest.QueryValue[float64](t, p.dst, "test", fmt.Sprintf(
			`SELECT (count(*) FILTER (WHERE all_frozen))::float8 / count(*) FROM pg_visibility_map('%s')`, table))
	}
	pgtest.Exec(t, p.dst, "test", "CREATE EXTENSION IF NOT EXISTS pg_visibility")
	if got := frozen("wide"); got < 0.9 {
		t.Errorf("wide: %.0f%% of its pages all-frozen, want nearly all (COPY FREEZE)", 100*got)
	}
	if got := frozen("parent"); got > 0.1 {
		t.Errorf("parent: %.0f%% of its pages all-frozen, want none (a plain COPY)", 100*got)
	}
	p.must("progress", "--wait", "--timeout", "2m")
	r = p.must("compare", "--checksum")
	if !strings.Contains(r.stdout, "equal: 3 table(s)") {
		t.Fatalf("compare: %s", r)
	}
	assertSameRows(t, p.src, p.dst, "parent", "child", "wide")
}

// TestCopySessionTerminated ends a target copy session mid-copy (as an
// administrator's pg_terminate_backend would): pgmove must retry that
// table on new sessions by itself, say so, and end equal.
func TestCopySessionTerminated(t *testing.T) {
	p := newPair(t, 15, 16)
	bigSource(t, p)
	done := make(chan result)
	go func() { done <- pgmoveCtx(t, context.Background(), "-c", p.config, "migrate", "--jobs", "2") }()
	waitCopying(t, p.contextDir(), time.Minute)
	ended := pgtest.QueryValue[int64](t, p.dst, "test", `SELECT count(*) FROM (
		SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity
		 WHERE application_name = 'pgmove/copy' AND state = 'active' AND query LIKE 'COPY %') t`)
	if ended == 0 {
		t.Fatal("no copy session was loading when the test ended one: the copy finished too soon")
	}
	r := <-done
	if r.code != 0 {
		t.Fatalf("migrate did not recover from the ended session: %s", r)
	}
	if !strings.Contains(r.stderr, "retrying on new sessions") {
		t.Errorf("migrate did not say it retried the table: %s", r)
	}
	p.finishAndCompare(t)
}
