package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/fixture"
	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/pgtest"
	"github.com/pgmove/pgmove/internal/state"
)

// The fault matrix (issue 16 point 1): pgmove is killed (SIGKILL, with its
// pg_dump/pg_restore children) inside each step of a migration, then the
// same command is run again, and the end must be the one of an
// uninterrupted run. Each kill lands inside its step without hooks in
// pgmove: the test holds a lock on one server so that the step waits on
// it, sees the step's session wait in pg_locks (and the step "started" in
// the journal), and kills pgmove there.

// faultSchema is the source's data: small, but with every kind of thing a
// step waits on (a table to gate, a view with a trigger for the rest of
// the schema, a materialized view for copy-seq, a table without a key).
const faultSchema = `
	CREATE TABLE big (id bigint PRIMARY KEY, payload text NOT NULL, n numeric);
	INSERT INTO big SELECT g, md5(g::text), g * 1.5 FROM generate_series(1, 20000) g;
	CREATE INDEX big_n ON big (n);
	CREATE TABLE gate (id int PRIMARY KEY, v text);
	INSERT INTO gate SELECT g, 'g' || g FROM generate_series(1, 100) g;
	CREATE TABLE hot (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), note text);
	CREATE TABLE parent (id int PRIMARY KEY);
	INSERT INTO parent SELECT generate_series(1, 100);
	CREATE TABLE child (id int NOT NULL, parent_id int NOT NULL REFERENCES parent);
	ALTER TABLE child REPLICA IDENTITY FULL;
	INSERT INTO child SELECT g, g FROM generate_series(1, 100) g;
	CREATE TABLE nokey (a int, b text);
	ALTER TABLE nokey REPLICA IDENTITY FULL;
	INSERT INTO nokey SELECT g, 'b' FROM generate_series(1, 500) g;
	CREATE SEQUENCE counter;
	SELECT setval('counter', 1234);
	CREATE VIEW gate_view AS SELECT id, v FROM gate;
	CREATE FUNCTION gate_view_insert() RETURNS trigger LANGUAGE plpgsql AS
	  $$BEGIN INSERT INTO gate VALUES (NEW.id, NEW.v); RETURN NEW; END$$;
	CREATE TRIGGER gate_view_insert INSTEAD OF INSERT ON gate_view FOR EACH ROW EXECUTE FUNCTION gate_view_insert();
	CREATE MATERIALIZED VIEW big_summary AS SELECT count(*) AS rows, sum(n) AS total FROM big;
	GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`

// faultTables are the tables compared after each fault.
var faultTables = []string{"big", "gate", "hot", "parent", "child", "nokey"}

// migrateArgs is the command every kill case runs, and runs again.
// big (1.6 MB) is loaded in ranges, so that its indexes are built after the copy.
var migrateArgs = []string{"migrate", "--jobs", "2", "--max-lag", "1MB", "--split-larger-than", "512kB"}

// rig is one pair of servers shared by the cases, reset between them.
type rig struct {
	t      *testing.T
	p      *pair
	bin    string
	writer *appWriter
	gates  []*gate
	wrap   []string // runs pgmove through this (ip netns exec ...)
}

func newRig(t *testing.T) *rig {
	t.Helper()
	return newRigFor(t, newPair(t, 15, 17))
}

func newRigFor(t *testing.T, p *pair) *rig {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pgmove")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/pgmove/pgmove/cmd/pgmove").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return &rig{t: t, p: p, bin: bin}
}

// reset gives the case t fresh databases, the source's data, an empty
// migration context, and a writer committing into hot on the source.
func (r *rig) reset(t *testing.T) {
	t.Helper()
	r.t, r.p.t = t, t
	r.gates = nil
	for _, s := range []struct {
		srv *pgserver.Server
		db  string
	}{{r.p.src, "meta"}, {r.p.dst, "test"}} {
		// Whatever a failed case left: subscriptions, slots, the database.
		for _, row := range pgtest.QueryRows(t, s.srv, "postgres", "SELECT datname::text FROM pg_database WHERE datname = $1", s.db) {
			for _, sub := range pgtest.QueryRows(t, s.srv, row[0].(string), "SELECT subname::text FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())") {
				id := pgx.Identifier{sub[0].(string)}.Sanitize()
				pgtest.Exec(t, s.srv, s.db, "ALTER SUBSCRIPTION "+id+" DISABLE")
				pgtest.Exec(t, s.srv, s.db, "ALTER SUBSCRIPTION "+id+" SET (slot_name = NONE)")
				pgtest.Exec(t, s.srv, s.db, "DROP SUBSCRIPTION "+id)
			}
		}
		pgtest.Exec(t, s.srv, "postgres", `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE active_pid IS NOT NULL`)
		time.Sleep(100 * time.Millisecond)
		pgtest.Exec(t, s.srv, "postgres", `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots`)
		pgtest.Exec(t, s.srv, "postgres", "DROP DATABASE IF EXISTS "+s.db+" WITH (FORCE)")
		pgtest.CreateDB(t, s.srv, s.db)
	}
	pgtest.Exec(t, r.p.src, "meta", "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO replicator")
	if err := os.RemoveAll(filepath.Join(r.p.dir, "migration")); err != nil {
		t.Fatal(err)
	}
	pgtest.Exec(t, r.p.src, "meta", faultSchema)
	r.writer = startAppWriter(t, r.p.src.DSN("meta"), "hot", 10*time.Millisecond)
	t.Cleanup(r.writer.stop)
}

