package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/pgtest"
)

// TestProgressBarOnlyOnATerminal runs migrate (the binary) twice from one
// source: with stderr a pipe, the lines are plain (no carriage return, no
// escape sequence); under a pseudo-terminal (script(1)), a live bar shows
// the copy's bytes, rows, rate and ETA, and the log lines stay whole. Then
// --log-format json writes one JSON object per event, the error included.
func TestProgressBarOnlyOnATerminal(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Fatal("script (util-linux) not found: it runs pgmove under a pseudo-terminal")
	}
	p := newPair(t, 15, 15)
	pgtest.Exec(t, p.src, "meta", `
		CREATE TABLE big (id int PRIMARY KEY, filler text NOT NULL);
		INSERT INTO big SELECT g, repeat('x', 120) FROM generate_series(1, 1000000) g;
		CREATE TABLE small (id int PRIMARY KEY);
		INSERT INTO small SELECT generate_series(1, 10);
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
	// A second migration of the same source to another database: its own
	// publication, slot, subscription and context directory.
	pgtest.CreateDB(t, p.dst, "test2")
	b, err := os.ReadFile(p.config)
	if err != nil {
		t.Fatal(err)
	}
	config2 := filepath.Join(p.dir, "second.yml")
	yml := strings.Replace(strings.Replace(string(b), "src_cls: pg-meta", "src_cls: pg-meta2", 1), "dst_db: test", "dst_db: test2", 1)
	if err := os.WriteFile(config2, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := buildPgmove(t)

	// Not a terminal: plain lines.
	cmd := exec.Command(bin, "-c", p.config, "migrate")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("migrate: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	if strings.ContainsAny(stderr.String(), "\r\x1b") || strings.Contains(stderr.String(), "copy [") {
		t.Errorf("migrate with stderr a pipe drew a bar:\n%q", stderr.String())
	}
	if !regexp.MustCompile(`(?m)^copy: 2 table\(s\), 1000010 rows`).MatchString(stdout.String()) {
		t.Errorf("migrate's copy line is missing:\n%s", stdout.String())
	}

	// A terminal: the bar, and whole log lines around it.
	out, err := exec.Command(script, "-qfec", fmt.Sprintf("%s -c %s migrate", bin, config2), "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("migrate under a pseudo-terminal: %v\n%q", err, out)
	}
	tty := string(out)
	bar := regexp.MustCompile(`(^|\n|\x1b\[K)copy \[[#-]{24}\] +\d+%  [^\r\n]+ of [^\r\n]+  \d+ rows  \d/2 tables  [1-9][^\r\n]*/s  ETA \d[^\r\n]*\r`)
	if m := bar.FindString(tty); m == "" {
		t.Errorf("no copy bar under a pseudo-terminal:\n%q", tty)
	} else {
		t.Logf("the bar: %q", m)
	}
	lines := strings.Split(strings.ReplaceAll(tty, "\r\n", "\n"), "\n")
	var whole bool
	for _, l := range lines {
		// After the bar is cleared, a log line starts on a clean line.
		if i := strings.LastIndex(l, "\x1b[K"); i >= 0 {
			l = l[i+3:]
		}
		if regexp.MustCompile(`^copy: 2 table\(s\), 1000010 rows, [^\r\x1b]+ in [^\r\x1b]+/s\)$`).MatchString(l) {
			whole = true
		}
	}
	if !whole {
		t.Errorf("the copy's log line is not whole under a pseudo-terminal:\n%q", tty)
	}
	if n := pgtest.QueryValue[int64](t, p.dst, "test2", "SELECT count(*) FROM big"); n != 1000000 {
		t.Errorf("test2.big has %d rows", n)
	}

	// --log-format json: one object per event, the error too.
	r := pgmove(t, "-c", config2, "--log-format", "json", "cleanup")
	if r.code != 0 {
		t.Fatalf("cleanup --log-format json: %s", r)
	}
	events := 0
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil || e["time"] == nil || e["level"] == nil || e["msg"] == nil {
			t.Errorf("cleanup --log-format json wrote %q: %v", l, err)
		}
		events++
	}
	if events < 2 || !strings.Contains(r.stderr, "DROP SUBSCRIPTION") {
		t.Errorf("cleanup --log-format json: %s", r)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r = p.run("--log-format", "json", "progress", "--serve", ln.Addr().String())
	var e struct {
		Level    string `json:"level"`
		Msg      string `json:"msg"`
		ExitCode int    `json:"exit_code"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.stderr)), &e); err != nil || r.code != ExitError || e.Level != "ERROR" || e.ExitCode != ExitError || !strings.Contains(e.Msg, "address already in use") {
		t.Errorf("an error with --log-format json: %v\n%s", err, r)
	}
	if r := p.run("--log-format", "xml", "status"); r.code != ExitUsage || !strings.Contains(r.stderr, "use text or json") {
		t.Errorf("--log-format xml: %s", r)
	}

	// compare and switchover on the first migration, which streams:
	// plain lines with stderr a pipe, a bar under a pseudo-terminal.
	compareBarAndLines(t, p, script, bin)
	switchBarAndLines(t, p, script, bin)
}

// compareBarAndLines: compare --checksum (throttled, so its checksum
// stage lasts a few of the bar's ticks) logs plain progress lines with
// stderr a pipe and draws a bar of tables, ranges, rows, bytes, rate and
// ETA under a pseudo-terminal; both find the sides equal.
func compareBarAndLines(t *testing.T, p *pair, script, bin string) {
	// Statistics, so the big table is split into ranges of 50,000 rows.
	pgtest.Exec(t, p.src, "meta", "ANALYZE big")
	args := []string{"compare", "--checksum", "--throttle", "500000"}
	r := p.run(append(args, "--progress-every", "300ms")...)
	if r.code != 0 || !strings.Contains(r.stdout, "PASS") {
		t.Fatalf("compare --checksum: %s", r)
	}
	if strings.ContainsAny(r.stderr, "\r\x1b") || strings.Contains(r.stderr, "compare [") {
		t.Errorf("compare with stderr a pipe drew a bar:\n%q", r.stderr)
	}
	line := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d compare: hashed \d/2 table\(s\), \d+/2\d range\(s\), \d+ row\(s\), [^,\n]+ of [^,\n]+, \d+ rows/s, ETA [0-9hms]+$`)
	if m := line.FindString(r.stderr); m == "" {
		t.Errorf("compare with stderr a pipe: no progress line:\n%s", r.stderr)
	} else {
		t.Logf("compare's line: %q", m)
	}
	out, err := exec.Command(script, "-qfec", fmt.Sprintf("%s -c %s %s", bin, p.config, strings.Join(args, " ")), "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("compare under a pseudo-terminal: %v\n%q", err, out)
	}
	bar := regexp.MustCompile(`(^|\n|\x1b\[K)compare \[[#-]{20}\] +\d+%  \d/2 tables  \d+/2\d ranges  \d+ rows  [^\r\n]+ of [^\r\n]+  \d+ rows/s  ETA [0-9hms]+\r`)
	if m := bar.FindString(string(out)); m == "" {
		t.Errorf("no compare bar under a pseudo-terminal:\n%q", out)
	} else {
		t.Logf("compare's bar: %q", m)
	}
	if !regexp.MustCompile(`(^|\n|\x1b\[K)\[PASS\] table +public\.big  source=1000000 target=1000000  checksum equal\r\n`).Match(out) {
		t.Errorf("compare's result is not whole under a pseudo-terminal:\n%q", out)
	}
}

// switchBarAndLines: a switchover under a pseudo-terminal draws its steps,
// their time and the pause on a bar; the rollback with stderr a pipe logs
// a plain line as each step begins.
func switchBarAndLines(t *testing.T, p *pair, script, bin string) {
	out, err := exec.Command(script, "-qfec", fmt.Sprintf("%s -c %s switchover", bin, p.config), "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("switchover under a pseudo-terminal: %v\n%q", err, out)
	}
	tty := string(out)
	for _, re := range []string{
		`(^|\n|\x1b\[K)switchover: preflight \d+( ms|\.\ds|s); elapsed [^\r\n]+\r`,
		`(^|\n|\x1b\[K)switchover: [a-z -]+( \([^)]*\))? [^\r\n]*; elapsed [^\r\n]*(paused \d+ ms of at most 2s|the pause took \d+ ms) \[preflight [^\r\n]*\]\r`,
	} {
		if m := regexp.MustCompile(re).FindString(tty); m == "" {
			t.Errorf("switchover under a pseudo-terminal: no bar matching %s:\n%q", re, tty)
		} else {
			t.Logf("switchover's bar: %q", m)
		}
	}
	if !regexp.MustCompile(`(^|\n|\x1b\[K)switchover: done: the application was paused \d+ ms \(fence [^\r\n]+\r\n`).MatchString(tty) {
		t.Errorf("switchover's result is not whole under a pseudo-terminal:\n%q", tty)
	}
	r := p.run("rollback")
	if r.code != 0 {
		t.Fatalf("rollback: %s", r)
	}
	if strings.ContainsAny(r.stderr, "\r\x1b") {
		t.Errorf("rollback with stderr a pipe drew a bar:\n%q", r.stderr)
	}
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.Contains(l, " rollback: ") {
			t.Logf("rollback's line: %s", l)
		}
	}
	for _, re := range []string{
		`rollback: preflight; elapsed \d+ ms`,
		`rollback: fence \(none: the application stopped writing\); elapsed [^,\n]+, paused 0 ms of at most 2s; preflight took [^\n]+`,
		`rollback: catch-up; elapsed [^,\n]+, paused \d+ ms of at most 2s; fence took \d+ ms`,
		`rollback: sequences; elapsed [^,\n]+, paused \d+ ms of at most 2s; catch-up took \d+ ms from [^\n]+ behind the fence`,
		`rollback: resume; elapsed [^,\n]+, paused \d+ ms of at most 2s; route traffic took \d+ ms`,
		`rollback: done; elapsed [^,\n]+, the pause took \d+ ms; aftercare took \d+ ms`,
	} {
		if !regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d ` + re + `$`).MatchString(r.stderr) {
			t.Errorf("rollback with stderr a pipe: no line matching %s:\n%s", re, r.stderr)
		}
	}
}
