package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgmove/pgmove/internal/sandbox"
)

// TestSandboxSwitchover is make demo's path: the sandbox with its pgbouncer,
// the load writing through it, migrate, then a switchover read from the
// sandbox's migration.yml alone (its pgbouncer keys) under that load. The
// load sees a short wait, no failure, and every row it committed is on both
// servers; its writes land on pg-test after the switch; sandbox down leaves
// no pgbouncer running.
func TestSandboxSwitchover(t *testing.T) {
	// Under /var/tmp, which the postgres OS user reaches when we are root.
	parent, err := os.MkdirTemp("/var/tmp", "pgmove-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "sandbox")
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(dir, "sandbox.json")); err == nil {
			pgmove(t, "sandbox", "--dir", dir, "down")
		}
		os.RemoveAll(parent)
	})
	r := pgmove(t, "sandbox", "--dir", dir, "up", "--scale", "1")
	if r.code != 0 {
		t.Fatalf("sandbox up: %s", r)
	}
	if !regexp.MustCompile(`pgbouncer +127\.0\.0\.1:\d+ +database meta -> pg-meta \(transaction pooling`).MatchString(r.stdout) {
		t.Fatalf("sandbox up does not name its pgbouncer: %s", r)
	}
	st, err := sandbox.ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.PgBouncer == nil {
		t.Fatal("sandbox.json has no pgbouncer")
	}
	t.Setenv("PGPASSFILE", sandbox.PassFilePath(dir))
	cfg := sandbox.ConfigPath(dir)
	yml, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{fmt.Sprintf("pgbouncer: [ postgres://dbuser_dba@127.0.0.1:%d/pgbouncer ]", st.PgBouncer.Port),
		"pgbouncer_ini: " + st.PgBouncer.INI, "pgbouncer_db: meta"} {
		if !strings.Contains(string(yml), want) {
			t.Fatalf("migration.yml lacks %q:\n%s", want, yml)
		}
	}
	c := func(args ...string) result {
		t.Helper()
		r := pgmove(t, append([]string{"-c", cfg}, args...)...)
		if r.code != 0 {
			t.Fatalf("pgmove %s: %s", strings.Join(args, " "), r)
		}
		return r
	}
	c("check-replica-identity-solution", "--apply")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loaded := make(chan result, 1)
	go func() {
		loaded <- pgmoveCtx(t, ctx, "sandbox", "--dir", dir, "load", "--rate", "100", "--verify")
	}()
	time.Sleep(time.Second)
	c("migrate")
	r = c("switchover")
	if !strings.Contains(r.stdout, "switchover: done: the application was paused") {
		t.Fatalf("switchover: %s", r)
	}
	switched := time.Now()
	time.Sleep(1500 * time.Millisecond)
	cancel()
	load := <-loaded
	t.Logf("switchover: %s\n%s", strings.TrimSpace(r.stdout), strings.TrimSpace(load.stdout))
	if load.code != 0 {
		t.Fatalf("sandbox load: %s", load)
	}
	m := regexp.MustCompile(`load: (\d+) transaction\(s\) through pgbouncer .*, 0 failed; the longest wait between two commits of a session: (\d+) ms`).FindStringSubmatch(load.stdout)
	if m == nil {
		t.Fatalf("the load through pgbouncer failed commits: %s", load)
	}
	if gap, _ := strconv.Atoi(m[2]); gap > 2000 {
		t.Errorf("the load waited %d ms between two commits, over --max-pause", gap)
	}
	if !regexp.MustCompile(`load: [1-9]\d* acknowledged event row\(s\) checked on both servers: 0 lost \(pg-meta 0, pg-test 0\)`).MatchString(load.stdout) {
		t.Fatalf("the load's rows are not all on both servers: %s", load)
	}

	// The application's writes went to pg-test after the switch: pgbouncer
	// was pointed there.
	ini, err := os.ReadFile(st.PgBouncer.INI)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("port=%d", st.Dst.Port); !strings.Contains(string(ini), want) {
		t.Fatalf("pgbouncer.ini does not point at pg-test (%s):\n%s", want, ini)
	}
	conn, err := sandbox.Connect(context.Background(), dir, st.Dst)
	if err != nil {
		t.Fatal(err)
	}
	var after int64
	err = conn.QueryRow(context.Background(), "SELECT count(*) FROM pgbench_events WHERE at > $1", switched.Add(200*time.Millisecond)).Scan(&after)
	conn.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if after == 0 {
		t.Fatal("no row written on pg-test after the switchover")
	}
	c("compare", "--checksum")

	pidText, err := os.ReadFile(filepath.Join(st.PgBouncer.Dir, "pgbouncer.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil {
		t.Fatal(err)
	}
	if r := pgmove(t, "sandbox", "--dir", dir, "down"); r.code != 0 {
		t.Fatalf("sandbox down: %s", r)
	}
	// Gone, or a zombie that init has yet to reap.
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 && f[0] != "Z" && f[0] != "X" &&
			strings.Contains(string(stat), "(pgbouncer)") {
			t.Fatalf("pgbouncer (pid %d) still runs after sandbox down: %s", pid, stat)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("sandbox down left %s: %v", dir, err)
	}
}
