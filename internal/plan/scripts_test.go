package plan

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
