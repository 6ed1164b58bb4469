package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgmove/pgmove/internal/copy"
	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/pgtest"
)

// pgmove never empties, truncates or overwrites a table unless it can prove
// it loaded that table itself, in this migration, on this server, and it
// never writes into the source's tables. These tests try each way in.

// pgbenchSource fills the source with pgbench's four tables, accounts big
// enough for its copy to be interrupted midway.
func pgbenchSource(t *testing.T, p *pair, accounts int) {
	t.Helper()
	pgtest.Exec(t, p.src, "meta", fmt.Sprintf(`
		CREATE TABLE pgbench_branches (bid int PRIMARY KEY, bbalance int, filler character(88));
		CREATE TABLE pgbench_tellers (tid int PRIMARY KEY, bid int, tbalance int, filler character(84));
		CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int, filler character(84));
		CREATE TABLE pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp, filler character(22));
		ALTER TABLE pgbench_history REPLICA IDENTITY FULL;
		INSERT INTO pgbench_branches SELECT g, 0 FROM generate_series(1, 10) g;
		INSERT INTO pgbench_tellers SELECT g, (g - 1) / 10 + 1, 0 FROM generate_series(1, 100) g;
		INSERT INTO pgbench_accounts SELECT g, (g - 1) / 100000 + 1, 0, repeat(md5(g::text), 2) FROM generate_series(1, %d) g;
		INSERT INTO pgbench_history SELECT g %% 100 + 1, g %% 10 + 1, g, g, now(), '' FROM generate_series(1, 500) g;
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`, accounts))
}

