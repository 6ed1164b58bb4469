package cli

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pgmove/pgmove/internal/pgtest"
)

// buildPgmove builds the pgmove binary for tests that run the generated
// scripts: in-process, the running binary is the test binary.
func buildPgmove(t *testing.T) string {
	t.Helper()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		if goTool, err = exec.LookPath("go"); err != nil {
			t.Fatal("go not found: needed to build pgmove for the scripts")
		}
	}
	bin := filepath.Join(t.TempDir(), "pgmove")
	cmd := exec.Command(goTool, "build", "-o", bin, "github.com/pgmove/pgmove/cmd/pgmove")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build pgmove: %v\n%s", err, out)
	}
	return bin
}

// script runs a command line of the context directory's scripts, after
// activate unless raw, with stdin not a terminal.
func script(t *testing.T, dir, line string, raw ...bool) result {
	t.Helper()
	if len(raw) == 0 {
		line = ". ./activate >/dev/null && " + line
	}
	cmd := exec.Command("bash", "-c", line)
	cmd.Dir = dir
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return result{stdout: out.String(), stderr: errOut.String(), code: cmd.ProcessState.ExitCode()}
}

func mustScript(t *testing.T, dir, line string) result {
	t.Helper()
	r := script(t, dir, line)
	if r.code != 0 {
		t.Fatalf("%s: %s", line, r)
	}
	return r
}

