package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/pgtest"
)

// replicationState lists, on one server, what a switchover creates or
// changes: slots, publications and their tables, subscriptions (enabled,
// slot, synchronous_commit), replication origins, and the roles' LOGIN.
func replicationState(t *testing.T, s *pgserver.Server, db string) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		"SELECT 'slot ' || slot_name || ' ' || slot_type || ' ' || coalesce(database, '') FROM pg_catalog.pg_replication_slots ORDER BY 1",
		"SELECT 'publication ' || p.pubname || ' ' || (SELECT count(*) FROM pg_catalog.pg_publication_rel r WHERE r.prpubid = p.oid) FROM pg_catalog.pg_publication p ORDER BY 1",
		"SELECT 'subscription ' || subname || ' ' || subenabled || ' ' || coalesce(subslotname, '-') || ' ' || subsynccommit FROM pg_catalog.pg_subscription ORDER BY 1",
		"SELECT 'origin ' || roname FROM pg_catalog.pg_replication_origin ORDER BY 1",
		"SELECT 'role ' || rolname || ' ' || rolcanlogin FROM pg_catalog.pg_roles WHERE rolname !~ '^pg_' ORDER BY 1",
	} {
		for _, row := range pgtest.QueryRows(t, s, db, q) {
			b.WriteString(row[0].(string) + "\n")
		}
	}
	return b.String()
}

// TestPlanSwitchoverDryRun runs the plan's switchover and rollback scripts
// with --dry-run on a migrated pair behind a real pgbouncer: the switchover's
// shows the pause's statements with migration.yml's settings (flags given to
// the script win), the rollback's is refused before any switchover, and
// neither changes anything: no slot, publication or subscription made or
// altered, pgbouncer not paused, its ini untouched, the hook not run.
func TestPlanSwitchoverDryRun(t *testing.T) {
	p := newPair(t, 15, 16)
	bin := buildPgmove(t)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE orders (id bigserial PRIMARY KEY, note text);
		INSERT INTO orders (note) SELECT 'n' || g FROM generate_series(1, 100) g;
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
	p.must("migrate")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := pgserver.StartPgBouncer(ctx, pgserver.BouncerOptions{Name: "plan-dry-run",
		Databases: map[string]string{"meta": fmt.Sprintf("host=127.0.0.1 port=%d dbname=meta", p.src.Port)},
		User:      "postgres", Password: pgtest.Password()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	hookRan := filepath.Join(p.dir, "hook ran")
	p.writeConfig(fmt.Sprintf("pgbouncer: [ %s ]\npgbouncer_ini: %s\nmax_pause: 1500ms\nswitch_hook: %s\n",
		strconv.Quote(b.AdminURL("postgres")), strconv.Quote(b.INI), strconv.Quote("touch '"+hookRan+"'")))
	p.must("plan", "--pgmove", bin)
	dir := filepath.Join(p.dir, "migration", "pg-meta.meta")
	ini, err := os.ReadFile(b.INI)
	if err != nil {
		t.Fatal(err)
	}
	src, dst := replicationState(t, p.src, "meta"), replicationState(t, p.dst, "test")
	unchanged := func(after string) {
		t.Helper()
		if got := replicationState(t, p.src, "meta"); got != src {
			t.Errorf("after %s the source changed:\n%s\nwas:\n%s", after, got, src)
		}
		if got := replicationState(t, p.dst, "test"); got != dst {
			t.Errorf("after %s the target changed:\n%s\nwas:\n%s", after, got, dst)
		}
		if now, _ := os.ReadFile(b.INI); !bytes.Equal(now, ini) {
			t.Errorf("after %s pgbouncer.ini changed:\n%s", after, now)
		}
		if _, err := os.Stat(hookRan); err == nil {
			t.Errorf("after %s the switch hook had run", after)
		}
	}

	r := mustScript(t, dir, "./switchover --dry-run")
	route := fmt.Sprintf("-- %s: entry meta = host=127.0.0.1 port=%d dbname=test, then RELOAD", b.INI, p.dst.Port)
	for _, want := range []string{
		`pub_pg_meta_meta_reverse`, // the way back, prepared before the pause
		"-- the pause (at most 1.5s):",
		fmt.Sprintf(`-- pgbouncer host=127.0.0.1 port=%d dbname=pgbouncer user=postgres sslmode=disable: PAUSE "meta";`, b.Port),
		"wait until slot sub_pg_meta_meta confirms the fence LSN",
		`ALTER SUBSCRIPTION "sub_pg_meta_meta" DISABLE;`,
		route,
		"-- run --switch-hook: touch '" + hookRan + "'",
		`-- pgbouncer: RESUME "meta";`,
		"switchover: --dry-run: nothing changed",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("./switchover --dry-run lacks %q:\n%s", want, r)
		}
	}
	if i, j := strings.Index(r.stdout, `PAUSE "meta"`), strings.Index(r.stdout, `RESUME "meta"`); i < 0 || j < i {
		t.Errorf("PAUSE should come before RESUME:\n%s", r.stdout)
	}
	unchanged("./switchover --dry-run")

	// Flags given to the script win over migration.yml's settings.
	r = mustScript(t, dir, "./switchover -n --fence none --max-pause 700ms")
	if !strings.Contains(r.stdout, "-- the pause (at most 700ms):") || !strings.Contains(r.stdout, "-- no fence: the application's writes must have stopped") || strings.Contains(r.stdout, "PAUSE") {
		t.Errorf("./switchover -n --fence none --max-pause 700ms:\n%s", r)
	}
	unchanged("./switchover -n --fence none")

	// No switchover yet: no way back to roll back through.
	r = script(t, dir, "./rollback --dry-run")
	if r.code != ExitError || !strings.Contains(r.stdout, `source: subscription "sub_pg_meta_meta_reverse" does not exist: the rollback needs it streaming`) {
		t.Errorf("./rollback --dry-run before any switchover should be refused: %s", r)
	}
	unchanged("./rollback --dry-run")

	// Without -y and without a terminal it shows the statements and stops.
	if r := script(t, dir, "./switchover"); r.code != ExitUsage || !strings.Contains(r.stderr, "nothing changed") || !strings.Contains(r.stdout, `PAUSE "meta"`) {
		t.Errorf("./switchover without -y and without a terminal: %s", r)
	}
	unchanged("./switchover without -y")

	// pgbouncer is not paused: the application writes through it, and the
	// forward replication still carries its rows.
	cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://postgres@127.0.0.1:%d/meta?sslmode=disable", b.Port))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	app, err := pgx.ConnectConfig(wctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.Background())
	if _, err := app.Exec(wctx, "INSERT INTO orders (note) VALUES ('after the dry runs')"); err != nil {
		t.Fatalf("write through pgbouncer after the dry runs: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM orders WHERE note = 'after the dry runs'") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the row written after the dry runs did not reach the target")
		}
		time.Sleep(100 * time.Millisecond)
	}
	logged, _ := os.ReadFile(filepath.Join(dir, "log", "switchover.log"))
	if !strings.Contains(string(logged), "pgmove switchover --dry-run") || !strings.Contains(string(logged), `PAUSE "meta"`) {
		t.Errorf("log/switchover.log lacks the dry run:\n%s", logged)
	}
	assertNoPassword(t, dir)
}

