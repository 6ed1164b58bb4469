package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/pgtest"
	"github.com/pgmove/pgmove/internal/progress"
	"github.com/pgmove/pgmove/internal/state"
)

var (
	updateDocs     = flag.Bool("update-docs", false, "write the screenshot of progress --serve's page to docs/progress-serve.png")
	updatePromShot = flag.Bool("update-prometheus-png", false, "write the screenshot of Prometheus's graph of the metrics to docs/prometheus-graph.png")
)

// scrape is one GET of /metrics, parsed; nil while nothing answers.
type scrape struct {
	text string
	fams map[string]*dto.MetricFamily
}

func getText(url string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return "", err
	}
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, res.Status, b)
	}
	return string(b), nil
}

func scrapeMetrics(t *testing.T, base string) *scrape {
	t.Helper()
	text, err := getText(base + "/metrics")
	if err != nil {
		return nil
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, text)
	}
	return &scrape{text: text, fams: fams}
}

// get is the value of name's series whose labels are exactly labels.
func (s *scrape) get(name string, labels ...string) (float64, bool) {
	for _, m := range s.fams[name].GetMetric() {
		if len(m.Label)*2 != len(labels) {
			continue
		}
		ok := true
		for i, l := range m.Label { // labels come sorted by name; ours have one
			ok = ok && l.GetName() == labels[2*i] && l.GetValue() == labels[2*i+1]
		}
		if !ok {
			continue
		}
		if m.Counter != nil {
			return m.Counter.GetValue(), true
		}
		return m.Gauge.GetValue(), true
	}
	return 0, false
}

