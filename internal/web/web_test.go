package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pgmove/pgmove/internal/progress"
	"github.com/pgmove/pgmove/internal/state"
)

func ptr[T any](v T) *T { return &v }

// fullReport is a subscribed migration with every figure known.
func fullReport(tables int) *progress.Report {
	r := &progress.Report{
		Time: time.Now(), Subscription: "sub_pg_meta_meta",
		Source: progress.Side{Reachable: true}, Target: progress.Side{Reachable: true},
		Exists: ptr(true), Enabled: ptr(true),
		LagBytes: ptr(int64(4096)), LagSeconds: ptr(1.5), RetainedWAL: ptr(int64(1 << 20)), SlotActive: ptr(true),
		CopyRate: 2e6, WALRate: 1e5, ApplyRate: 2e5, ETA: ptr(30.0), CaughtUp: ptr(false),
		Workers: ptr(1), ApplyErrors: ptr(int64(0)), SyncErrors: ptr(int64(0)),
	}
	ready := 0
	for i := range tables {
		st := []string{"ready", "ready", "copying", "waiting"}[i%4]
		t := progress.Table{Name: fmt.Sprintf("public.t%04d", i), State: st, Bytes: 8192, TotalBytes: ptr(int64(16384)), Rows: ptr(int64(100)), RowsKind: "copied"}
		if st == "waiting" {
			t.Bytes, t.Rows, t.RowsKind = 0, ptr(int64(0)), ""
		}
		if st == "ready" {
			ready++
		}
		r.Tables = append(r.Tables, t)
		r.CopiedBytes += t.Bytes
		r.TotalBytes += *t.TotalBytes
	}
	r.Ready, r.Total = ptr(ready), tables
	return r
}

var switched = []state.Event{
	{Time: time.Now().Add(-time.Hour), Step: "migrate", Status: state.Done, Message: "caught up"},
	{Time: time.Now().Add(-time.Minute), Step: "switchover", Status: state.Done, Message: "paused 812 ms", Data: map[string]string{"pause_ms": "812.4"}},
}

func serve(t *testing.T, s *Server) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func get(t *testing.T, url string) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, res.Status, b)
	}
	return string(b), took
}

func parse(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, text)
	}
	return fams
}

// value is the value of the series of name with the given labels (all of
// its labels), and whether it exists.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.Metric {
		if len(m.Label)*2 != len(labels) {
			continue
		}
		match := true
		for i := 0; i < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		}
	}
	return 0, false
}

func promtool(t *testing.T, text string) {
	t.Helper()
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\n%s", err, out, text)
	}
}

func TestMetricsOfAKnownReport(t *testing.T) {
	s := &Server{}
	s.observe(fullReport(8), nil, switched[:1], time.Now())
	ts := serve(t, s)
	text, _ := get(t, ts.URL+"/metrics")
	promtool(t, text)
	fams := parse(t, text)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pgmove_replication_lag_bytes", nil, 4096},
		{"pgmove_replication_lag_seconds", nil, 1.5},
		{"pgmove_tables", []string{"state", "ready"}, 4},
		{"pgmove_tables", []string{"state", "copying"}, 2},
		{"pgmove_tables", []string{"state", "waiting"}, 2},
		{"pgmove_tables", []string{"state", "copied"}, 0},
		{"pgmove_copied_bytes_total", []string{"table", "public.t0000"}, 8192},
		{"pgmove_copied_rows_total", []string{"table", "public.t0002"}, 100},
		{"pgmove_copy_eta_seconds", nil, 30},
		{"pgmove_slot_retained_wal_bytes", nil, 1 << 20},
		{"pgmove_apply_worker_up", nil, 1},
		{"pgmove_phase", []string{"phase", "table_sync"}, 1},
		{"pgmove_phase", []string{"phase", "caught_up"}, 0},
		{"pgmove_caught_up", nil, 0},
		{"pgmove_source_up", nil, 1},
	} {
		got, ok := value(fams, c.name, c.labels...)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if f := fams["pgmove_copied_bytes_total"]; f.GetType() != dto.MetricType_COUNTER {
		t.Errorf("pgmove_copied_bytes_total is a %s, want a counter", f.GetType())
	}
	if _, ok := fams["pgmove_switchover_pause_seconds"]; ok {
		t.Errorf("a pause before any switchover:\n%s", text)
	}

	// After a switchover: its pause, and the phase says so.
	s.observe(fullReport(8), nil, switched, time.Now())
	fams = parse(t, func() string { s, _ := get(t, ts.URL+"/metrics"); return s }())
	if v, ok := value(fams, "pgmove_switchover_pause_seconds", "step", "switchover"); !ok || v != 0.8124 {
		t.Errorf("pause %v (present %v), want 0.8124", v, ok)
	}
	if v, _ := value(fams, "pgmove_phase", "phase", "switched_over"); v != 1 {
		t.Errorf("phase switched_over = %v, want 1", v)
	}
}