// gate is a transaction holding a lock on one server, so that a step of
// pgmove that needs a conflicting lock waits.
type gate struct {
	conn *pgx.Conn
	what string
}

func (r *rig) hold(srv *pgserver.Server, db, sql string) *gate {
	r.t.Helper()
	conn := pgtest.Connect(r.t, srv, db)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "BEGIN; "+sql); err != nil {
		r.t.Fatalf("hold %q: %v", sql, err)
	}
	g := &gate{conn: conn, what: sql}
	r.gates = append(r.gates, g)
	return g
}

func (g *gate) release() {
	if g.conn != nil {
		_ = g.conn.Close(context.Background())
		g.conn = nil
	}
}

func (r *rig) releaseAll() {
	for _, g := range r.gates {
		g.release()
	}
	r.gates = nil
}

// waiter is a pgmove session (or one of its children's) waiting for a lock.
type waiter struct{ app, query string }

// waitersOn lists the sessions of db waiting for a lock on the relation rel
// (a shared catalog too), other than the test's own.
func waitersOn(t *testing.T, srv *pgserver.Server, db, rel string) []waiter {
	t.Helper()
	var out []waiter
	for _, row := range pgtest.QueryRows(t, srv, db, `SELECT a.application_name::text, a.query FROM pg_catalog.pg_locks l
		JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
		WHERE NOT l.granted AND l.locktype = 'relation' AND l.relation = pg_catalog.to_regclass($1)
		  AND a.application_name <> 'pgmove/pgtest'`, rel) {
		out = append(out, waiter{row[0].(string), row[1].(string)})
	}
	return out
}

// waiting reports whether a session waits for a lock on rel running a
// statement that holds one of words (any statement without).
func waiting(t *testing.T, srv *pgserver.Server, db, rel string, words ...string) bool {
	t.Helper()
	for _, w := range waitersOn(t, srv, db, rel) {
		if len(words) == 0 {
			return true
		}
		q := strings.ToUpper(w.query)
		for _, p := range words {
			if strings.Contains(q, p) {
				return true
			}
		}
	}
	return false
}