// TestPlanScriptsMigrate writes the context directory, then runs its scripts
// with -y in the runbook's order while the source takes writes: the target
// ends equal to the source, and no file holds the password.
func TestPlanScriptsMigrate(t *testing.T) {
	start := time.Now()
	p := newPair(t, 15, 15)
	bin := buildPgmove(t)
	pgbenchInit(t, p.src, 1)
	pgtest.Exec(t, p.src, "meta", `CREATE MATERIALIZED VIEW branch_totals AS SELECT bid, sum(abalance) AS total FROM pgbench_accounts GROUP BY bid`)
	t.Logf("servers, pgmove and data ready in %s", time.Since(start).Round(time.Millisecond))

	r := p.must("plan", "--pgmove", bin, "--format", "html")
	dir := filepath.Join(p.dir, "migration", "pg-meta.meta")
	if !strings.Contains(r.stdout, "plan written to "+dir) {
		t.Fatalf("plan: %s", r)
	}
	runbook, err := os.ReadFile(filepath.Join(dir, "runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`ALTER TABLE "public"."pgbench_history" REPLICA IDENTITY FULL;`,
		"host  meta  replicator  127.0.0.1/32  scram-sha-256",
		`CREATE ROLE "replicator" LOGIN REPLICATION BYPASSRLS PASSWORD '<password>';`,
		"`public.branch_totals` | materialized view",
		"`./copy-schema`", "`pg-test`",
	} {
		if !strings.Contains(string(runbook), want) {
			t.Errorf("runbook.md lacks %q", want)
		}
	}
	if page, err := os.ReadFile(filepath.Join(dir, "runbook.html")); err != nil || !strings.Contains(string(page), `<input type="checkbox" disabled>`) {
		t.Errorf("runbook.html: %v", err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("context directory: %v %v", st.Mode(), err)
	}
	p.must("plan", "--check")

	// A table created after the plan: the scripts read the live catalogue,
	// and check-plan says the runbook does not list it.
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE pgbench_late (id int PRIMARY KEY, note text); INSERT INTO pgbench_late VALUES (1, 'after the plan')`)

	if r := script(t, dir, "./copy-schema -y", true); r.code != 2 || !strings.Contains(r.stderr, "run: . ./activate first") {
		t.Errorf("a script outside the context should refuse: %s", r)
	}

	// Preparations.
	if r := script(t, dir, "./check-replica-identity -y"); r.code != ExitProblems || !strings.Contains(r.stdout, "pgbench_history") {
		t.Errorf("check-replica-identity should find pgbench_history: %s", r)
	}
	if r := mustScript(t, dir, "./check-special-object"); !strings.Contains(r.stdout, "branch_totals") {
		t.Errorf("check-special-object: %s", r)
	}
	if r := script(t, dir, "./check-replica-identity-solution --apply"); r.code != 2 || !strings.Contains(r.stdout, "REPLICA IDENTITY FULL") {
		t.Errorf("--apply without -y and without a terminal should show the fix and refuse: %s", r)
	}
	mustScript(t, dir, "./check-replica-identity-solution --apply -y")
	mustScript(t, dir, "./check-replica-identity")
	r = script(t, dir, "./check-plan")
	if r.code != ExitProblems || !strings.Contains(r.stdout, "public.pgbench_late") || !strings.Contains(r.stdout, "FIXED") {
		t.Errorf("check-plan should name the new table and the fixed identity: %s", r)
	}
	mustScript(t, dir, "./check -y")

	// Stock migration.
	if r := script(t, dir, "./copy-schema"); r.code != 2 || p.targetTables() != 0 {
		t.Errorf("copy-schema without -y and without a terminal should change nothing: %s", r)
	}
	mustScript(t, dir, "./copy-schema -y")
	mustScript(t, dir, "./create-pub -y")
	mustScript(t, dir, "./create-sub -y")
	w := startWriter(t, p.src, 1)
	defer w.cancel()
	for _, step := range []string{"./create-pub -y", "./create-sub -y"} {
		if r := mustScript(t, dir, step); !strings.Contains(r.stdout, "unchanged") {
			t.Errorf("second run of %s changed something: %s", step, r)
		}
	}
	mustScript(t, dir, "./progress")
	time.Sleep(time.Second)

	// Switch moment: writes stop, the lag reaches 0.
	w.stop(t)
	p.waitLagZero()
	mustScript(t, dir, "./copy-seq -y")
	mustScript(t, dir, "./next-seq -y")
	if r := mustScript(t, dir, "./compare --checksum"); !strings.Contains(r.stdout, "equal") {
		t.Errorf("compare: %s", r)
	}
	assertSameRows(t, p.src, p.dst, "pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history", "pgbench_events", "pgbench_late")

	// Aftercare, twice.
	mustScript(t, dir, "./remove-sub -y")
	mustScript(t, dir, "./cleanup -y")
	mustScript(t, dir, "./cleanup -y")
	if left := p.objectsLeft(); len(left) > 0 {
		t.Errorf("cleanup left %v", left)
	}
	if r := mustScript(t, dir, "./status"); !strings.Contains(r.stdout, "finished") {
		t.Errorf("status: %s", r)
	}

	logged, _ := os.ReadFile(filepath.Join(dir, "log", "create-sub.log"))
	if !strings.Contains(string(logged), "confirmed by") || !strings.Contains(string(logged), "CREATE SUBSCRIPTION") {
		t.Errorf("log/create-sub.log lacks the confirmation or the statement:\n%s", logged)
	}
	assertNoPassword(t, dir)
	t.Logf("whole run: %s", time.Since(start).Round(time.Millisecond))
}

// assertNoPassword reads every file under dir, logs included.
func assertNoPassword(t *testing.T, dir string) {
	t.Helper()
	pw := pgtest.Password()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		if strings.Contains(string(b), pw) {
			t.Errorf("%s holds the servers' password", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 15 {
		t.Errorf("only %d files under %s", n, dir)
	}
}

// TestPlanCheck: a plan of a source whose target does not exist yet, then
// plan --check as the catalogue changes.
func TestPlanCheck(t *testing.T) {
	p := newPair(t, 15, 15)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE orders (id int PRIMARY KEY); CREATE TABLE audit (at timestamptz, what text)`)
	if r := p.run("plan", "--check"); r.code != ExitError || !strings.Contains(r.stderr, "run pgmove plan first") {
		t.Errorf("--check without a plan: %s", r)
	}
	// The target cluster is not built yet.
	p.dst.Stop()
	r := p.must("plan")
	if !strings.Contains(r.stdout, "the target was unreachable") {
		t.Errorf("plan should say the target was unreachable: %s", r)
	}
	dir := filepath.Join(p.dir, "migration", "pg-meta.meta")
	runbook, _ := os.ReadFile(filepath.Join(dir, "runbook.md"))
	for _, want := range []string{"unreachable when the plan was written", `ALTER TABLE "public"."audit" REPLICA IDENTITY FULL;`} {
		if !strings.Contains(string(runbook), want) {
			t.Errorf("runbook.md lacks %q", want)
		}
	}
	if r := p.must("plan", "--check"); !strings.Contains(r.stdout, "no change since the plan") {
		t.Errorf("plan --check right after plan: %s", r)
	}

	pgtest.Exec(t, p.src, "meta", `ALTER TABLE audit REPLICA IDENTITY FULL`)
	if r := p.must("plan", "--check"); !strings.Contains(r.stdout, "FIXED") || !strings.Contains(r.stdout, "public.audit") {
		t.Errorf("a fixed identity is reported, exit 0: %s", r)
	}
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE late (x int); CREATE MATERIALIZED VIEW audit_count AS SELECT count(*) FROM audit; DROP TABLE orders`)
	r = p.run("plan", "--check", "--json")
	if r.code != ExitProblems {
		t.Fatalf("plan --check should exit 3: %s", r)
	}
	for _, want := range []string{`"kind": "new_table"`, `"object": "public.late"`, `"kind": "dropped_table"`, `"object": "public.orders"`, `"kind": "new_object"`, `"identity_fixed"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan --check --json lacks %s: %s", want, r)
		}
	}
	if r := p.run("plan", "--format", "pdf"); r.code != ExitUsage {
		t.Errorf("--format pdf: %s", r)
	}
	assertNoPassword(t, dir)
}