// waitScrape scrapes until cond holds for a sample taken after since.
func waitScrape(t *testing.T, base string, since time.Time, what string, cond func(*scrape) bool) *scrape {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last *scrape
	for time.Now().Before(deadline) {
		if s := scrapeMetrics(t, base); s != nil {
			last = s
			at, _ := s.get("pgmove_last_sample_timestamp_seconds")
			if at >= float64(since.UnixNano())/1e9 && cond(s) {
				return s
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if last == nil {
		t.Fatalf("waiting for %s: /metrics never answered", what)
	}
	t.Fatalf("waiting for %s: last /metrics:\n%s", what, last.text)
	return nil
}

func promtoolCheck(t *testing.T, text string) {
	t.Helper()
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics (scripts/install-deps installs promtool): %v\n%s\n%s", err, out, text)
	}
}

// chromium runs Debian's chromium headless on url with a fresh profile.
func chromium(t *testing.T, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: scripts/install-deps installs it")
	}
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars", "--user-data-dir=" + t.TempDir()}
	cmd := exec.Command(bin, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("chromium %v did not finish\n%s", args, stderr.String())
	}
	return stdout.Bytes()
}

// TestProgressServe runs progress --serve (the real binary, stopped by
// SIGTERM) beside a migration on real servers: the metrics follow the
// replication as writes pile up on the source and drain, promtool accepts
// them, the Grafana dashboard's metrics all exist, /api/progress is the
// --json report, and the page rendered by headless Chromium shows the
// tables, the lag and the phase.
func TestProgressServe(t *testing.T) {
	p := newPairWith(t, 15, 17, []func(*pgserver.Options){func(o *pgserver.Options) { o.Keep = true }}) // stopped and started again
	t.Cleanup(func() { _ = p.src.Remove() })
	phaseSource(t, p)
	port := deadPort(t)
	// A real Prometheus scrapes progress --serve every second, with the
	// example job; started first, as it applies its targets only some
	// seconds after it starts.
	instance := fmt.Sprintf("127.0.0.1:%d", port)
	prom := startPrometheus(t, instance)
	p.must("migrate")
	bin := buildPgmove(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(bin, "-c", p.config, "progress", "--serve", fmt.Sprintf(":%d", port), "--interval", "500ms")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	// 1. Caught up after migrate.
	s1 := waitScrape(t, base, time.Now(), "the phase caught_up", func(s *scrape) bool {
		v, _ := s.get("pgmove_phase", "phase", "caught_up")
		return v == 1
	})
	promtoolCheck(t, s1.text)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pgmove_tables", []string{"state", "ready"}, 3},
		{"pgmove_tables", []string{"state", "copying"}, 0},
		{"pgmove_tables_selected", nil, 3},
		{"pgmove_copied_rows_total", []string{"table", "public.t1"}, 200},
		{"pgmove_copied_rows_total", []string{"table", "public.t2"}, 300},
		{"pgmove_copied_rows_total", []string{"table", "public.t3"}, 50},
		{"pgmove_apply_worker_up", nil, 1},
		{"pgmove_caught_up", nil, 1},
		{"pgmove_source_up", nil, 1},
		{"pgmove_target_up", nil, 1},
		{"pgmove_problems", nil, 0},
		{"pgmove_phase", []string{"phase", "copy"}, 0},
	} {
		if got, ok := s1.get(c.name, c.labels...); !ok || got != c.want {
			t.Errorf("caught up: %s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	for _, name := range []string{"pgmove_replication_lag_bytes", "pgmove_replication_lag_seconds", "pgmove_slot_retained_wal_bytes", "pgmove_copy_eta_seconds"} {
		if _, ok := s1.get(name); !ok {
			t.Errorf("caught up: %s absent\n%s", name, s1.text)
		}
	}
	if b, _ := s1.get("pgmove_copied_bytes_total", "table", "public.t2"); b <= 0 {
		t.Errorf("copied bytes of public.t2: %v, want > 0", b)
	}
	if lag, _ := s1.get("pgmove_replication_lag_bytes"); lag > 16<<20 {
		t.Errorf("caught up with a lag of %v bytes", lag)
	}
	retained1, _ := s1.get("pgmove_slot_retained_wal_bytes")

	// 2. The apply stops and the source writes: the lag and the retained
	// WAL grow, the phase and readiness say so.
	pgtest.Exec(t, p.dst, "test", "ALTER SUBSCRIPTION sub_pg_meta_meta DISABLE")
	pgtest.Exec(t, p.src, "meta", "INSERT INTO t1 SELECT g, repeat('x', 100) FROM generate_series(1001, 21000) g")
	wrote := time.Now()
	s2 := waitScrape(t, base, wrote, "the lag of 20,000 rows", func(s *scrape) bool {
		lag, _ := s.get("pgmove_replication_lag_bytes")
		return lag > 1<<20
	})
	promtoolCheck(t, s2.text)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pgmove_phase", []string{"phase", "catching_up"}, 1},
		{"pgmove_phase", []string{"phase", "caught_up"}, 0},
		{"pgmove_caught_up", nil, 0},
		{"pgmove_apply_worker_up", nil, 0},
	} {
		if got, ok := s2.get(c.name, c.labels...); !ok || got != c.want {
			t.Errorf("apply stopped: %s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if n, _ := s2.get("pgmove_problems"); n < 1 {
		t.Errorf("apply stopped: %v problems, want the disabled subscription", n)
	}
	if r, _ := s2.get("pgmove_slot_retained_wal_bytes"); r <= retained1 {
		t.Errorf("retained WAL %v after 20,000 rows, was %v", r, retained1)
	}
	time.Sleep(time.Second) // a few lag points on the page's chart

	// 3. The apply resumes: the lag drains, caught up again.
	pgtest.Exec(t, p.dst, "test", "ALTER SUBSCRIPTION sub_pg_meta_meta ENABLE")
	s3 := waitScrape(t, base, time.Now(), "the catch-up", func(s *scrape) bool {
		v, _ := s.get("pgmove_phase", "phase", "caught_up")
		lag, _ := s.get("pgmove_replication_lag_bytes")
		return v == 1 && lag < 1<<20
	})
	if v, _ := s3.get("pgmove_apply_worker_up"); v != 1 {
		t.Errorf("apply resumed: pgmove_apply_worker_up = %v", v)
	}
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM t1"); n != 20200 {
		t.Errorf("target t1 has %d rows, want 20200", n)
	}

	// 4. Every metric the Grafana dashboard queries exists here, but the
	// switchover's pause, which exists once a switchover ran (step 8).
	b, err := os.ReadFile("../../deploy/grafana/pgmove.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("deploy/grafana/pgmove.json: %v", err)
	}
	for _, m := range regexp.MustCompile(`\bpgmove_[a-z_]+`).FindAllString(string(b), -1) {
		if s3.fams[m] == nil && m != "pgmove_switchover_pause_seconds" {
			t.Errorf("the dashboard queries %s, absent from /metrics of a caught-up migration", m)
		}
	}

	// 4b. Through that Prometheus, as Grafana would: each dashboard
	// variable offers this migration, and every panel's query returns a
	// series (the pause's once a switchover ran, step 8), with the figures
	// of this migration.
	board := readDashboard(t)
	vars := prom.resolveVariables(t, board, map[string]string{"job": prom.job, "instance": instance})
	prom.waitQuery(t, fmt.Sprintf(`pgmove_phase{phase="caught_up", instance=%q} == 1`, instance), 30*time.Second)
	pausePanel := func(title string) bool { return strings.Contains(title, "pause") }
	panels := prom.panelQueries(t, board, vars, func(title string) bool { return !pausePanel(title) }, 30*time.Second)
	for key, series := range panels {
		for _, s := range series {
			t.Logf("prometheus: %s %v = %v", key, s.Metric, s.value())
		}
	}
	if s := panels["Phase/A"]; len(s) != 1 || s[0].Metric["phase"] != "caught_up" {
		t.Errorf("the Phase panel shows %v, want caught_up", s)
	}
	if s := panels["Rows copied/A"]; len(s) != 1 || s[0].value() != 550 {
		t.Errorf("the Rows copied panel shows %v, want 550", s)
	}
	ready := false
	for _, s := range panels["Tables per state/A"] {
		ready = ready || s.Metric["state"] == "ready" && s.value() == 3
	}
	if !ready {
		t.Errorf("the Tables per state panel shows %v, want 3 ready", panels["Tables per state/A"])
	}
	if s := panels["Copied/A"]; len(s) != 1 || s[0].value() <= 0 || s[0].value() > 1 {
		t.Errorf("the Copied panel shows %v, want a fraction in (0, 1]", s)
	}

	// 5. /api/progress is progress --json's report.
	body, err := getText(base + "/api/progress")
	if err != nil {
		t.Fatal(err)
	}
	var rep progress.Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("/api/progress: %v\n%s", err, body)
	}
	if len(rep.Tables) != 3 || rep.Ready == nil || *rep.Ready != 3 || rep.LagBytes == nil || rep.Subscription != "sub_pg_meta_meta" {
		t.Errorf("/api/progress: %s", body)
	}

	// 6. The page, rendered: table names, lag, phase.
	dom := string(chromium(t, "--virtual-time-budget=5000", "--dump-dom", base+"/"))
	for _, want := range []string{"public.t1", "public.t2", "public.t3", `id="phase">caught up<`, "Ready: every table replicates", "create-sub", "3 table(s), 550 rows copied"} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered page lacks %q:\n%s", want, dom)
		}
	}
	if m := regexp.MustCompile(`id="lag">([^<]*)<`).FindStringSubmatch(dom); m == nil || !regexp.MustCompile(`^\d+(\.\d)? (B|kB|MB)$`).MatchString(m[1]) {
		t.Errorf("rendered page's lag: %q", m)
	}
	if !strings.Contains(dom, "<polyline") {
		t.Errorf("rendered page has no lag chart")
	}
	shot := filepath.Join(t.TempDir(), "progress-serve.png")
	chromium(t, "--virtual-time-budget=5000", "--window-size=1280,1100", "--screenshot="+shot, base+"/")
	png, err := os.ReadFile(shot)
	if err != nil || len(png) < 10000 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot: %v, %d bytes", err, len(png))
	}
	if *updateDocs {
		if err := os.WriteFile("../../docs/progress-serve.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// 7. The source goes away: what only it can say is absent, the rest
	// stays; back, it is reconnected.
	if err := p.src.Stop(); err != nil {
		t.Fatal(err)
	}
	s4 := waitScrape(t, base, time.Now(), "the source down", func(s *scrape) bool {
		v, ok := s.get("pgmove_source_up")
		return ok && v == 0
	})
	promtoolCheck(t, s4.text)
	for _, name := range []string{"pgmove_replication_lag_bytes", "pgmove_replication_lag_seconds", "pgmove_slot_retained_wal_bytes", "pgmove_caught_up", "pgmove_copy_eta_seconds"} {
		if _, ok := s4.get(name); ok {
			t.Errorf("source down: %s present", name)
		}
	}
	if v, _ := s4.get("pgmove_tables", "state", "ready"); v != 3 {
		t.Errorf("source down: pgmove_tables{state=ready} = %v, want 3 (the target says)", v)
	}
	if v, _ := s4.get("pgmove_phase", "phase", "unknown"); v != 1 {
		t.Errorf("source down: phase unknown = %v, want 1", v)
	}
	if err := p.src.Restart(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	waitScrape(t, base, time.Now(), "the source back", func(s *scrape) bool {
		v, _ := s.get("pgmove_phase", "phase", "caught_up")
		_, lag := s.get("pgmove_replication_lag_bytes")
		return v == 1 && lag
	})

	// 8. A switchover: its pause, as the journal has it, and the phase.
	r := p.must("switchover")
	t.Logf("switchover: %s", strings.TrimSpace(r.stdout))
	j, err := state.Open(filepath.Join(p.dir, "migration", "pg-meta.meta"))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := j.Last("switchover")
	if err != nil || ev == nil || ev.Data["pause_ms"] == "" {
		t.Fatalf("journal's switchover: %v, %v", ev, err)
	}
	pauseMS, _ := strconv.ParseFloat(ev.Data["pause_ms"], 64)
	s5 := waitScrape(t, base, time.Now(), "the switchover's pause", func(s *scrape) bool {
		_, ok := s.get("pgmove_switchover_pause_seconds", "step", "switchover")
		return ok
	})
	promtoolCheck(t, s5.text)
	if v, _ := s5.get("pgmove_switchover_pause_seconds", "step", "switchover"); math.Abs(v-pauseMS/1000) > 1e-9 || v <= 0 {
		t.Errorf("pgmove_switchover_pause_seconds = %v, the journal says %v ms", v, pauseMS)
	}
	if v, _ := s5.get("pgmove_phase", "phase", "switched_over"); v != 1 {
		t.Errorf("after the switchover: phase switched_over = %v\n%s", v, s5.text)
	}
	// Prometheus has the pause too, for the dashboard's panel.
	panels = prom.panelQueries(t, board, vars, pausePanel, 30*time.Second)
	if s := panels["Last switchover pause/A"]; len(s) != 1 || s[0].Metric["step"] != "switchover" || math.Abs(s[0].value()-pauseMS/1000) > 1e-9 {
		t.Errorf("the pause panel shows %v, the journal says %v ms", s, pauseMS)
	}
	if *updatePromShot {
		// Prometheus's own graph page, for the README: the lag as it grew
		// and drained (steps 2, 3), absent while the source was down
		// (step 7), and the WAL the slot retained.
		q := neturl.Values{}
		for i, expr := range []string{"pgmove_replication_lag_bytes", "pgmove_slot_retained_wal_bytes"} {
			g := fmt.Sprintf("g%d.", i)
			q.Set(g+"expr", expr)
			q.Set(g+"tab", "0")
			q.Set(g+"range_input", "1m")
		}
		shot := filepath.Join(t.TempDir(), "prometheus-graph.png")
		chromium(t, "--virtual-time-budget=3000", "--window-size=1280,1420", "--screenshot="+shot, prom.base+"/classic/graph?"+q.Encode())
		png, err := os.ReadFile(shot)
		if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
			t.Fatalf("screenshot of prometheus: %v", err)
		}
		if err := os.WriteFile("../../docs/prometheus-graph.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// 9. A second --serve on the same address: one line, exit 1.
	r = p.run("progress", "--serve", fmt.Sprintf("127.0.0.1:%d", port))
	if r.code != ExitError || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "address already in use") {
		t.Errorf("--serve on an address in use: %s", r)
	}

	// 10. SIGTERM stops it cleanly: exit 0, nothing listens any more.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("progress --serve after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("progress --serve did not stop on SIGTERM\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), fmt.Sprintf("serving http://127.0.0.1:%d/", port)) || !strings.Contains(stderr.String(), "stopped serving") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	if _, err := getText(base + "/metrics"); err == nil {
		t.Error("still serving after SIGTERM")
	}

	// 11. And SIGINT (Ctrl-C) too.
	cmd = exec.Command(bin, "-c", p.config, "progress", "--serve", fmt.Sprintf("127.0.0.1:%d", port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited2 := make(chan error, 1)
	go func() { exited2 <- cmd.Wait() }()
	waitScrape(t, base, time.Now(), "a sample", func(*scrape) bool { return true })
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-exited2:
		if err != nil {
			t.Errorf("progress --serve after SIGINT: %v", err)
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("progress --serve did not stop on SIGINT")
	}
}
