package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/pgtest"
)

// TestPlanSwitchoverKilled kills the plan's ./switchover -y (the script,
// pgmove and its sleeping switch hook) inside the pause, after the switch,
// with the application paused in pgbouncer. Rerunning the script finishes
// the switch: its dry run says what the rerun will do instead of refusing
// the stopped subscription, and pgbouncer resumes towards the target with
// every acknowledged row on both sides.
func TestPlanSwitchoverKilled(t *testing.T) {
	p := newPair(t, 15, 16)
	bin := buildPgmove(t)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE probe (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), note text);
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
	p.must("migrate")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := pgserver.StartPgBouncer(ctx, pgserver.BouncerOptions{Name: "plan-killed",
		Databases: map[string]string{"meta": fmt.Sprintf("host=127.0.0.1 port=%d dbname=meta", p.src.Port)},
		User:      "postgres", Password: pgtest.Password()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	// The hook sleeps the first time only: the rerun runs it again.
	mark := filepath.Join(t.TempDir(), "hooked")
	hook := fmt.Sprintf("if [ -e %[1]s ]; then exit 0; fi; touch %[1]s; exec sleep 60", mark)
	p.writeConfig(fmt.Sprintf("pgbouncer: [ %s ]\npgbouncer_ini: %s\nmax_pause: 30s\nswitch_hook: %s\n",
		strconv.Quote(b.AdminURL("postgres")), strconv.Quote(b.INI), strconv.Quote(hook)))
	p.must("plan", "--pgmove", bin)
	dir := filepath.Join(p.dir, "migration", "pg-meta.meta")
	probe := startAppWriter(t, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/meta?sslmode=disable", b.Port), "probe", 10*time.Millisecond)
	defer probe.stop()
	time.Sleep(500 * time.Millisecond)

	cmd := exec.Command("bash", "-c", ". ./activate >/dev/null && ./switchover -y")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(30 * time.Second); ; {
		if _, err := os.Stat(mark); err == nil {
			break
		}
		if time.Now().After(end) {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Fatal("the switchover did not reach its hook")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The script, pgmove and the hook: the process group started here.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Wait()
	before := len(probe.acked)
	time.Sleep(300 * time.Millisecond)
	if n := len(probe.acked); n != before {
		t.Fatalf("the application wrote (%d commits) while pgmove was killed inside the pause", n-before)
	}

	r := script(t, dir, "./switchover --dry-run")
	t.Logf("./switchover --dry-run after the kill:\n%s", r.stdout)
	if r.code != 0 || !strings.Contains(r.stdout, "an interrupted switchover had switched the replication") || !strings.Contains(r.stdout, `RESUME "meta";`) ||
		!strings.Contains(r.stdout, "then RELOAD") || strings.Contains(r.stdout, `PAUSE "meta"`) {
		logged, _ := os.ReadFile(filepath.Join(dir, "log", "switchover.log"))
		t.Errorf("./switchover --dry-run after the kill should say the rerun finishes the switch: %s\nlog/switchover.log:\n%s", r, logged)
	}
	r = mustScript(t, dir, "./switchover -y")
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
