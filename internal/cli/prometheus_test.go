package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// promServer is Debian's prometheus server (scripts/install-deps installs
// it), run by a test on loopback with its own config and data directory.
type promServer struct {
	base string
	job  string // the scrape job's name, from deploy/prometheus/scrape.yml
}

// startPrometheus runs prometheus scraping target (host:port) every second
// with the job of deploy/prometheus/scrape.yml, the example users copy:
// only its target and its interval are changed.
func startPrometheus(t *testing.T, target string) *promServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not found: scripts/install-deps installs Debian's prometheus package")
	}
	b, err := os.ReadFile("../../deploy/prometheus/scrape.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []map[string]any `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil || len(cfg.ScrapeConfigs) != 1 {
		t.Fatalf("deploy/prometheus/scrape.yml: %v, %d jobs", err, len(cfg.ScrapeConfigs))
	}
	job := cfg.ScrapeConfigs[0]
	statics, _ := job["static_configs"].([]any)
	if len(statics) != 1 {
		t.Fatalf("deploy/prometheus/scrape.yml: static_configs %v", job["static_configs"])
	}
	static, _ := statics[0].(map[string]any)
	static["targets"] = []string{target}
	job["scrape_interval"], job["scrape_timeout"] = "1s", "1s"
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", deadPort(t))
	cmd := exec.Command(bin, "--config.file="+file, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	p := &promServer{base: "http://" + addr, job: fmt.Sprint(job["job_name"])}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := getText(p.base + "/-/ready"); err == nil {
			return p
		}
		select {
		case err := <-exited:
			t.Fatalf("prometheus exited: %v\n%s", err, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 30s\n%s", logs.String())
		}
	}
}

// promSeries is one series of an instant query's result.
type promSeries struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"` // [time, "value"]
}

// query evaluates expr now through the HTTP API.
func (p *promServer) query(expr string) ([]promSeries, error) {
	var res struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSeries `json:"result"`
		} `json:"data"`
	}
	if err := p.get("/api/v1/query?query="+neturl.QueryEscape(expr), &res); err != nil {
		return nil, err
	}
	if res.Status != "success" {
		return nil, fmt.Errorf("%s: %s", expr, res.Error)
	}
	if res.Data.ResultType != "vector" {
		return nil, fmt.Errorf("%s: a %s, want an instant vector", expr, res.Data.ResultType)
	}
	return res.Data.Result, nil
}

// labelValues is Grafana's label_values(selector, label).
func (p *promServer) labelValues(selector, label string) ([]string, error) {
	var res struct {
		Status string   `json:"status"`
		Error  string   `json:"error"`
		Data   []string `json:"data"`
	}
	if err := p.get("/api/v1/label/"+neturl.PathEscape(label)+"/values?match[]="+neturl.QueryEscape(selector), &res); err != nil {
		return nil, err
	}
	if res.Status != "success" {
		return nil, fmt.Errorf("label_values(%s, %s): %s", selector, label, res.Error)
	}
	return res.Data, nil
}

func (p *promServer) get(path string, v any) error {
	c := http.Client{Timeout: 10 * time.Second}
	res, err := c.Get(p.base + path)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	// The API answers errors (a bad query: 400, 422) with a JSON body too.
	return json.NewDecoder(res.Body).Decode(v)
}

// dashboard is what of deploy/grafana/pgmove.json a Grafana evaluates.
type dashboard struct {
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID      int    `json:"id"`
		Title   string `json:"title"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T) *dashboard {
	t.Helper()
	b, err := os.ReadFile("../../deploy/grafana/pgmove.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("deploy/grafana/pgmove.json: %v", err)
	}
	return &d
}

var varRef = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)

// substitute puts the variables' values in a query, as Grafana does for a
// single value ($name and ${name}).
func substitute(q string, vars map[string]string) string {
	return varRef.ReplaceAllStringFunc(q, func(m string) string {
		name := strings.Trim(m, "${}")
		if v, ok := vars[name]; ok {
			return v
		}
		return m
	})
}

// resolveVariables runs the dashboard's query variables in order
// (label_values(selector, label)), each with the ones before it
// substituted, and picks the value want names (label: value), as a user
// picks the migration; every variable must offer it.
func (p *promServer) resolveVariables(t *testing.T, d *dashboard, want map[string]string) map[string]string {
	t.Helper()
	vars := map[string]string{}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(substitute(v.Definition, vars))
		if m == nil {
			t.Fatalf("dashboard variable %s: %q is no label_values(selector, label)", v.Name, v.Definition)
		}
		pick, ok := want[m[2]]
		// Prometheus applies its targets up to 5 s after it starts
		// (discovery updates are throttled), then scrapes.
		var values []string
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
			var err error
			if values, err = p.labelValues(m[1], m[2]); err != nil {
				t.Fatalf("dashboard variable %s: %v", v.Name, err)
			}
			if !ok || contains(values, pick) || time.Now().After(deadline) {
				break
			}
		}
		if !ok || !contains(values, pick) {
			targets, _ := getText(p.base + "/api/v1/targets")
			t.Fatalf("dashboard variable %s (%s) offers %v, want %q among them; prometheus's targets: %s", v.Name, v.Definition, values, pick, targets)
		}
		vars[v.Name] = pick
	}
	return vars
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// panelQueries evaluates every query of the dashboard's panels that only
// selects, the variables substituted, until each returns a series, within
// the deadline; it returns the series by "panel title/refId".
func (p *promServer) panelQueries(t *testing.T, d *dashboard, vars map[string]string, only func(title string) bool, within time.Duration) map[string][]promSeries {
	t.Helper()
	got := map[string][]promSeries{}
	deadline := time.Now().Add(within)
	for _, panel := range d.Panels {
		if !only(panel.Title) {
			continue
		}
		for _, tg := range panel.Targets {
			expr := substitute(tg.Expr, vars)
			if strings.Contains(expr, "$") {
				t.Errorf("panel %q %s: a variable left in %q", panel.Title, tg.RefID, expr)
				continue
			}
			for {
				series, err := p.query(expr)
				if err != nil {
					t.Errorf("panel %q %s: %v", panel.Title, tg.RefID, err)
					break
				}
				if len(series) > 0 {
					got[panel.Title+"/"+tg.RefID] = series
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("panel %q %s: %s returns no series", panel.Title, tg.RefID, expr)
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
		}
	}
	return got
}

// value is a series' value as a number.
func (s promSeries) value() float64 {
	var f float64
	if len(s.Value) == 2 {
		fmt.Sscan(fmt.Sprint(s.Value[1]), &f)
	}
	return f
}

// waitQuery evaluates expr until it returns a series, within the deadline.
func (p *promServer) waitQuery(t *testing.T, expr string, within time.Duration) []promSeries {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		series, err := p.query(expr)
		if err != nil {
			t.Fatal(err)
		}
		if len(series) > 0 {
			return series
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus: %s returned no series within %s", expr, within)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