// TestPlanSwitchoverOddNames: a cluster and databases named with spaces and
// quotes, a context directory with spaces, application roles with odd
// names: the migration runs, and the plan's switchover script passes them
// all to pgmove intact, which quotes each in the statements it shows.
func TestPlanSwitchoverOddNames(t *testing.T) {
	p := newPair(t, 15, 15)
	bin := buildPgmove(t)
	const srcDB, dstDB = `meta "odd" db's`, `test db's`
	pgtest.CreateDB(t, p.src, srcDB)
	pgtest.CreateDB(t, p.dst, dstDB)
	pgtest.Exec(t, p.src, srcDB, `CREATE TABLE "Order Lines" (id bigserial PRIMARY KEY, note text);
		INSERT INTO "Order Lines" (note) SELECT 'n' || g FROM generate_series(1, 50) g;
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator;
		CREATE ROLE "app rw" LOGIN; CREATE ROLE "o'brien" LOGIN`)
	q := strconv.Quote
	yml := fmt.Sprintf(`src_cls: %s
src_db: %s
src_ip: 127.0.0.1
src_port: %d
dst_cls: pg-test
dst_db: %s
dst_ip: 127.0.0.1
dst_port: %d
pg_admin_username: postgres
pg_replication_username: replicator
migration_context_dir: %s
fence: database
app_roles: [ "app rw", "o'brien" ]
`, q(`pg meta's "blue"`), q(srcDB), p.src.Port, q(dstDB), p.dst.Port, q(filepath.Join(p.dir, "my migrations")))
	if err := os.WriteFile(p.config, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	p.must("migrate")
	p.must("plan", "--pgmove", bin)
	dir := filepath.Join(p.dir, "my migrations", `pg meta's "blue".`+srcDB)
	if _, err := os.Stat(filepath.Join(dir, "switchover")); err != nil {
		t.Fatal(err)
	}
	src, dst := replicationState(t, p.src, srcDB), replicationState(t, p.dst, dstDB)

	r := mustScript(t, dir, `./switchover --dry-run && printf '%s|%s|%s\n' "$SRCCLS" "$SRCDB" "$DSTDB"`)
	for _, want := range []string{
		"-- the pause (at most 2s):",
		`-- source: ALTER ROLE "app rw" NOLOGIN;`,
		`-- source: ALTER ROLE "o'brien" NOLOGIN;`,
		`pg_stat_activity WHERE usename IN ('app rw', 'o''brien');`,
		`ALTER SUBSCRIPTION "sub_pg_meta_s__blue__meta__odd__db_s" DISABLE;`,
		"switchover: --dry-run: nothing changed",
		`pg meta's "blue"|` + srcDB + "|" + dstDB + "\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("./switchover --dry-run lacks %q:\n%s", want, r)
		}
	}
	if got := replicationState(t, p.src, srcDB); got != src {
		t.Errorf("the source changed:\n%s\nwas:\n%s", got, src)
	}
	if got := replicationState(t, p.dst, dstDB); got != dst {
		t.Errorf("the target changed:\n%s\nwas:\n%s", got, dst)
	}
	assertNoPassword(t, dir)
}

