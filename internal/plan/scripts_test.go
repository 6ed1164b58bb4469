package plan

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/config"
)

// fakeDir writes a plan whose scripts run a stand-in pgmove that records its
// arguments, and returns the context directory and the record's path.
func fakeDir(t *testing.T, pgmoveAt string) (dir, calls string) {
	t.Helper()
	root := t.TempDir()
	calls = filepath.Join(root, "calls")
	stub := "#!/bin/sh\necho \"$*\" >>" + shellQuote(calls) + "\necho \"fake pgmove $*\"\n" +
		"case \"$*\" in *--dry-run*) exit 0 ;; esac\nexit ${FAKE_EXIT:-0}\n"
	bin := filepath.Join(root, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "pgmove"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	if pgmoveAt == "" {
		pgmoveAt = filepath.Join(bin, "pgmove")
	}
	in := fixtureInput(t)
	in.M = fixtureMigration(t, strings.Replace(fixtureYAML, "/home/dba/migration", filepath.Join(root, "migration"), 1))
	in.Pgmove = pgmoveAt
	files, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	dir = in.M.ContextDir
	if err := Write(dir, files); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return dir, calls
}

type shellResult struct {
	out  string
	code int
}

// sh runs a shell command line in dir, with stdin not a terminal.
func sh(t *testing.T, dir, line string, env ...string) shellResult {
	t.Helper()
	cmd := exec.Command(lookBash(t), "-c", line)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return shellResult{string(out), cmd.ProcessState.ExitCode()}
}

func readCalls(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	os.Remove(path)
	return lines
}

func TestPlanScriptsBehave(t *testing.T) {
	dir, calls := fakeDir(t, "")
	cfg := "-c " + filepath.Join(dir, ConfigFile) + " "
	act := ". ./activate >/dev/null && "

	for _, tc := range []struct {
		name, line string
		env        []string
		code       int
		calls      []string
		output     string // in the combined output
		log        string // in the script's log
	}{
		{name: "outside the context", line: "./copy-schema -y", code: 2, output: "run: . ./activate first"},
		{name: "activate executed, not sourced", line: "./activate", code: 2, output: "activate must be sourced"},
		{name: "no terminal and no -y", line: act + "./copy-schema", code: 2,
			calls: []string{cfg + "copy-schema --section pre-data --dry-run"}, output: "nothing changed; read the statements above, then rerun with -y"},
		{name: "-y shows, then runs", line: act + "./create-pub -y", code: 0,
			calls: []string{cfg + "create-pub --dry-run", cfg + "create-pub"}, output: "fake pgmove " + cfg + "create-pub --dry-run", log: "confirmed by"},
		{name: "arguments pass through", line: act + "./next-seq 500 --yes", code: 0,
			calls: []string{cfg + "next-seq 500 --dry-run", cfg + "next-seq 500"}},
		{name: "read-only runs once", line: act + "./check-replica-identity-solution", code: 0,
			calls: []string{cfg + "check-replica-identity-solution"}},
		{name: "read-only takes -y", line: act + "./progress -y", code: 0, calls: []string{cfg + "progress"}},
		{name: "--apply makes it ask", line: act + "./check-replica-identity-solution --apply", code: 2,
			calls: []string{cfg + "check-replica-identity-solution --apply --dry-run"}},
		{name: "--apply -y", line: act + "./check-replica-identity-solution --apply -y", code: 0,
			calls: []string{cfg + "check-replica-identity-solution --apply --dry-run", cfg + "check-replica-identity-solution --apply"}},
		{name: "exit status kept", line: act + "./compare --checksum", env: []string{"FAKE_EXIT=3"}, code: 3,
			calls: []string{cfg + "compare --checksum"}, log: "exit 3"},
		{name: "check-plan", line: act + "./check-plan", code: 0, calls: []string{cfg + "plan --check"}},
		{name: "switchover --dry-run only shows", line: act + "./switchover --dry-run", code: 0,
			calls: []string{cfg + "switchover --dry-run"}, output: "switchover: --dry-run: nothing changed"},
		{name: "rollback -n only shows, arguments pass through", line: act + "./rollback -n --max-pause 500ms", code: 0,
			calls: []string{cfg + "rollback --max-pause 500ms --dry-run"}, log: "pgmove rollback --max-pause 500ms --dry-run"},
		{name: "switchover without -y and without a terminal", line: act + "./switchover", code: 2,
			calls: []string{cfg + "switchover --dry-run"}, output: "nothing changed; read the statements above"},
		{name: "switchover -y shows, then switches; its exit status kept", line: act + "./switchover -y --json", env: []string{"FAKE_EXIT=1"}, code: 1,
			calls: []string{cfg + "switchover --json --dry-run", cfg + "switchover --json"}, log: "exit 1"},
		{name: "--apply -n only shows", line: act + "./check-replica-identity-solution --apply -n", code: 0,
			calls: []string{cfg + "check-replica-identity-solution --apply --dry-run"}, output: "nothing changed"},
		{name: "-n on a read-only script", line: act + "./progress -n", code: 0, calls: []string{cfg + "progress -n"}},
		{name: "activate exports the seed's variables", line: act + `echo "$SRCCLS $SRCDB $SRCIP $DSTCLS $DSTIP $DSTDB $PUBNAME $SUBNAME $DIRPATH $PWD"`, code: 0,
			output: "pg-meta meta 10.10.10.10 pg-test 10.10.10.11 test pub_pg_meta_meta sub_pg_meta_meta " + dir + " " + dir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sh(t, dir, tc.line, tc.env...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\n%s", r.code, tc.code, r.out)
			}
			if got := readCalls(t, calls); strings.Join(got, "\n") != strings.Join(tc.calls, "\n") {
				t.Errorf("pgmove ran\n  %s\nwant\n  %s\noutput:\n%s", strings.Join(got, "\n  "), strings.Join(tc.calls, "\n  "), r.out)
			}
			if !strings.Contains(r.out, tc.output) {
				t.Errorf("output lacks %q:\n%s", tc.output, r.out)
			}
			if tc.log != "" {
				name := strings.Fields(strings.TrimPrefix(tc.line, act))[0][2:]
				b, _ := os.ReadFile(filepath.Join(dir, LogDir, name+".log"))
				if !strings.Contains(string(b), tc.log) {
					t.Errorf("log/%s.log lacks %q:\n%s", name, tc.log, b)
				}
			}
		})
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("context directory mode %v, want 0700", st.Mode().Perm())
	}
}