// interruptCopy runs migrate and stops it (as Ctrl-C does) once the big
// table is being copied and every table in done has been loaded.
func interruptCopy(t *testing.T, p *pair, big string, done ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := make(chan result, 1)
	go func() { res <- pgmoveCtx(t, ctx, "-c", p.config, "migrate", "--jobs", "2") }()
	end := time.Now().Add(time.Minute)
	for {
		select {
		case r := <-res:
			t.Fatalf("migrate ended before it could be interrupted: %s", r)
		default:
		}
		if st, _ := copy.ReadStatus(p.contextDir()); st != nil && st.Phase == "copy" {
			copying, loaded := false, 0
			for _, tb := range st.Tables {
				if tb.Name == big && tb.Bytes > 1<<20 && tb.State != "copied" {
					copying = true
				}
				if slices.Contains(done, tb.Name) && tb.State == "copied" {
					loaded++
				}
			}
			if copying && loaded == len(done) {
				break
			}
		}
		if time.Now().After(end) {
			t.Fatal("the copy did not get far enough in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if r := <-res; r.code != ExitInterrupted {
		t.Fatalf("interrupted migrate: %s", r)
	}
}

func count(t *testing.T, s *pgserver.Server, db, table string) int64 {
	t.Helper()
	return pgtest.QueryValue[int64](t, s, db, "SELECT count(*) FROM "+table)
}

func url(s *pgserver.Server, db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s", s.Port, db)
}

func (p *pair) publicationsAndSlots() []string {
	var out []string
	for _, row := range pgtest.QueryRows(p.t, p.src, "meta", "SELECT 'publication ' || pubname FROM pg_publication UNION ALL SELECT 'slot ' || slot_name FROM pg_replication_slots ORDER BY 1") {
		out = append(out, row[0].(string))
	}
	return out
}

// TestSameDatabaseRefused is issue 12's reproduction: after an interrupted
// copy, the source named as the target. Every command that connects both
// sides refuses at once, with exit 2, and the source keeps every row.
func TestSameDatabaseRefused(t *testing.T) {
	p := newPair(t, 15, 17)
	pgbenchSource(t, p, 400000)
	same := func(t *testing.T) {
		t.Helper()
		for _, args := range [][]string{{"migrate"}, {"check"}, {"copy-schema"}, {"create-pub"}, {"create-sub"},
			{"create-sub", "--copy", "native"}, {"copy-seq"}, {"compare"}, {"status"}, {"progress"}, {"cleanup"}, {"plan"}} {
			start := time.Now()
			r := pgmove(t, append([]string{"-c", p.config, "--dst", url(p.src, "meta")}, args...)...)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("%s took %s to refuse", args, took)
			}
			if r.code != ExitUsage || !strings.Contains(r.stderr, "source and target are the same database") || !strings.Contains(r.stderr, "--dst must name the target") {
				t.Errorf("%s with --dst naming the source: %s", args, r)
			}
		}
	}
	t.Run("fresh", func(t *testing.T) {
		same(t)
		if left := p.publicationsAndSlots(); len(left) != 0 {
			t.Errorf("the refused runs left %v on the source", left)
		}
	})
	t.Run("after an interrupted copy", func(t *testing.T) {
		interruptCopy(t, p, "public.pgbench_accounts", "public.pgbench_tellers", "public.pgbench_branches")
		before := p.publicationsAndSlots()
		same(t)
		if got := count(t, p.src, "meta", "pgbench_accounts"); got != 400000 {
			t.Errorf("the source's pgbench_accounts holds %d rows, want 400000", got)
		}
		for tbl, want := range map[string]int64{"pgbench_branches": 10, "pgbench_tellers": 100, "pgbench_history": 500} {
			if got := count(t, p.src, "meta", tbl); got != want {
				t.Errorf("the source's %s holds %d rows, want %d", tbl, got, want)
			}
		}
		if after := p.publicationsAndSlots(); !slices.Equal(before, after) || slices.ContainsFunc(after, func(s string) bool { return strings.HasPrefix(s, "slot") }) {
			t.Errorf("publications and slots on the source: %v before the refused runs, %v after", before, after)
		}
		if n := pgtest.QueryValue[int64](t, p.src, "meta", "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgmove'"); n != 0 {
			t.Errorf("pgmove wrote its ledger into the source")
		}
	})
}

// TestOtherTargetKept: a copy into target A is interrupted; migrate with
// the same context directory (its journal says a copy was interrupted)
// then points at target B, whose tables hold rows of their own. The
// journal of A is archived, B's rows stay, and the error names them.
func TestOtherTargetKept(t *testing.T) {
	p := newPair(t, 15, 16)
	bigSource(t, p)
	interruptCopy(t, p, "public.big", "public.small", "public.nokey")
	pgtest.CreateDB(t, p.dst, "other")
	pgtest.Exec(t, p.dst, "other", `CREATE TABLE big (id bigint PRIMARY KEY, payload text NOT NULL, n numeric);
		CREATE TABLE small (id serial PRIMARY KEY, v text);
		CREATE TABLE nokey (a int, b text);
		ALTER TABLE nokey REPLICA IDENTITY FULL;
		INSERT INTO big SELECT g, 'mine', g FROM generate_series(1, 700) g;
		INSERT INTO small (v) SELECT 'mine' FROM generate_series(1, 7) g`)
	r := pgmove(t, "-c", p.config, "--dst", url(p.dst, "other"), "migrate", "--jobs", "2")
	if r.code == 0 {
		t.Fatalf("migrate into a database whose tables hold rows of their own: %s", r)
	}
	// The journal names target A: for B it is archived, not acted on, and
	// B's tables are refused as holding rows (before the copy's own ledger
	// check would refuse them too).
	for _, want := range []string{"not this migration's", "not acted on", "already hold rows", "public.big", "public.small"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the error does not say %q: %s", want, r)
		}
	}
	if got := pgtest.QueryValue[int64](t, p.dst, "other", "SELECT count(*) FROM big WHERE payload = 'mine'"); got != 700 {
		t.Errorf("B's big holds %d of its 700 rows", got)
	}
	if got := pgtest.QueryValue[int64](t, p.dst, "other", "SELECT count(*) FROM small WHERE v = 'mine'"); got != 7 {
		t.Errorf("B's small holds %d of its 7 rows", got)
	}
}

// TestFilledAfterInterruption: after an interrupted copy someone writes
// into a table pgmove had loaded (small) and one it had not (big). The
// rerun refuses, empties nothing and names both. Once those rows are gone,
// the rerun restarts the copy as usual, and cleanup drops the ledger.
func TestFilledAfterInterruption(t *testing.T) {
	p := newPair(t, 15, 16)
	bigSource(t, p)
	interruptCopy(t, p, "public.big", "public.small", "public.nokey")
	if got := count(t, p.dst, "test", "small"); got != 1000 {
		t.Fatalf("the interrupted copy should have loaded small: %d rows", got)
	}
	pgtest.Exec(t, p.dst, "test", `INSERT INTO small (id, v) VALUES (5000, 'someone else');
		INSERT INTO big VALUES (1, 'someone else', 1), (2, 'someone else', 2)`)
	r := p.run("migrate", "--jobs", "2")
	if r.code == 0 {
		t.Fatalf("migrate over rows pgmove did not load: %s", r)
	}
	for _, want := range []string{"public.small holds 1 row(s) pgmove did not load (of 1001)", "public.big holds 2 row(s) pgmove did not load (of 2)"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the error does not say %q: %s", want, r)
		}
	}
	if got := count(t, p.dst, "test", "small"); got != 1001 {
		t.Errorf("small holds %d rows after the refusal, want 1001 (nothing emptied)", got)
	}
	if got := count(t, p.dst, "test", "big"); got != 2 {
		t.Errorf("big holds %d rows after the refusal, want 2", got)
	}
	if got := count(t, p.dst, "test", "nokey"); got != 500 {
		t.Errorf("nokey holds %d rows after the refusal, want 500 (nothing emptied)", got)
	}

	// Their rows removed, what is left is pgmove's own: the rerun empties
	// it and copies again.
	pgtest.Exec(t, p.dst, "test", "DELETE FROM small WHERE id = 5000; DELETE FROM big")
	r = p.must("migrate", "--jobs", "2")
	if !strings.Contains(r.stdout, "restarting from a new slot") || !strings.Contains(r.stdout, "emptied the 2 table(s)") {
		t.Errorf("the rerun did not say it restarts and what it emptied: %s", r)
	}
	p.finishAndCompare(t)
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM pgmove.load WHERE relname = 'public.big'"); n != 1 {
		t.Errorf("the ledger records %d load(s) of big, want 1", n)
	}
	r = p.must("cleanup")
	if !strings.Contains(r.stdout, "copy ledger (schema pgmove) dropped") {
		t.Errorf("cleanup did not say it dropped the ledger: %s", r)
	}
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgmove'"); n != 0 {
		t.Errorf("the ledger outlived cleanup")
	}
}