// What pgmove cannot know is an absent series, never 0.
func TestMetricsOfUnknownFiguresAreAbsent(t *testing.T) {
	s := &Server{}
	r := fullReport(4)
	r.Source = progress.Side{Error: "connection refused"}
	r.LagBytes, r.LagSeconds, r.ETA, r.RetainedWAL, r.CaughtUp = nil, nil, nil, nil, nil
	s.observe(r, nil, nil, time.Now())
	ts := serve(t, s)
	text, _ := get(t, ts.URL+"/metrics")
	promtool(t, text)
	fams := parse(t, text)
	for _, name := range []string{"pgmove_replication_lag_bytes", "pgmove_replication_lag_seconds", "pgmove_copy_eta_seconds",
		"pgmove_slot_retained_wal_bytes", "pgmove_caught_up", "pgmove_copy_size_bytes", "pgmove_tables_selected"} {
		if _, ok := fams[name]; ok {
			t.Errorf("%s present while the source is unreachable", name)
		}
	}
	if v, ok := value(fams, "pgmove_source_up"); !ok || v != 0 {
		t.Errorf("pgmove_source_up = %v (present %v), want 0", v, ok)
	}

	// A failed sample: nothing but the failure, the time and the phase.
	s.observe(nil, fmt.Errorf("target: read table states: conn closed"), nil, time.Now())
	text, _ = get(t, ts.URL+"/metrics")
	promtool(t, text)
	fams = parse(t, text)
	var names []string
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	if strings.Join(names, " ") != "pgmove_last_sample_timestamp_seconds pgmove_phase pgmove_sample_success" {
		t.Errorf("after a failed sample /metrics has %v", names)
	}
	if v, _ := value(fams, "pgmove_phase", "phase", "unknown"); v != 1 {
		t.Errorf("phase unknown = %v, want 1", v)
	}
}

// 2,000 tables: a synthetic report (the handlers read only the latest
// sample, so the servers behind it do not matter). Each endpoint answers
// in under 200 ms, and /metrics sums the copied figures into one series.
func TestTwoThousandTablesServedFast(t *testing.T) {
	s := &Server{}
	s.observe(fullReport(2000), nil, switched, time.Now())
	ts := serve(t, s)
	get(t, ts.URL+"/") // warm the connection
	for _, path := range []string{"/", "/api/page", "/api/progress", "/metrics"} {
		var worst time.Duration
		var body string
		for range 5 {
			b, took := get(t, ts.URL+path)
			worst, body = max(worst, took), b
		}
		t.Logf("GET %s: %d bytes, slowest of 5 in %s", path, len(body), worst)
		if worst > 200*time.Millisecond {
			t.Errorf("GET %s took %s with 2,000 tables, want under 200ms", path, worst)
		}
		if path == "/metrics" {
			promtool(t, body)
			fams := parse(t, body)
			if n := len(fams["pgmove_copied_bytes_total"].GetMetric()); n != 1 {
				t.Errorf("pgmove_copied_bytes_total has %d series with 2,000 tables, want 1 (summed)", n)
			}
			if v, _ := value(fams, "pgmove_copied_bytes_total"); v != 1500*8192 {
				t.Errorf("summed copied bytes %v, want %v", v, 1500*8192)
			}
			if v, _ := value(fams, "pgmove_copied_rows_total"); v != 1500*100 {
				t.Errorf("summed copied rows %v, want %v", v, 1500*100)
			}
		}
		if path == "/api/progress" {
			var r progress.Report
			if err := json.Unmarshal([]byte(body), &r); err != nil || len(r.Tables) != 2000 {
				t.Errorf("/api/progress: %v, %d tables", err, len(r.Tables))
			}
		}
	}
}

// /api/progress is byte for byte what progress --json prints for the sample.
func TestAPIProgressIsTheJSONReport(t *testing.T) {
	s := &Server{}
	r := fullReport(3)
	s.observe(r, nil, nil, time.Now())
	ts := serve(t, s)
	body, _ := get(t, ts.URL+"/api/progress")
	var want bytes.Buffer
	if err := r.WriteJSON(&want); err != nil {
		t.Fatal(err)
	}
	if body != want.String() {
		t.Errorf("/api/progress:\n%s\nprogress --json:\n%s", body, want.String())
	}
}