// proc is pgmove run as a subprocess in its own process group.
type proc struct {
	cmd      *exec.Cmd
	out, err syncBuffer
	done     chan struct{}
	code     int
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (r *rig) start(args ...string) *proc {
	r.t.Helper()
	pr := &proc{done: make(chan struct{})}
	argv := append(append(append([]string(nil), r.wrap...), r.bin, "-c", r.p.config), args...)
	pr.cmd = exec.Command(argv[0], argv[1:]...)
	pr.cmd.Env = os.Environ()
	pr.cmd.Stdout, pr.cmd.Stderr = &pr.out, &pr.err
	pr.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := pr.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	go func() {
		_ = pr.cmd.Wait()
		pr.code = pr.cmd.ProcessState.ExitCode()
		close(pr.done)
	}()
	return pr
}

func (pr *proc) exited() bool {
	select {
	case <-pr.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL to pgmove and its children, and waits for pgmove.
func (pr *proc) kill() {
	_ = syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL)
	<-pr.done
}

func (pr *proc) String() string {
	return fmt.Sprintf("--- stdout\n%s--- stderr\n%s", pr.out.String(), pr.err.String())
}

// until polls cond until it holds; it fails the test if pgmove ends first
// or the time runs out.
func (r *rig) until(pr *proc, what string, cond func() bool) {
	r.t.Helper()
	end := time.Now().Add(time.Minute)
	for !cond() {
		if pr != nil && pr.exited() {
			r.t.Fatalf("pgmove ended (exit %d) before %s:\n%s", pr.code, what, pr)
		}
		if time.Now().After(end) {
			if pr != nil {
				pr.kill()
				r.t.Fatalf("timed out waiting for %s:\n%s\n%s", what, pr, r.activity())
			}
			r.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// activity describes what the sessions of both servers wait for.
func (r *rig) activity() string {
	var b strings.Builder
	for _, s := range []struct {
		name string
		srv  *pgserver.Server
	}{{"source", r.p.src}, {"target", r.p.dst}} {
		for _, row := range pgtest.QueryRows(r.t, s.srv, "postgres", `SELECT a.application_name || ' ' || a.state || ' ' || coalesce(a.wait_event_type || ':' || a.wait_event, '-') || ' ' ||
			coalesce((SELECT string_agg(l.locktype || ' ' || coalesce(l.relation::regclass::text, l.objid::text, '') || ' ' || l.mode || CASE WHEN l.granted THEN '' ELSE ' (waiting)' END, ', ')
			  FROM pg_locks l WHERE l.pid = a.pid AND l.locktype IN ('relation', 'object')), '') || ' ' || left(a.query, 120)
			FROM pg_stat_activity a WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid() AND a.state <> 'idle'`) {
			fmt.Fprintf(&b, "%s: %s\n", s.name, row[0])
		}
	}
	return b.String()
}

// settle waits (up to 10 s) until the killed pgmove's sessions are gone
// from both servers: a statement that waited on the test's lock runs to
// its end once the lock is released, client or not.
func (r *rig) settle() {
	r.t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		n := int64(0)
		for _, srv := range []*pgserver.Server{r.p.src, r.p.dst} {
			n += pgtest.QueryValue[int64](r.t, srv, "postgres", `SELECT count(*) FROM pg_catalog.pg_stat_activity
				WHERE backend_type = 'client backend' AND (application_name IN ('pg_dump', 'pg_restore')
				   OR (application_name LIKE 'pgmove/%' AND application_name <> 'pgmove/pgtest'))`)
		}
		if n == 0 {
			return
		}
	}
	r.t.Logf("sessions of the killed pgmove still there after 10 s:\n%s", r.activity())
}

// events reads the migration's journal.
func (r *rig) events() []state.Event {
	j, _ := state.Open(r.p.contextDir())
	evs, err := j.Events()
	if err != nil {
		r.t.Fatal(err)
	}
	return evs
}

// last returns the journal's last event of step, or nil.
func (r *rig) last(step string) *state.Event {
	evs := r.events()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Step == step {
			return &evs[i]
		}
	}
	return nil
}

func (r *rig) started(step string) bool {
	e := r.last(step)
	return e != nil && e.Status == state.Started
}

// gateCreatePub makes create-pub wait (an EXCLUSIVE lock on the source's
// gate: pg_dump's and check's ACCESS SHARE locks pass, CREATE PUBLICATION's
// SHARE UPDATE EXCLUSIVE does not) and returns once it waits: copy-schema
// is done then, so the target's tables exist.
func (r *rig) gateCreatePub(pr *proc, g *gate) {
	r.t.Helper()
	r.until(pr, "create-pub waiting for the source's lock on gate", func() bool {
		return r.started("create-pub") && waiting(r.t, r.p.src, "meta", "gate", "CREATE PUBLICATION")
	})
	_ = g
}

// gatePostData: past create-pub, the rest of the schema waits for a ROW
// EXCLUSIVE lock the test holds on the target's child: its COPY passes,
// it has no index to build, and its foreign key (SHARE ROW EXCLUSIVE),
// restored with the rest of the schema, waits.
func (r *rig) gatePostData(pr *proc) *gate {
	r.t.Helper()
	pub := r.hold(r.p.src, "meta", "LOCK TABLE gate IN EXCLUSIVE MODE")
	r.gateCreatePub(pr, pub)
	child := r.hold(r.p.dst, "test", "LOCK TABLE child IN ROW EXCLUSIVE MODE")
	pub.release()
	r.until(pr, "the rest of the schema waiting for the target's lock on child", func() bool {
		e := r.last("copy")
		return e != nil && e.Status == state.Done && waiting(r.t, r.p.dst, "test", "child", "FOREIGN KEY")
	})
	return child
}

// killCase lands a kill inside one step of migrate.
type killCase struct {
	step string // the step, as the README's fault table names it
	// journal is the journal step left "started" by the kill ("" for check,
	// which runs before the journal is opened).
	journal string
	// land starts holding locks before pgmove starts (pr is nil) or, called
	// again with pr, returns once pgmove waits inside the step.
	land func(r *rig, pr *proc)
	// says is what the rerun must say it resumed from, if anything.
	says string
}

var killCases = []killCase{
	{step: "check", land: func(r *rig, pr *proc) {
		// check reads every table's size (pg_table_size: ACCESS SHARE).
		g := r.hold(r.p.src, "meta", "LOCK TABLE gate IN ACCESS EXCLUSIVE MODE")
		r.until(pr, "check waiting for the source's lock on gate", func() bool {
			return len(r.events()) == 0 && waiting(r.t, r.p.src, "meta", "gate")
		})
		_ = g
	}},
	{step: "copy-schema", journal: "copy-schema", land: func(r *rig, pr *proc) {
		// The restore creates its tables in public: a transaction that
		// dropped the (empty) schema holds its lock, CREATE waits.
		r.hold(r.p.dst, "test", "DROP SCHEMA public CASCADE")
		r.until(pr, "copy-schema waiting for the target's lock on schema public", func() bool {
			if !r.started("copy-schema") {
				return false
			}
			return pgtest.QueryValue[int64](r.t, r.p.dst, "test", `SELECT count(*) FROM pg_catalog.pg_locks l
				WHERE NOT l.granted AND l.locktype = 'object' AND l.classid = 'pg_catalog.pg_namespace'::regclass`) > 0
		})
	}},
	{step: "create-pub", journal: "create-pub", land: func(r *rig, pr *proc) {
		r.gateCreatePub(pr, r.hold(r.p.src, "meta", "LOCK TABLE gate IN EXCLUSIVE MODE"))
	}},
	{step: "copy", journal: "copy", says: "interrupted and its snapshot is gone: restarting from a new slot", land: func(r *rig, pr *proc) {
		// EXCLUSIVE on the target's gate: the copy's size reads pass, its
		// COPY into gate waits, after big was loaded.
		pub := r.hold(r.p.src, "meta", "LOCK TABLE gate IN EXCLUSIVE MODE")
		r.gateCreatePub(pr, pub)
		r.hold(r.p.dst, "test", "LOCK TABLE gate IN EXCLUSIVE MODE")
		pub.release()
		r.until(pr, "the copy into gate waiting for the target's lock", func() bool {
			return r.started("copy") && waiting(r.t, r.p.dst, "test", "gate", "COPY ")
		})
	}},
	{step: "index builds (a small table's, during the copy)", journal: "copy", says: "interrupted and its snapshot is gone: restarting from a new slot", land: func(r *rig, pr *proc) {
		// ROW EXCLUSIVE on the target's gate: its COPY passes, its primary
		// key (ADD CONSTRAINT, ACCESS EXCLUSIVE), built beside the copy
		// workers, waits: the copy is not done, its snapshot dies.
		pub := r.hold(r.p.src, "meta", "LOCK TABLE gate IN EXCLUSIVE MODE")
		r.gateCreatePub(pr, pub)
		r.hold(r.p.dst, "test", "LOCK TABLE gate IN ROW EXCLUSIVE MODE")
		pub.release()
		r.until(pr, "gate's index build waiting for the target's lock", func() bool {
			return waiting(r.t, r.p.dst, "test", "gate", "PRIMARY KEY")
		})
	}},
	{step: "index builds (after the copy)", journal: "create-sub", says: "resuming at the index builds", land: func(r *rig, pr *proc) {
		// big is above --split-larger-than: loaded in ranges, its indexes
		// are built once the copy is done.
		pub := r.hold(r.p.src, "meta", "LOCK TABLE gate IN EXCLUSIVE MODE")
		r.gateCreatePub(pr, pub)
		r.hold(r.p.dst, "test", "LOCK TABLE big IN ROW EXCLUSIVE MODE")
		pub.release()
		r.until(pr, "big's index build waiting for the target's lock", func() bool {
			e := r.last("copy")
			return e != nil && e.Status == state.Done && waiting(r.t, r.p.dst, "test", "big", "PRIMARY KEY", "INDEX")
		})
	}},
	{step: "post-data", journal: "create-sub", says: "resuming at the index builds", land: func(r *rig, pr *proc) {
		r.gatePostData(pr)
	}},
	{step: "create-sub", journal: "create-sub", says: "created by an interrupted run, streams changes from the copy's consistent point", land: func(r *rig, pr *proc) {
		// CREATE SUBSCRIPTION opens every published table (ACCESS SHARE).
		child := r.gatePostData(pr)
		r.hold(r.p.dst, "test", "LOCK TABLE gate IN ACCESS EXCLUSIVE MODE")
		child.release()
		r.until(pr, "CREATE SUBSCRIPTION waiting for the target's lock on gate", func() bool {
			return waiting(r.t, r.p.dst, "test", "gate", "CREATE SUBSCRIPTION")
		})
	}},
	{step: "catch-up", journal: "catch-up", says: "resuming at the catch-up", land: func(r *rig, pr *proc) {
		// The apply of hot waits (EXCLUSIVE on the target's hot), and 2 MB
		// written on the source keep the lag above --max-lag 1MB.
		child := r.gatePostData(pr)
		r.hold(r.p.dst, "test", "LOCK TABLE hot IN EXCLUSIVE MODE")
		pgtest.Exec(r.t, r.p.src, "meta", "INSERT INTO hot (note) SELECT repeat('x', 200) FROM generate_series(1, 8000)")
		child.release()
		r.until(pr, "the catch-up waiting, the apply blocked on hot", func() bool {
			return r.started("catch-up") && waiting(r.t, r.p.dst, "test", "hot")
		})
		time.Sleep(500 * time.Millisecond)
	}},
}

// TestFaultMatrix kills pgmove inside each step of migrate, then reruns
// migrate: the end is an uninterrupted run's (finish). The steps after
// migrate (copy-seq, switchover, rollback, cleanup) are in
// TestFaultMatrixSwitch.
func TestFaultMatrix(t *testing.T) {
	r := newRig(t)
	for _, c := range killCases {
		t.Run(c.step, func(t *testing.T) {
			r.reset(t)
			pr := r.start(migrateArgs...)
			c.land(r, pr)
			pr.kill()
			if c.journal != "" {
				if e := r.last(c.journal); e == nil || e.Status != state.Started {
					t.Errorf("the journal after the kill in %s: last %q event %+v, want started", c.step, c.journal, e)
				}
			}
			r.releaseAll()
			r.settle()
			res := r.p.run(migrateArgs...)
			if res.code != 0 {
				t.Fatalf("the rerun after the kill in %s: %s", c.step, res)
			}
			if !strings.Contains(res.stdout, c.says) {
				t.Errorf("the rerun after the kill in %s did not say %q: %s", c.step, c.says, res)
			}
			if e := r.last("catch-up"); e == nil || e.Status != state.Done {
				t.Errorf("the journal after the rerun: catch-up %+v, want done", e)
			}
			r.finish()
		})
	}
}

// finish ends a case as a user would (writes stopped, lag 0, sequences
// copied, compared, cleaned up) and checks, independently of pgmove, that
// the target holds the source's rows and sequences, every row the writer
// was told committed, nothing twice, and that nothing of pgmove is left.
func (r *rig) finish() {
	t := r.t
	t.Helper()
	time.Sleep(200 * time.Millisecond)
	r.writer.stop()
	r.p.must("progress", "--wait", "--timeout", "2m")
	r.p.must("copy-seq")
	if res := r.p.run("compare", "--checksum"); res.code != 0 {
		t.Errorf("compare --checksum: %s", res)
	}
	r.sameContent()
	if lost := r.writer.missing(t, r.p.dst, "test"); len(lost) > 0 {
		t.Errorf("%d acknowledged row(s) of hot missing on the target (first %d)", len(lost), lost[0])
	}
	if len(r.writer.acked) == 0 {
		t.Error("the writer committed nothing")
	}
	for _, tbl := range faultTables {
		if dup := pgtest.QueryValue[int64](t, r.p.dst, "test", "SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT * FROM "+tbl+") d) FROM "+tbl); dup != 0 {
			t.Errorf("%d row(s) of %s twice on the target", dup, tbl)
		}
	}
	srcLast := pgtest.QueryValue[int64](t, r.p.src, "meta", "SELECT last_value FROM hot_id_seq")
	if next := pgtest.QueryValue[int64](t, r.p.dst, "test", "SELECT nextval('hot_id_seq')"); next <= srcLast {
		t.Errorf("the target's hot_id_seq is not ahead: next %d, source last %d", next, srcLast)
	}
	r.p.must("cleanup")
	if left := r.p.objectsLeft(); len(left) > 0 {
		t.Errorf("cleanup left %v", left)
	}
	if n := pgtest.QueryValue[int64](t, r.p.dst, "test", "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgmove'"); n != 0 {
		t.Error("cleanup left the target's pgmove schema")
	}
	t.Logf("%d commit(s) acknowledged during the case, %d failed", len(r.writer.acked), len(r.writer.failed))
}

// sameContent compares the source and the target by fixture.Snapshot's
// digests (every table's rows, every sequence's next value, large objects,
// materialized views), not by pgmove's compare. The target's sequences may
// be ahead (next-seq), never behind: here they must be equal.
func (r *rig) sameContent() {
	t := r.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ss, err := fixture.Snapshot(ctx, pgtest.Connect(t, r.p.src, "meta"))
	if err != nil {
		t.Fatal(err)
	}
	ds, err := fixture.Snapshot(ctx, pgtest.Connect(t, r.p.dst, "test"))
	if err != nil {
		t.Fatal(err)
	}
	if diffs := fixture.Differences(ss, ds); len(diffs) > 0 {
		t.Errorf("the target differs from the source:\n%s", strings.Join(diffs, "\n"))
	}
	if _, ok := ss[`table "public"."big"`]; !ok {
		t.Errorf("the snapshot has no table public.big: %v", ss)
	}
}

// TestFaultMatrixSwitch kills pgmove inside the steps after migrate:
// copy-seq (waiting to refresh a materialized view the test reads on the
// target), switchover and rollback (inside the pause, after the switch:
// their --switch-hook sleeps the first time), and cleanup (waiting to drop
// the copy ledger, which the test reads); each time the same command is
// run again and must finish the step.
func TestFaultMatrixSwitch(t *testing.T) {
	r := newRig(t)
	r.reset(t)
	r.p.must(migrateArgs...)
	time.Sleep(300 * time.Millisecond)
	// The switch starts with the application stopped (--fence none).
	r.writer.stop()
	r.p.must("progress", "--wait", "--timeout", "2m")

	// Unpopulated until copy-seq refreshes it (no SELECT), and no LOCK
	// TABLE on a materialized view: parsing a query on it takes ACCESS
	// SHARE until the transaction ends.
	r.hold(r.p.dst, "test", "PREPARE fault_gate AS SELECT * FROM big_summary")
	pr := r.start("copy-seq")
	r.until(pr, "copy-seq waiting to refresh big_summary on the target", func() bool {
		return r.started("copy-seq") && waiting(t, r.p.dst, "test", "big_summary", "REFRESH")
	})
	pr.kill()
	r.killed("copy-seq")
	r.releaseAll()
	r.settle()
	r.p.must("copy-seq")
	r.sameContent()

	for _, c := range []struct {
		cmd          string
		primaryIsSrc bool // after the command
		writeOn      *pgserver.Server
		writeDB      string
	}{
		{cmd: "switchover", primaryIsSrc: false, writeOn: r.p.dst, writeDB: "test"},
		{cmd: "rollback", primaryIsSrc: true, writeOn: r.p.src, writeDB: "meta"},
	} {
		mark := filepath.Join(t.TempDir(), "hooked")
		hook := fmt.Sprintf("if [ -e %[1]s ]; then exit 0; fi; touch %[1]s; exec sleep 60", mark)
		args := []string{c.cmd, "--fence", "none", "--max-pause", "30s", "--switch-hook", hook}
		pr := r.start(args...)
		r.until(pr, c.cmd+" running its --switch-hook", func() bool {
			_, err := os.Stat(mark)
			return err == nil
		})
		pr.kill()
		r.killed(c.cmd)
		res := r.p.must(args...)
		if !strings.Contains(res.stdout, "finished it") {
			t.Errorf("the rerun of %s did not say it finished the switch: %s", c.cmd, res)
		}
		// The application writes where it now points; the way back (or
		// forth) carries every acknowledged row to the other side.
		w := startAppWriter(t, c.writeOn.DSN(c.writeDB), "hot", 10*time.Millisecond)
		time.Sleep(time.Second)
		w.stop()
		waitEqual(t, r.p, "hot", c.primaryIsSrc)
		other, otherDB := r.p.src, "meta"
		if c.primaryIsSrc {
			other, otherDB = r.p.dst, "test"
		}
		if len(w.acked) == 0 || len(w.failed) > 0 {
			t.Errorf("after %s: %d commit(s) on the new primary, %d failed", c.cmd, len(w.acked), len(w.failed))
		}
		if lost := w.missing(t, other, otherDB); len(lost) > 0 {
			t.Errorf("after %s: %d acknowledged row(s) missing on the other side (first %d)", c.cmd, len(lost), lost[0])
		}
	}
	r.p.must("progress", "--wait", "--timeout", "2m")
	r.p.must("copy-seq")
	r.sameContent()

	r.hold(r.p.dst, "test", "SELECT count(*) FROM pgmove.load")
	pr = r.start("cleanup")
	r.until(pr, "cleanup waiting to drop the copy ledger", func() bool {
		return r.started("cleanup") && waiting(t, r.p.dst, "test", "pgmove.load")
	})
	pr.kill()
	r.killed("cleanup")
	r.releaseAll()
	r.settle()
	r.p.must("cleanup")
	if left := r.p.objectsLeft(); len(left) > 0 {
		t.Errorf("cleanup left %v", left)
	}
	if n := pgtest.QueryValue[int64](t, r.p.dst, "test", "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgmove'"); n != 0 {
		t.Error("cleanup left the target's pgmove schema")
	}
	if e := r.last("cleanup"); e == nil || e.Status != state.Done {
		t.Errorf("the journal after the rerun: cleanup %+v, want done", e)
	}
}

// killed checks the journal after a kill inside step: the step started
// and did not end.
func (r *rig) killed(step string) {
	r.t.Helper()
	if e := r.last(step); e == nil || e.Status != state.Started {
		r.t.Errorf("the journal after the kill in %s: last event %+v, want started", step, e)
	}
}

// TestServerFaults restarts a server, or ends the walsender, while pgmove
// copies or while changes stream, with a writer committing rows: a copy
// cut short fails with the way out (or recovers by itself) and the rerun
// of migrate ends equal; streaming needs nothing from the user.
func TestServerFaults(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		copy   bool
		strike func(t *testing.T)
	}{
		{"source restarts during the copy", true, func(t *testing.T) {
			if err := r.p.src.Restart(ctx, nil); err != nil {
				t.Fatal(err)
			}
		}},
		{"target restarts during the copy", true, func(t *testing.T) {
			if err := r.p.dst.Restart(ctx, nil); err != nil {
				t.Fatal(err)
			}
		}},
		{"target restarts during streaming", false, func(t *testing.T) {
			if err := r.p.dst.Restart(ctx, nil); err != nil {
				t.Fatal(err)
			}
		}},
		{"source restarts during streaming", false, func(t *testing.T) {
			if err := r.p.src.Restart(ctx, nil); err != nil {
				t.Fatal(err)
			}
		}},
		{"walsender terminated during streaming", false, func(t *testing.T) {
			n := pgtest.QueryValue[int64](t, r.p.src, "meta", `SELECT count(*) FROM (SELECT pg_terminate_backend(pid)
				FROM pg_stat_replication WHERE application_name = 'sub_pg_meta_meta') t`)
			if n != 1 {
				t.Fatalf("%d walsender(s) of the subscription ended, want 1", n)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r.reset(t)
			if !c.copy {
				r.p.must(migrateArgs...)
				time.Sleep(300 * time.Millisecond)
				c.strike(t)
				time.Sleep(time.Second)
				r.finish()
				return
			}
			pr := r.start(migrateArgs...)
			pub := r.hold(r.p.src, "meta", "LOCK TABLE gate IN EXCLUSIVE MODE")
			r.gateCreatePub(pr, pub)
			r.hold(r.p.dst, "test", "LOCK TABLE gate IN EXCLUSIVE MODE")
			pub.release()
			r.until(pr, "the copy into gate waiting for the target's lock", func() bool {
				return r.started("copy") && waiting(t, r.p.dst, "test", "gate", "COPY ")
			})
			c.strike(t)
			r.releaseAll()
			<-pr.done
			// The copy's snapshot died with the server's sessions: exit 1
			// (a server restart is no usage error), with the way out.
			if pr.code != ExitError || !strings.Contains(pr.err.String(), "rerun to copy again from a new slot") {
				t.Errorf("migrate after the fault: exit %d, want 1 and the way out:\n%s", pr.code, pr)
			}
			res := r.p.run(migrateArgs...)
			if res.code != 0 || !strings.Contains(res.stdout, "restarting from a new slot") {
				t.Fatalf("the rerun after the fault: %s", res)
			}
			r.finish()
		})
	}
}

// TestServerStartingIsNoUsageError: a server restarting says "retry when it
// accepts connections", which the check for cobra's argument errors took
// for one of theirs ("accepts 1 arg(s), received 2"): exit 2 instead of 1.
func TestServerStartingIsNoUsageError(t *testing.T) {
	if isCobraUsage(fmt.Errorf("target: the server at 127.0.0.1:5432 is starting up or shutting down; retry when it accepts connections")) {
		t.Error("a server starting up is taken for a usage error")
	}
	if !isCobraUsage(fmt.Errorf("accepts 0 arg(s), received 1")) {
		t.Error("cobra's argument count error is no longer a usage error")
	}
}

// TestNetworkCut cuts the network between pgmove and the source for 30 s
// during the copy: pgmove runs in a network namespace of the test's, joined
// to the host by one veth pair per server (10.231.7.0/24 to the source,
// 10.231.8.0/24 to the target, addresses that exist on this host only), and
// the source's pair goes down. The servers reach each other on the host, not
// through the pairs.
func TestNetworkCut(t *testing.T) {
	ns := fmt.Sprintf("pgmv%d", os.Getpid()%100000)
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("/usr/sbin/ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("/usr/sbin/ip", "netns", "del", ns).Run() })
	for i, side := range []string{"s", "d"} {
		host, peer := ns+side+"h", ns+side+"p"
		ip("link", "add", host, "type", "veth", "peer", "name", peer)
		t.Cleanup(func() { _ = exec.Command("/usr/sbin/ip", "link", "del", host).Run() })
		ip("link", "set", peer, "netns", ns)
		ip("addr", "add", fmt.Sprintf("10.231.%d.1/24", 7+i), "dev", host)
		ip("link", "set", host, "up")
		ip("-n", ns, "addr", "add", fmt.Sprintf("10.231.%d.2/24", 7+i), "dev", peer)
		ip("-n", ns, "link", "set", peer, "up")
	}
	ip("-n", ns, "link", "set", "lo", "up")
	listen := func(addr string) func(*pgserver.Options) {
		return func(o *pgserver.Options) {
			if o.Settings == nil {
				o.Settings = map[string]string{}
			}
			o.Settings["listen_addresses"] = "127.0.0.1," + addr
			o.HBA = append(o.HBA, "host all all 10.231.0.0/16 scram-sha-256")
		}
	}
	p := &pair{t: t}
	p.src = pgtest.Start(t, 15, listen("10.231.7.1"))
	p.dst = pgtest.Start(t, 17, listen("10.231.8.1"))
	pgtest.CreateDB(t, p.src, "meta")
	pgtest.CreateDB(t, p.dst, "test")
	pgtest.Exec(t, p.src, "meta", fmt.Sprintf("CREATE ROLE replicator LOGIN REPLICATION BYPASSRLS PASSWORD '%s'", pgtest.Password()))
	pw := strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(pgtest.Password())
	pass := filepath.Join(t.TempDir(), ".pgpass")
	if err := os.WriteFile(pass, []byte("*:*:*:*:"+pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGPASSFILE", pass)
	p.dir = t.TempDir()
	p.config = filepath.Join(p.dir, "migration.yml")
	yml := fmt.Sprintf("src_cls: pg-meta\nsrc_db: meta\nsrc_ip: 10.231.7.1\nsrc_port: %d\ndst_cls: pg-test\ndst_db: test\ndst_ip: 10.231.8.1\ndst_port: %d\n"+
		"pg_admin_username: postgres\npg_replication_username: replicator\nmigration_context_dir: %s\n", p.src.Port, p.dst.Port, filepath.Join(p.dir, "migration"))
	if err := os.WriteFile(p.config, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRigFor(t, p)
	r.wrap = []string{"/usr/sbin/ip", "netns", "exec", ns}
	r.reset(t)

	pr := r.start(migrateArgs...)
	pub := r.hold(r.p.src, "meta", "LOCK TABLE gate IN EXCLUSIVE MODE")
	r.gateCreatePub(pr, pub)
	r.hold(r.p.dst, "test", "LOCK TABLE gate IN EXCLUSIVE MODE")
	pub.release()
	r.until(pr, "the copy into gate waiting for the target's lock", func() bool {
		return r.started("copy") && waiting(t, r.p.dst, "test", "gate", "COPY ")
	})
	ip("-n", ns, "link", "set", ns+"sp", "down")
	r.releaseAll()
	cut := time.Now()
	time.Sleep(30 * time.Second)
	ip("-n", ns, "link", "set", ns+"sp", "up")
	select {
	case <-pr.done:
	case <-time.After(3 * time.Minute):
		pr.kill()
		t.Fatalf("migrate did not end within 3 minutes of the network's return:\n%s", pr)
	}
	t.Logf("migrate after a 30 s cut to the source: exit %d after %s\n%s", pr.code, time.Since(cut).Round(time.Second), pr)
	if pr.code != 0 {
		res := r.p.run(migrateArgs...)
		if res.code != 0 {
			t.Fatalf("the rerun after the cut: %s", res)
		}
	}
	r.finish()
}