// TestForceByMistake: --force on a target whose tables hold rows loses none.
func TestForceByMistake(t *testing.T) {
	p := newPair(t, 15, 16)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE t (id int PRIMARY KEY, v text);
		INSERT INTO t SELECT g, 'source' FROM generate_series(1, 100) g;
		GRANT SELECT ON t TO replicator`)
	pgtest.Exec(t, p.dst, "test", `CREATE TABLE t (id int PRIMARY KEY, v text);
		INSERT INTO t SELECT g, 'target' FROM generate_series(1, 50) g`)
	mine := func() int64 {
		return pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM t WHERE v = 'target'")
	}
	p.must("create-pub")
	if r := p.run("create-sub", "--force"); r.code != ExitUsage || !strings.Contains(r.stderr, "--force applies to --copy native only") {
		t.Errorf("create-sub --force with the snapshot copy: %s", r)
	}
	if r := p.run("migrate", "--force"); r.code != ExitUsage {
		t.Errorf("migrate --force: %s", r)
	}
	if r := p.run("migrate"); r.code == 0 {
		t.Errorf("migrate into a table holding rows: %s", r)
	}
	if got := mine(); got != 50 {
		t.Fatalf("the target's own rows: %d of 50 left", got)
	}
	if left := p.sourceSlots(); len(left) != 0 {
		t.Errorf("refused runs left slots: %v", left)
	}
	// The native copy with --force adds the source's rows; it empties
	// nothing (here its table sync fails on the duplicate keys).
	p.must("create-sub", "--copy", "native", "--force")
	time.Sleep(2 * time.Second)
	if got := mine(); got != 50 {
		t.Errorf("after create-sub --copy native --force, the target's own rows: %d of 50 left", got)
	}
	p.must("cleanup")
	if got := mine(); got != 50 {
		t.Errorf("after cleanup, the target's own rows: %d of 50 left", got)
	}
}

// TestSameClusterOtherDatabase: a target database in the source's own
// cluster is legitimate; --copy native makes the slot itself first
// (CREATE SUBSCRIPTION with create_slot = true would hang), and the
// snapshot copy works too.
func TestSameClusterOtherDatabase(t *testing.T) {
	p := newPair(t, 15, 15)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE t (id int PRIMARY KEY, v text);
		INSERT INTO t SELECT g, 'source' FROM generate_series(1, 1000) g;
		GRANT SELECT ON t TO replicator`)
	for _, method := range []string{"native", "snapshot"} {
		t.Run(method, func(t *testing.T) {
			db := "copy_" + method
			pgtest.CreateDB(t, p.src, db)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			r := pgmoveCtx(t, ctx, "-c", p.config, "--dst", url(p.src, db), "migrate", "--copy", method, "--timeout", "40s")
			if r.code != 0 {
				t.Fatalf("migrate --copy %s into another database of the source's cluster: %s", method, r)
			}
			if got := count(t, p.src, db, "t"); got != 1000 {
				t.Errorf("the target holds %d of 1000 rows", got)
			}
			r = pgmove(t, "-c", p.config, "--dst", url(p.src, db), "cleanup")
			if r.code != 0 {
				t.Fatalf("cleanup: %s", r)
			}
			if left := p.publicationsAndSlots(); len(left) != 0 {
				t.Errorf("cleanup left %v", left)
			}
		})
	}
}