// Every metric the Grafana dashboard queries is one /metrics exposes.
func TestDashboardQueriesExistingMetrics(t *testing.T) {
	b, err := os.ReadFile("../../deploy/grafana/pgmove.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("deploy/grafana/pgmove.json: %v", err)
	}
	s := &Server{}
	s.observe(fullReport(8), nil, switched, time.Now())
	ts := serve(t, s)
	text, _ := get(t, ts.URL+"/metrics")
	fams := parse(t, text)
	re := regexp.MustCompile(`\bpgmove_[a-z_]+`)
	queried := map[string]bool{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range re.FindAllString(tg.Expr, -1) {
				queried[m] = true
				if fams[m] == nil {
					t.Errorf("panel %q queries %s, which /metrics does not expose", p.Title, m)
				}
			}
		}
	}
	for _, m := range []string{"pgmove_replication_lag_bytes", "pgmove_replication_lag_seconds", "pgmove_tables", "pgmove_copied_bytes_total",
		"pgmove_copy_eta_seconds", "pgmove_slot_retained_wal_bytes", "pgmove_switchover_pause_seconds"} {
		if !queried[m] {
			t.Errorf("the dashboard does not show %s", m)
		}
	}
}

func TestListenAddr(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{":9187", "127.0.0.1:9187", ""},
		{"9187", "127.0.0.1:9187", ""},
		{"0.0.0.0:9187", "0.0.0.0:9187", ""},
		{"localhost:9187", "localhost:9187", ""},
		{"[::1]:9187", "[::1]:9187", ""},
		{"host", "", "want HOST:PORT"},
		{":http", "", "the port must be a number"},
		{":70000", "", "the port must be a number"},
	} {
		got, err := ListenAddr(c.in)
		if got != c.want || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("ListenAddr(%q) = %q, %v; want %q, %q", c.in, got, err, c.want, c.err)
		}
	}
}

func TestListenOnAnAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Listen(ln.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "address already in use") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Listen on a port in use: %v", err)
	}
}

func TestServeStopsWithItsContext(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	samples := make(chan struct{}, 100)
	s := &Server{Interval: 10 * time.Millisecond, Sample: func(context.Context) (*progress.Report, error) {
		samples <- struct{}{}
		return fullReport(2), nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx, ln) }()
	<-samples
	<-samples
	get(t, "http://"+ln.Addr().String()+"/metrics")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not stop")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("still listening after Serve returned")
	}
}

func TestPhase(t *testing.T) {
	copying := &progress.Report{Exists: ptr(false), Copy: &progress.CopyProgress{Phase: "copy"}}
	stale := &progress.Report{Exists: ptr(false), Copy: &progress.CopyProgress{Phase: "copy", Stale: true}}
	none := &progress.Report{Exists: ptr(false)}
	unreachable := &progress.Report{}
	caught := fullReport(4)
	caught.Ready, caught.CaughtUp = ptr(4), ptr(true)
	catching := fullReport(4)
	catching.Ready = ptr(4)
	sourceDown := fullReport(4)
	sourceDown.Ready, sourceDown.CaughtUp, sourceDown.Source = ptr(4), nil, progress.Side{Error: "connection refused"}
	cleaned := append(append([]state.Event{}, switched...), state.Event{Time: time.Now(), Step: "cleanup", Status: state.Done})
	for _, c := range []struct {
		r      *progress.Report
		events []state.Event
		want   string
	}{
		{nil, nil, "unknown"},
		{unreachable, nil, "unknown"},
		{none, nil, "not_started"},
		{copying, nil, "copy"},
		{stale, nil, "copy_failed"},
		{fullReport(4), nil, "table_sync"},
		{catching, nil, "catching_up"},
		{sourceDown, nil, "unknown"},
		{caught, nil, "caught_up"},
		{caught, switched, "switched_over"},
		{none, cleaned, "finished"},
	} {
		if got := phaseOf(c.r, c.events); got != c.want {
			t.Errorf("phaseOf = %q, want %q", got, c.want)
		}
	}
}

// The page with 2,000 tables (a synthetic report), rendered by headless
// Chromium: every table's row is on it, with the lag and the phase.
func TestPageRendersTwoThousandTables(t *testing.T) {
	s := &Server{}
	now := time.Now()
	for i := range 30 {
		r := fullReport(2000)
		r.LagBytes = ptr(int64(i * 1000))
		s.observe(r, nil, switched, now.Add(time.Duration(i-30)*2*time.Second))
	}
	ts := serve(t, s)
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: scripts/install-deps installs it")
	}
	start := time.Now()
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--disable-dev-shm-usage", "--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000", "--dump-dom", ts.URL+"/")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	t.Logf("chromium loaded and rendered the page with 2,000 tables in %s", time.Since(start))
	dom := string(out)
	if n := strings.Count(dom, "<tr><td>public.t"); n != 2000 {
		t.Errorf("%d table rows rendered, want 2000", n)
	}
	for _, want := range []string{"public.t0000", "public.t1999", `id="phase">switched over<`, `id="lag">28.3 kB<`, "812 ms", "2000 table(s)", "<polyline"} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
}