// TestPlanSwitchoverScripts runs the plan's switchover and rollback scripts
// for real (-y) on a 16 -> 17 pair while an application writes through
// pgbouncer every 10 ms: the traffic goes to the target and back, no commit
// fails or is lost, and ./cleanup then leaves no replication object on
// either side.
func TestPlanSwitchoverScripts(t *testing.T) {
	p := newPair(t, 16, 17)
	bin := buildPgmove(t)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE probe (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), note text);
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
	p.must("migrate")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := pgserver.StartPgBouncer(ctx, pgserver.BouncerOptions{Name: "plan-scripts",
		Databases: map[string]string{"meta": fmt.Sprintf("host=127.0.0.1 port=%d dbname=meta", p.src.Port)},
		User:      "postgres", Password: pgtest.Password()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("pgbouncer log:\n%s", b.LogTail(30))
		}
		b.Stop()
	}()
	p.writeConfig(fmt.Sprintf("pgbouncer: [ %s ]\npgbouncer_ini: %s\n", strconv.Quote(b.AdminURL("postgres")), strconv.Quote(b.INI)))
	p.must("plan", "--pgmove", bin)
	dir := filepath.Join(p.dir, "migration", "pg-meta.meta")
	probe := startAppWriter(t, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/meta?sslmode=disable", b.Port), "probe", 10*time.Millisecond)
	defer probe.stop()
	time.Sleep(500 * time.Millisecond)

	r := mustScript(t, dir, "./switchover -y")
	if !strings.Contains(r.stdout, "switchover: done: the application was paused") {
		t.Fatalf("./switchover -y: %s", r)
	}
	time.Sleep(500 * time.Millisecond)
	t.Logf("./switchover: %s; the probe's longest gap between commits %s", lastLine(r.stdout, "switchover: done"), probe.gapSince())
	if got := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM probe WHERE at > now() - interval '400 ms'"); got == 0 {
		t.Fatal("the application's writes do not reach the target after ./switchover")
	}
	waitEqual(t, p, "probe", false)

	r = mustScript(t, dir, "./rollback -y")
	if !strings.Contains(r.stdout, "rollback: done: the application was paused") {
		t.Fatalf("./rollback -y: %s", r)
	}
	time.Sleep(500 * time.Millisecond)
	t.Logf("./rollback: %s; the probe's longest gap between commits %s", lastLine(r.stdout, "rollback: done"), probe.gapSince())
	if got := pgtest.QueryValue[int64](t, p.src, "meta", "SELECT count(*) FROM probe WHERE at > now() - interval '400 ms'"); got == 0 {
		t.Fatal("the application's writes do not reach the source after ./rollback")
	}
	waitEqual(t, p, "probe", true)
	probe.stop()
	waitEqual(t, p, "probe", true)
	if len(probe.failed) > 0 {
		t.Errorf("%d commits failed, first: %s", len(probe.failed), probe.failed[0])
	}
	for _, side := range []struct {
		s  *pgserver.Server
		db string
	}{{p.src, "meta"}, {p.dst, "test"}} {
		if lost := probe.missing(t, side.s, side.db); len(lost) > 0 {
			t.Errorf("%s lacks %d acknowledged rows: %v", side.db, len(lost), lost)
		}
	}
	t.Logf("%d commits acknowledged, 0 lost", len(probe.acked))

	mustScript(t, dir, "./cleanup -y")
	for _, side := range []struct {
		s  *pgserver.Server
		db string
	}{{p.src, "meta"}, {p.dst, "test"}} {
		if left := pgtest.QueryRows(t, side.s, side.db, everything); len(left) > 0 {
			t.Errorf("./cleanup left on %s: %v", side.db, left)
		}
	}
	assertNoPassword(t, dir)
}

// lastLine is the last line of out that starts with prefix.
func lastLine(out, prefix string) string {
	found := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			found = l
		}
	}
	return found
}