// TestCountFlagsRefused: a count that is not positive is a usage error,
// found before connecting (nothing listens on port 1).
func TestCountFlagsRefused(t *testing.T) {
	conn := []string{"--src", "postgres://u@127.0.0.1:1/a", "--dst", "postgres://u@127.0.0.1:1/b"}
	for _, args := range [][]string{
		{"migrate", "--jobs", "0"}, {"migrate", "--jobs", "-3"}, {"migrate", "-j", "-1"},
		{"create-sub", "--jobs", "0"}, {"create-sub", "--jobs", "-3"},
		{"compare", "--jobs", "0"}, {"copy-seq", "--jobs", "-3"},
		{"migrate", "--slot-timeout", "0s"},
	} {
		r := pgmove(t, append(conn, args...)...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, args[1]) {
			t.Errorf("pgmove %s: %s", strings.Join(args, " "), r)
		}
	}
}

// TestUnloggedRecopyGuarded: copy-seq copies unlogged tables again, each
// emptied first in its loading transaction; only while everything in it
// is what pgmove loaded there. A row written on the target by anyone else
// stops it, and nothing is emptied.
func TestUnloggedRecopyGuarded(t *testing.T) {
	p := newPair(t, 15, 16)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE t (id int PRIMARY KEY, v text);
		INSERT INTO t SELECT g, 'source' FROM generate_series(1, 100) g;
		CREATE UNLOGGED TABLE u (id int PRIMARY KEY, v text);
		INSERT INTO u SELECT g, 'source' FROM generate_series(1, 300) g;
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
	p.must("migrate")
	p.must("copy-seq")
	pgtest.Exec(t, p.src, "meta", "INSERT INTO u VALUES (301, 'source')")
	p.must("copy-seq") // the rows there are the first copy-seq's: replaced
	if got := count(t, p.dst, "test", "u"); got != 301 {
		t.Fatalf("the target's unlogged table holds %d rows, want 301", got)
	}
	pgtest.Exec(t, p.dst, "test", "INSERT INTO u VALUES (9999, 'target')")
	r := p.run("copy-seq")
	if r.code == 0 || !strings.Contains(r.stderr, "public.u holds 1 row(s) pgmove did not load (of 302)") {
		t.Errorf("copy-seq over a row pgmove did not load: %s", r)
	}
	if got := count(t, p.dst, "test", "u"); got != 302 {
		t.Errorf("the target's unlogged table holds %d rows after the refusal, want 302", got)
	}
	p.must("cleanup")
}

// TestStandbyTargetRefused: a physical standby of the source (same system
// identifier, in recovery) named as the target is refused at once.
func TestStandbyTargetRefused(t *testing.T) {
	p := newPair(t, 15, 15)
	standby := pgtest.Start(t, 15)
	if err := standby.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(standby.DataDir); err != nil {
		t.Fatal(err)
	}
	// The server runs as the postgres OS user (when the tests run as
	// root): so must its tools.
	var cred *syscall.Credential
	uid, gid := os.Geteuid(), os.Getegid()
	if uid == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = "/"
		cmd.Env = append(os.Environ(), "PGPASSWORD="+pgtest.Password())
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
	}
	run("pg_basebackup", "-D", standby.DataDir, "-h", "127.0.0.1", "-p", fmt.Sprint(p.src.Port), "-U", "postgres", "-X", "stream", "-R", "-c", "fast")
	// The copied configuration is the primary's: the standby listens on
	// its own port and socket directory (postgresql.auto.conf wins).
	auto := filepath.Join(standby.DataDir, "postgresql.auto.conf")
	f, err := os.OpenFile(auto, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "port = %d\nunix_socket_directories = '%s'\n", standby.Port, standby.DataDir)
	f.Close()
	if err := os.Chown(auto, uid, gid); err != nil {
		t.Fatal(err)
	}
	run(filepath.Join(standby.BinDir, "pg_ctl"), "start", "-w", "-D", standby.DataDir, "-l", standby.LogFile)
	if !pgtest.QueryValue[bool](t, standby, "meta", "SELECT pg_is_in_recovery()") {
		t.Fatal("the standby is not in recovery")
	}
	for _, args := range [][]string{{"check"}, {"migrate"}} {
		r := pgmove(t, append([]string{"-c", p.config, "--dst", url(standby, "postgres")}, args...)...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "is a physical standby of the source") {
			t.Errorf("%s with --dst naming a standby of the source: %s", args, r)
		}
	}
	if left := p.publicationsAndSlots(); len(left) != 0 {
		t.Errorf("the refused runs left %v on the source", left)
	}
}
