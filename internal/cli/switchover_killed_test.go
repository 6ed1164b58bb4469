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

	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/pgtest"
)

// TestSwitchoverKilled kills pgmove (SIGKILL) inside the pause, after the
// switch (its --switch-hook sleeps), with the application paused in
// pgbouncer: the rerun finishes the switch and says so, pgbouncer resumes
// towards the target, and every acknowledged row is on both sides, once.
func TestSwitchoverKilled(t *testing.T) {
	p := newPair(t, 14, 16)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE probe (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), note text);
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
	p.must("migrate")
	bin := filepath.Join(t.TempDir(), "pgmove")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/pgmove/pgmove/cmd/pgmove").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := pgserver.StartPgBouncer(ctx, pgserver.BouncerOptions{Name: "switchover-killed",
		Databases: map[string]string{"meta": fmt.Sprintf("host=127.0.0.1 port=%d dbname=meta", p.src.Port)},
		User:      "postgres", Password: pgtest.Password()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	app := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/meta?sslmode=disable", b.Port)
	probe := startAppWriter(t, app, "probe", 5*time.Millisecond)
	defer probe.stop()
	time.Sleep(time.Second)

	// The hook sleeps the first time only: the rerun runs it again.
	mark := filepath.Join(t.TempDir(), "hooked")
	hook := fmt.Sprintf("if [ -e %[1]s ]; then exit 0; fi; touch %[1]s; exec sleep 60", mark)
	flags := []string{"--pgbouncer", b.AdminURL("postgres"), "--pgbouncer-ini", b.INI, "--switch-hook", hook, "--max-pause", "30s"}
	cmd := exec.Command(bin, append([]string{"-c", p.config, "switchover"}, flags...)...)
	cmd.Env = os.Environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(30 * time.Second); ; {
		if _, err := os.Stat(mark); err == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the switchover did not reach its hook")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Kill pgmove and its sleeping hook, inside the pause.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Wait()
	before := len(probe.acked)
	time.Sleep(300 * time.Millisecond)
	if n := len(probe.acked); n != before {
		t.Fatalf("the application wrote (%d commits) while pgmove was killed inside the pause", n-before)
	}

	r := p.must(append([]string{"switchover"}, flags...)...)
	if !strings.Contains(r.stdout, "had switched the replication: finished it") {
		t.Errorf("the rerun did not say it finished the switch: %s", r)
	}
	time.Sleep(time.Second)
	if got := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM probe WHERE at > now() - interval '500 ms'"); got == 0 {
		t.Fatal("the application's writes do not reach the target after the rerun")
	}
	waitEqual(t, p, "probe", false)
	probe.stop()
	waitEqual(t, p, "probe", false)
	t.Logf("%d commits acknowledged, %d failed, longest gap %s", len(probe.acked), len(probe.failed), probe.gapSince())
	for _, s := range []struct {
		srv *pgserver.Server
		db  string
	}{{p.src, "meta"}, {p.dst, "test"}} {
		if lost := probe.missing(t, s.srv, s.db); len(lost) > 0 {
			t.Errorf("%d acknowledged row(s) missing on %s (first %d)", len(lost), s.db, lost[0])
		}
		if dup := pgtest.QueryValue[int64](t, s.srv, s.db, "SELECT count(*) - count(DISTINCT id) FROM probe"); dup != 0 {
			t.Errorf("%d row(s) twice on %s", dup, s.db)
		}
	}
	if len(probe.failed) > 0 {
		t.Errorf("%d failed commit(s), first: %s", len(probe.failed), probe.failed[0])
	}
}