// When the binary plan recorded is gone, activate falls back to the PATH.
func TestPlanActivateFallsBackToPath(t *testing.T) {
	dir, calls := fakeDir(t, "/nonexistent/pgmove")
	r := sh(t, dir, ". ./activate >/dev/null && ./status")
	if r.code != 0 || !strings.Contains(r.out, "using the one in PATH") {
		t.Fatalf("exit %d:\n%s", r.code, r.out)
	}
	if got := readCalls(t, calls); len(got) != 1 || !strings.HasSuffix(got[0], " status") {
		t.Errorf("pgmove ran %q", got)
	}
}

// Odd cluster and database names (quotes, $(...), backquotes, a line
// break) and a context directory with spaces: the scripts pass them to
// pgmove as they are and run none of them.
func TestPlanScriptsOddNames(t *testing.T) {
	root := t.TempDir()
	calls := filepath.Join(root, "calls")
	// One argument a line, each call ended by a line "--".
	stub := "#!/bin/sh\nprintf '%s\\n' \"$@\" -- >>" + shellQuote(calls) + "\n"
	bin := filepath.Join(root, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "pgmove"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	// A name that ran as a command would make this file in the
	// directory the script runs in (the context directory), or here.
	pwned := "pwned"
	ctxDir := filepath.Join(root, "my migrations", "it's \"here\"")
	q := strconv.Quote // a Go string literal is a YAML double-quoted scalar
	yml := "src_cls: " + q(`pg meta's "x" $(touch `+pwned+`)`) + "\n" +
		"src_db: " + q("db `touch "+pwned+"`\ntouch "+pwned) + "\n" +
		"src_ip: 10.10.10.10\ndst_cls: pg-test\ndst_db: " + q("it's a db") + "\ndst_ip: 10.10.10.11\n" +
		"pub_name: pub_odd\nsub_name: sub_odd\n" +
		"migration_context_dir: " + q(ctxDir) + "\n" +
		"pgbouncer: [ 'postgres://admin@10.10.10.10:6432/pgbouncer' ]\npgbouncer_db: " + q("app's db") + "\n"
	in := fixtureInput(t)
	in.M = fixtureMigration(t, yml)
	in.Pgmove = filepath.Join(bin, "pgmove")
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	files, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	dir := in.M.ContextDir
	if !strings.Contains(dir, "\n") || !strings.HasPrefix(dir, ctxDir+"/") {
		t.Fatalf("context directory %q: want one under %q with a line break in its name", dir, ctxDir)
	}
	if err := Write(dir, files); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Mode&0o100 == 0 {
			continue
		}
		if out, err := exec.Command(lookBash(t), "-n", filepath.Join(dir, f.Name)).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", f.Name, err, out)
		}
	}
	r := sh(t, dir, `. ./activate >/dev/null && ./switchover -n --max-pause '1 s' && ./rollback --dry-run && printf '%s' "$MIGRATION_CONTEXT" >context`)
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.out)
	}
	b, _ := os.ReadFile(calls)
	cfg := filepath.Join(dir, ConfigFile)
	want := strings.Join([]string{"-c", cfg, "switchover", "--max-pause", "1 s", "--dry-run", "--", "-c", cfg, "rollback", "--dry-run", "--"}, "\n") + "\n"
	if string(b) != want {
		t.Errorf("pgmove ran with\n%q\nwant\n%q", b, want)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "context")); string(got) != filepath.Base(dir) {
		t.Errorf("MIGRATION_CONTEXT %q, want %q", got, filepath.Base(dir))
	}
	for _, p := range []string{filepath.Join(dir, pwned), filepath.Join(root, pwned)} {
		if _, err := os.Stat(p); err == nil {
			t.Error("a name in the plan ran as a command")
		}
	}
	// The copy of migration.yml gives the same names back.
	copied, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f, err := config.Parse("migration.yml", copied)
	if err != nil {
		t.Fatal(err)
	}
	m, err := config.Resolve(f, config.Overrides{ConfigFile: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if m.Src.Cluster != in.M.Src.Cluster || m.Src.DB != in.M.Src.DB || m.ContextDir != dir || m.PgBouncerDB != "app's db" {
		t.Errorf("migration.yml's copy reads back as %q %q %q %q", m.Src.Cluster, m.Src.DB, m.ContextDir, m.PgBouncerDB)
	}
}
