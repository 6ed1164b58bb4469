package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/pgserver"
)

// The switchover bench (`make bench-switchover`, scripts/bench -switchover):
// an application writing through a real pgbouncer in transaction pooling,
// moved to the target by pgmove switchover and back by pgmove rollback, then
// a switch abandoned because the target cannot catch up. It measures what
// the application saw: the probe's longest gap between two commits, the
// commits that failed, and the acknowledged ones missing at the end.

// The targets for the switch.
const (
	wantPauseMS = 250.0
	swDB        = "bench_switchover"
	probeEvery  = 10 * time.Millisecond
	// The lead is how long the load runs before pgmove starts, and the
	// tail how long it goes on after pgmove ends.
	swLead = 3 * time.Second
	swTail = 2 * time.Second
)

// The phases, in the order they run.
const (
	phaseSwitchover = "switchover"
	phaseRollback   = "rollback"
	phaseAbort      = "abandoned switchover"
)

// switchoverResults is what one switchover bench measured; it is written as
// JSON to bench/results/<time>-switchover.json.
type switchoverResults struct {
	Time          string            `json:"time"`
	Cores         int               `json:"cores"`
	PgmoveVersion string            `json:"pgmove_version"`
	GitCommit     string            `json:"git_commit,omitempty"`
	Source        string            `json:"source_version"`
	Target        string            `json:"target_version"`
	PgBouncer     string            `json:"pgbouncer_version"`
	Scale         int               `json:"pgbench_scale"`
	Clients       int               `json:"pgbench_clients"`
	Rate          int               `json:"pgbench_rate,omitempty"` // pgbench -R; 0: as fast as it goes
	Settings      map[string]string `json:"server_settings"`
	Phases        []phaseResult     `json:"phases"`
	// At the end, once the target caught up: the pgbench tables' counts and
	// balances on both sides, and the probe's acknowledged rows.
	ProbeAcked   int            `json:"probe_acknowledged"`
	ProbeLost    map[string]int `json:"probe_lost"` // every acknowledged row, in a phase or between, missing by side
	SourceTables map[string]any `json:"source_tables"`
	TargetTables map[string]any `json:"target_tables"`
	TablesAgree  bool           `json:"tables_agree"`
	CaughtUpMS   float64        `json:"caught_up_ms"`
	Targets      []targetResult `json:"targets"`
}

// phaseResult is one pgmove command run under the load.
type phaseResult struct {
	Name     string  `json:"name"`
	Command  string  `json:"command"`
	ExitCode int     `json:"exit_code"`
	Seconds  float64 `json:"seconds"`
	PauseMS  float64 `json:"pause_ms"` // as pgmove reported it
	Steps    []struct {
		Name string  `json:"step"`
		MS   float64 `json:"ms"`
	} `json:"steps"`
	Aborted bool   `json:"aborted"`
	Reason  string `json:"reason,omitempty"`
	Error   string `json:"error,omitempty"` // pgmove's last stderr line when it failed
	// The probe in the phase's window (load start to load end).
	ProbeCommits    int     `json:"probe_commits"`
	ProbeMaxGapMS   float64 `json:"probe_max_gap_ms"`
	ProbeFailed     int     `json:"probe_failed"`
	ProbeFirstError string  `json:"probe_first_error,omitempty"`
	// pgbench's own report.
	PgbenchTransactions int64   `json:"pgbench_transactions"`
	PgbenchFailed       int64   `json:"pgbench_failed"`
	PgbenchAborted      int     `json:"pgbench_aborted_clients"`
	PgbenchTPS          float64 `json:"pgbench_tps"`
	PgbenchError        string  `json:"pgbench_error,omitempty"`
	// UnderLoad: pgbench was still running when pgmove ended.
	UnderLoad bool `json:"under_load"`
	// The phase's acknowledged probe rows missing on a side at the end.
	LostSource []int64 `json:"lost_on_source"`
	LostTarget []int64 `json:"lost_on_target"`
	probeFrom  int     // index of the phase's first acknowledged row
	probeTo    int
}

// probe commits one row every 10 ms through pgbouncer, as an application
// would, and keeps every id the server acknowledged.
type probe struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	acked    []int64
	failed   int
	firstErr string
	maxGap   time.Duration
}

func startProbe(url string) *probe {
	ctx, cancel := context.WithCancel(context.Background())
	p := &probe{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		var conn *pgx.Conn
		defer func() {
			if conn != nil {
				conn.Close(context.Background())
			}
		}()
		last := time.Now()
		for ctx.Err() == nil {
			if conn == nil {
				cfg, err := pgx.ParseConfig(url)
				if err == nil {
					cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
					cfg.RuntimeParams["application_name"] = "pgmove/bench-probe"
					conn, err = pgx.ConnectConfig(ctx, cfg)
				}
				if err != nil {
					conn = nil
					p.fail(ctx, err)
					time.Sleep(probeEvery)
					continue
				}
			}
			var id int64
			qctx, qcancel := context.WithTimeout(ctx, 30*time.Second)
			err := conn.QueryRow(qctx, "INSERT INTO probe (note) VALUES ('probe') RETURNING id").Scan(&id)
			qcancel()
			if err != nil {
				p.fail(ctx, err)
				conn.Close(context.Background())
				conn = nil
				continue
			}
			now := time.Now()
			p.mu.Lock()
			p.acked = append(p.acked, id)
			p.maxGap = max(p.maxGap, now.Sub(last))
			p.mu.Unlock()
			last = now
			time.Sleep(probeEvery)
		}
	}()
	return p
}

func (p *probe) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed == 0 {
		p.firstErr = oneLine(err.Error())
	}
	p.failed++
}

// mark starts a window: it returns the count of acknowledged rows and the
// failures so far, and resets the longest gap.
func (p *probe) mark() (acked, failed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.maxGap = 0
	return len(p.acked), p.failed
}

// window returns the longest gap since mark, the count of acknowledged rows
// and the failures so far, and the first error.
func (p *probe) window() (gap time.Duration, acked, failed int, firstErr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxGap, len(p.acked), p.failed, p.firstErr
}

func (p *probe) stop() {
	p.cancel()
	<-p.done
}

// swRun is the state of one switchover bench.
type swRun struct {
	b       *bench
	dst     *pgserver.Server
	bouncer *pgserver.PgBouncer
	home    string // pgmove's HOME: its journal lives under it
	app     string // the application's URL: through pgbouncer
	probe   *probe
	res     switchoverResults
}

// runSwitchover is the whole switchover bench.
func (b *bench) runSwitchover(ctx context.Context) error {
	r := &swRun{b: b}
	var err error
	if r.dst, err = b.startServers(ctx); err != nil {
		return err
	}
	r.res = switchoverResults{Time: time.Now().UTC().Format(time.RFC3339), Cores: runtime.NumCPU(), PgmoveVersion: b.pgmoveVersion,
		GitCommit: b.gitCommit, Source: shortVersion(b.src), Target: shortVersion(r.dst), Scale: b.o.scale, Clients: b.o.clients, Rate: b.o.rate}
	if out, err := exec.CommandContext(ctx, "/usr/sbin/pgbouncer", "--version").Output(); err == nil {
		r.res.PgBouncer = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	if r.res.Settings, err = b.liveSettings(ctx, b.src, r.dst); err != nil {
		return err
	}
	writeSwitchoverHeader(b.stdout, &r.res, b.o)
	if err := r.prepare(ctx); err != nil {
		return err
	}
	defer r.bouncer.Stop()
	r.probe = startProbe(r.app)
	defer r.probe.stop()
	time.Sleep(time.Second)

	pgbouncerArgs := []string{"--pgbouncer", r.bouncer.AdminURL(b.src.Superuser), "--pgbouncer-ini", r.bouncer.INI}
	for _, ph := range []struct {
		name string
		args []string
	}{
		{phaseSwitchover, append([]string{"switchover"}, pgbouncerArgs...)},
		{phaseRollback, append([]string{"rollback"}, pgbouncerArgs...)},
		// The lag grows while the apply is held, and preflight would stop
		// at --max-lag before any fence: the abort path is what is measured.
		{phaseAbort, append([]string{"switchover", "--max-pause", "500ms", "--max-lag", "1GB"}, pgbouncerArgs...)},
	} {
		pr, err := r.phase(ctx, ph.name, ph.args)
		if err != nil {
			return err
		}
		r.res.Phases = append(r.res.Phases, pr)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	r.probe.stop()
	if err := r.settle(ctx); err != nil {
		return err
	}
	r.res.Targets = evaluateSwitchover(&r.res)
	writeSwitchover(b.stdout, &r.res)
	path := filepath.Join(b.o.results, b.stamp+"-switchover.json")
	if err := writeAnyJSON(path, r.res); err != nil {
		return err
	}
	fmt.Fprintf(b.stdout, "\nresults: %s (logs in %s/)\n", path, b.logDir)
	return nil
}

// prepare builds the pgbench database on the source, migrates it to the
// target and starts pgbouncer in front of the source.
func (r *swRun) prepare(ctx context.Context) error {
	b := r.b
	b.progress("building pgbench scale %d in source database %s", b.o.scale, swDB)
	start := time.Now()
	if err := freshDatabase(ctx, swDB, b.src); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if err := b.buildPgbench(ctx, swDB); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if err := execIn(ctx, b.src, swDB, "CREATE TABLE probe (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), note text)"); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if err := freshDatabase(ctx, swDB, r.dst); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	b.progress("built in %.1f s; pgmove migrate", time.Since(start).Seconds())
	r.home = filepath.Join(b.work, "switchover")
	if err := os.MkdirAll(r.home, 0o700); err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	start = time.Now()
	if _, err := r.pgmove(ctx, "migrate", nil, "migrate"); err != nil {
		return err
	}
	b.progress("migrated in %.1f s", time.Since(start).Seconds())
	var err error
	r.bouncer, err = pgserver.StartPgBouncer(ctx, pgserver.BouncerOptions{Name: "bench",
		Databases: map[string]string{swDB: fmt.Sprintf("host=%s port=%d dbname=%s", b.src.Host, b.src.Port, swDB)},
		User:      b.src.Superuser, Password: b.password})
	if err != nil {
		return err
	}
	r.app = fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", b.src.Superuser, r.bouncer.Port, swDB)
	b.progress("pgbouncer (transaction pooling) on 127.0.0.1:%d in front of the source", r.bouncer.Port)
	return nil
}

// pgmove runs pgmove with the bench's URLs and returns its stdout; its
// stderr goes to the phase's log.
func (r *swRun) pgmove(ctx context.Context, tag string, stdout io.Writer, args ...string) (int, error) {
	b := r.b
	argv := append([]string{"--src", pgURL(b.src, swDB), "--dst", pgURL(r.dst, swDB)}, args...)
	logPath := filepath.Join(b.logDir, "switchover-"+strings.ReplaceAll(tag, " ", "-")+".log")
	log, err := os.Create(logPath)
	if err != nil {
		return 0, fmt.Errorf("log file: %w", err)
	}
	defer log.Close()
	fmt.Fprintf(log, "# pgmove %s\n", strings.Join(argv, " "))
	// Bounded: a pgmove waiting on a lock is reported, not waited for.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.o.pgmove, argv...)
	cmd.Env = r.env()
	cmd.Stdout, cmd.Stderr = log, log
	if stdout != nil {
		cmd.Stdout = io.MultiWriter(stdout, log)
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	err = cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		return 0, fmt.Errorf("pgmove %s: %w", tag, err)
	}
	if code != 0 && tag == "migrate" {
		return code, fmt.Errorf("pgmove migrate exited %d: %s (log: %s)", code, lastLine(logPath), logPath)
	}
	return code, nil
}

// env is the tools' environment: the bench's password file, and the 18
// client's pg_dump for a source newer than Debian's 15.
func (r *swRun) env() []string {
	env := r.b.childEnv(r.home)
	if r.b.o.srcMajor > 15 {
		if d, err := pgserver.ClientDir(); err == nil {
			env = append(env, "PGMOVE_PG_BINDIR="+d)
		}
	}
	return env
}

// phase runs one pgmove command under the load: pgbench through pgbouncer
// for the lead, pgmove, the tail; the probe all along.
func (r *swRun) phase(ctx context.Context, name string, args []string) (phaseResult, error) {
	b := r.b
	pr := phaseResult{Name: name, Command: "pgmove " + strings.Join(args, " ") + " --json"}
	var lock *pgx.Conn
	if name == phaseAbort {
		// The target's apply waits on a lock, so it cannot reach the fence
		// within --max-pause. The apply commits synchronously first, as the
		// switch wants it: an ALTER SUBSCRIPTION would wait behind the stuck
		// apply, and the switch would fail before its pause.
		var sub string
		if err := queryIn(ctx, r.dst, swDB, "SELECT subname FROM pg_catalog.pg_subscription WHERE subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())", &sub); err != nil {
			return pr, fmt.Errorf("target: %w", err)
		}
		if err := execIn(ctx, r.dst, swDB, "ALTER SUBSCRIPTION "+pgx.Identifier{sub}.Sanitize()+" SET (synchronous_commit = on)"); err != nil {
			return pr, fmt.Errorf("target: %w", err)
		}
		// The way back's publication on the target comes from the switchover
		// before: creating it would wait behind the lock (SHARE UPDATE
		// EXCLUSIVE on each table) for as long as the lock is held.
		var pubs int
		if err := queryIn(ctx, r.dst, swDB, "SELECT count(*) FROM pg_catalog.pg_publication", &pubs); err != nil {
			return pr, fmt.Errorf("target: %w", err)
		}
		if pubs == 0 {
			pr.Error = "not run: no switchover prepared the way back's publication on the target (creating it would wait behind the lock)"
			b.progress("%s: %s", name, pr.Error)
			return pr, nil
		}
	}
	b.progress("%s: pgbench -c %d through pgbouncer, then %s", name, b.o.clients, pr.Command)
	from, failedBefore := r.probe.mark()
	pgbenchLog := filepath.Join(b.logDir, "switchover-"+strings.ReplaceAll(name, " ", "-")+"-pgbench.log")
	load, loadLog, err := r.startPgbench(ctx, pgbenchLog)
	if err != nil {
		return pr, err
	}
	loadDone := make(chan error, 1)
	go func() { loadDone <- load.Wait(); loadLog.Close() }()
	time.Sleep(swLead)
	if name == phaseAbort {
		var err error
		if lock, err = connect(ctx, r.dst, swDB); err != nil {
			return pr, fmt.Errorf("target: %w", err)
		}
		defer lock.Close(context.Background())
		if _, err := lock.Exec(ctx, "BEGIN; LOCK TABLE probe IN SHARE MODE"); err != nil {
			return pr, fmt.Errorf("target: lock probe: %w", err)
		}
	}
	var out bytes.Buffer
	start := time.Now()
	pr.ExitCode, err = r.pgmove(ctx, name, &out, append(args, "--json")...)
	pr.Seconds = time.Since(start).Seconds()
	if err != nil {
		return pr, err
	}
	if lock != nil {
		if _, err := lock.Exec(ctx, "ROLLBACK"); err != nil {
			return pr, fmt.Errorf("target: unlock probe: %w", err)
		}
	}
	if jerr := json.Unmarshal(out.Bytes(), &pr); jerr != nil || pr.ExitCode != 0 {
		logPath := filepath.Join(b.logDir, "switchover-"+strings.ReplaceAll(name, " ", "-")+".log")
		pr.Error = lastLine(logPath)
	}
	select {
	case <-loadDone:
		pr.UnderLoad = false
	default:
		pr.UnderLoad = true
	}
	time.Sleep(swTail)
	// pgbench's run is as long as the lead, pgmove and the tail: it was
	// started with that -T and a margin, and is stopped here if still running.
	var loadErr error
	select {
	case loadErr = <-loadDone:
	case <-time.After(time.Duration(b.o.phaseSeconds) * time.Second):
		_ = load.Process.Kill()
		loadErr = <-loadDone
	}
	gap, to, failed, firstErr := r.probe.window()
	pr.ProbeMaxGapMS = float64(gap.Microseconds()) / 1000
	pr.probeFrom, pr.probeTo = from, to
	pr.ProbeCommits = to - from
	pr.ProbeFailed = failed - failedBefore
	if pr.ProbeFailed > 0 {
		pr.ProbeFirstError = firstErr
	}
	parsePgbench(pgbenchLog, &pr)
	if loadErr != nil && pr.PgbenchError == "" {
		pr.PgbenchError = fmt.Sprintf("pgbench: %v (log: %s)", loadErr, pgbenchLog)
	}
	b.progress("%s: exit %d, pause %.0f ms, probe's longest gap %.0f ms, %d probe and %d pgbench commit(s), %d+%d failed",
		name, pr.ExitCode, pr.PauseMS, pr.ProbeMaxGapMS, pr.ProbeCommits, pr.PgbenchTransactions, pr.ProbeFailed, pr.PgbenchFailed+int64(pr.PgbenchAborted))
	return pr, nil
}

// startPgbench starts pgbench's TPC-B-like load through pgbouncer for at
// most phaseSeconds.
func (r *swRun) startPgbench(ctx context.Context, logPath string) (*exec.Cmd, *os.File, error) {
	b := r.b
	args := []string{"-n", "-c", strconv.Itoa(b.o.clients), "-j", "2", "-T", strconv.Itoa(b.o.phaseSeconds),
		"-h", "127.0.0.1", "-p", strconv.Itoa(r.bouncer.Port), "-U", b.src.Superuser}
	if b.o.rate > 0 {
		args = append(args, "-R", strconv.Itoa(b.o.rate))
	}
	args = append(args, swDB)
	log, err := os.Create(logPath)
	if err != nil {
		return nil, nil, fmt.Errorf("log file: %w", err)
	}
	fmt.Fprintf(log, "# %s %s\n", b.pgbench, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, b.pgbench, args...)
	cmd.Env = r.env()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, nil, fmt.Errorf("pgbench: %w", err)
	}
	return cmd, log, nil
}

var (
	pgbenchProcessed = regexp.MustCompile(`(?m)^number of transactions actually processed: (\d+)`)
	pgbenchFailed    = regexp.MustCompile(`(?m)^number of failed transactions: (\d+)`)
	pgbenchTPS       = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)
	pgbenchAborted   = regexp.MustCompile(`(?m)^client \d+ aborted`)
)

// parsePgbench reads pgbench's report: transactions, failed ones, aborted
// clients and tps.
func parsePgbench(path string, pr *phaseResult) {
	text, err := os.ReadFile(path)
	if err != nil {
		pr.PgbenchError = err.Error()
		return
	}
	if m := pgbenchProcessed.FindSubmatch(text); m != nil {
		pr.PgbenchTransactions, _ = strconv.ParseInt(string(m[1]), 10, 64)
	} else {
		pr.PgbenchError = "no report from pgbench: " + lastLine(path)
	}
	if m := pgbenchFailed.FindSubmatch(text); m != nil {
		pr.PgbenchFailed, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if m := pgbenchTPS.FindSubmatch(text); m != nil {
		pr.PgbenchTPS, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	pr.PgbenchAborted = len(pgbenchAborted.FindAll(text, -1))
	if pr.PgbenchAborted > 0 {
		sc := bufio.NewScanner(bytes.NewReader(text))
		for sc.Scan() {
			if pgbenchAborted.MatchString(sc.Text()) {
				pr.PgbenchError = oneLine(sc.Text())
				break
			}
		}
	}
}

// The pgbench tables' contents compared at the end: the counts and the sums
// of the balances (an update applied twice or lost changes a sum).
const tablesSummarySQL = `SELECT (SELECT count(*) FROM pgbench_accounts), (SELECT coalesce(sum(abalance), 0) FROM pgbench_accounts),
	(SELECT count(*) FROM pgbench_branches), (SELECT coalesce(sum(bbalance), 0) FROM pgbench_branches),
	(SELECT count(*) FROM pgbench_tellers), (SELECT coalesce(sum(tbalance), 0) FROM pgbench_tellers),
	(SELECT count(*) FROM pgbench_history), (SELECT coalesce(sum(delta), 0) FROM pgbench_history),
	(SELECT count(*) FROM probe)`

var summaryKeys = []string{"pgbench_accounts rows", "sum(abalance)", "pgbench_branches rows", "sum(bbalance)",
	"pgbench_tellers rows", "sum(tbalance)", "pgbench_history rows", "sum(delta)", "probe rows"}

func tablesSummary(ctx context.Context, s *pgserver.Server) (map[string]any, error) {
	conn, err := connect(ctx, s, swDB)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	vals := make([]int64, len(summaryKeys))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := conn.QueryRow(ctx, tablesSummarySQL).Scan(ptrs...); err != nil {
		return nil, fmt.Errorf("postgresql %d: compare the tables: %w", s.Major, err)
	}
	m := map[string]any{}
	for i, k := range summaryKeys {
		m[k] = vals[i]
	}
	return m, nil
}

// settle waits until the target holds what the source does (the forward
// replication runs again after the rollback and the abandoned switch), then
// looks up every acknowledged probe row on both sides.
func (r *swRun) settle(ctx context.Context) error {
	b := r.b
	start := time.Now()
	deadline := start.Add(2 * time.Minute)
	for {
		src, err := tablesSummary(ctx, b.src)
		if err != nil {
			return fmt.Errorf("source: %w", err)
		}
		dst, err := tablesSummary(ctx, r.dst)
		if err != nil {
			return fmt.Errorf("target: %w", err)
		}
		r.res.SourceTables, r.res.TargetTables = src, dst
		r.res.TablesAgree = fmt.Sprint(src) == fmt.Sprint(dst)
		if r.res.TablesAgree || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.res.CaughtUpMS = float64(time.Since(start).Milliseconds())
	r.probe.mu.Lock()
	acked := append([]int64(nil), r.probe.acked...)
	r.probe.mu.Unlock()
	r.res.ProbeAcked = len(acked)
	r.res.ProbeLost = map[string]int{}
	for _, side := range []struct {
		name string
		s    *pgserver.Server
		lost func(*phaseResult) *[]int64
	}{
		{"source", b.src, func(p *phaseResult) *[]int64 { return &p.LostSource }},
		{"target", r.dst, func(p *phaseResult) *[]int64 { return &p.LostTarget }},
	} {
		missing, err := missingIDs(ctx, side.s, acked)
		if err != nil {
			return err
		}
		r.res.ProbeLost[side.name] = len(missing)
		for i := range r.res.Phases {
			p := &r.res.Phases[i]
			lost := side.lost(p)
			*lost = []int64{}
			for _, idx := range missing {
				if idx >= p.probeFrom && idx < p.probeTo {
					*lost = append(*lost, acked[idx])
				}
			}
		}
	}
	return nil
}

// missingIDs returns the indexes in ids of those the probe table lacks.
func missingIDs(ctx context.Context, s *pgserver.Server, ids []int64) ([]int, error) {
	conn, err := connect(ctx, s, swDB)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT a.i FROM unnest($1::bigint[]) WITH ORDINALITY AS a(id, i)
		WHERE NOT EXISTS (SELECT 1 FROM probe p WHERE p.id = a.id) ORDER BY a.i`, ids)
	if err != nil {
		return nil, fmt.Errorf("postgresql %d: look up the acknowledged rows: %w", s.Major, err)
	}
	idx, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("postgresql %d: look up the acknowledged rows: %w", s.Major, err)
	}
	out := make([]int, len(idx))
	for i, n := range idx {
		out[i] = int(n) - 1
	}
	return out, nil
}

// queryIn reads one row from db into dest.
func queryIn(ctx context.Context, s *pgserver.Server, db, q string, dest ...any) error {
	conn, err := connect(ctx, s, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, q).Scan(dest...); err != nil {
		return fmt.Errorf("postgresql %d, database %s: %s: %w", s.Major, db, firstWords(q), err)
	}
	return nil
}

// evaluateSwitchover judges the targets: for the switchover and the
// rollback, the pause under 250 ms (as pgmove reported it and as the probe
// saw it), 0 failed and 0 lost; for the abandoned switch, 0 lost.
func evaluateSwitchover(res *switchoverResults) []targetResult {
	var ts []targetResult
	for i := range res.Phases {
		p := &res.Phases[i]
		lost := len(p.LostSource) + len(p.LostTarget)
		lostGot := fmt.Sprintf("%d (on the source %d, on the target %d, of %d acknowledged)", lost, len(p.LostSource), len(p.LostTarget), p.ProbeCommits)
		failed := int64(p.ProbeFailed) + p.PgbenchFailed + int64(p.PgbenchAborted)
		failedGot := fmt.Sprintf("%d (probe %d, pgbench failed %d, pgbench clients aborted %d)", failed, p.ProbeFailed, p.PgbenchFailed, p.PgbenchAborted)
		if p.ProbeFirstError != "" {
			failedGot += "; first: " + p.ProbeFirstError
		}
		if strings.HasPrefix(p.Error, "not run") {
			ts = append(ts, targetResult{Target: p.Name + ": 0 lost", Status: "n/a", Got: p.Error})
			continue
		}
		if p.Name == phaseAbort {
			ok := p.ExitCode == 1 && p.Aborted
			ts = append(ts,
				targetResult{Target: p.Name + ": abandoned, nothing switched (exit 1)", Status: passFail(ok),
					Got: fmt.Sprintf("exit %d, aborted %v: %s", p.ExitCode, p.Aborted, firstNonEmpty(p.Reason, p.Error))},
				targetResult{Target: p.Name + ": 0 lost", Status: passFail(lost == 0), Got: lostGot})
			continue
		}
		if p.ExitCode != 0 || p.Aborted {
			ts = append(ts, targetResult{Target: p.Name + ": done", Status: "FAIL", Got: fmt.Sprintf("exit %d: %s", p.ExitCode, firstNonEmpty(p.Reason, p.Error))})
		}
		load := ""
		if !p.UnderLoad {
			load = " (pgbench had ended before pgmove did)"
		}
		ts = append(ts,
			targetResult{Target: fmt.Sprintf("%s: pause pgmove reported < %.0f ms", p.Name, wantPauseMS), Status: passFail(p.ExitCode == 0 && p.PauseMS < wantPauseMS),
				Got: fmt.Sprintf("%.0f ms%s", p.PauseMS, load)},
			targetResult{Target: fmt.Sprintf("%s: the probe's longest gap < %.0f ms", p.Name, wantPauseMS), Status: passFail(p.ProbeMaxGapMS < wantPauseMS),
				Got: fmt.Sprintf("%.0f ms", p.ProbeMaxGapMS)},
			targetResult{Target: p.Name + ": 0 failed", Status: passFail(failed == 0 && p.PgbenchError == ""), Got: failedGot + pgbenchNote(p)},
			targetResult{Target: p.Name + ": 0 lost", Status: passFail(lost == 0), Got: lostGot})
	}
	lost := res.ProbeLost["source"] + res.ProbeLost["target"]
	ts = append(ts, targetResult{Target: "every acknowledged probe row of the run on both sides at the end", Status: passFail(lost == 0),
		Got: fmt.Sprintf("%d lost of %d (on the source %d, on the target %d)", lost, res.ProbeAcked, res.ProbeLost["source"], res.ProbeLost["target"])},
		targetResult{Target: "the pgbench tables agree on both sides at the end", Status: passFail(res.TablesAgree),
			Got: agreeGot(res)})
	return ts
}

func pgbenchNote(p *phaseResult) string {
	if p.PgbenchError != "" {
		return "; " + p.PgbenchError
	}
	return ""
}

func agreeGot(res *switchoverResults) string {
	if res.TablesAgree {
		return fmt.Sprintf("counts and balance sums equal (%v history rows, %v probe rows), %.1f s after the last command",
			res.SourceTables["pgbench_history rows"], res.SourceTables["probe rows"], res.CaughtUpMS/1000)
	}
	var diff []string
	for _, k := range summaryKeys {
		if fmt.Sprint(res.SourceTables[k]) != fmt.Sprint(res.TargetTables[k]) {
			diff = append(diff, fmt.Sprintf("%s source %v target %v", k, res.SourceTables[k], res.TargetTables[k]))
		}
	}
	return "differ after 2 min: " + strings.Join(diff, "; ")
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func writeSwitchoverHeader(w io.Writer, res *switchoverResults, o *options) {
	fmt.Fprintf(w, "pgmove bench-switchover: %s", res.PgmoveVersion)
	if res.GitCommit != "" {
		fmt.Fprintf(w, " (%s)", res.GitCommit)
	}
	rate := "as fast as it goes"
	if o.rate > 0 {
		rate = fmt.Sprintf("-R %d", o.rate)
	}
	fmt.Fprintf(w, ", %d cores; source PostgreSQL %s -> target PostgreSQL %s, loopback; %s\n", res.Cores, res.Source, res.Target, res.PgBouncer)
	fmt.Fprintf(w, "load: pgbench scale %d, pgbench -c %d (%s) through pgbouncer (transaction pooling) in front of the source,\n", o.scale, o.clients, rate)
	fmt.Fprintf(w, "  and a probe committing one row every %s through it, keeping every acknowledged id.\n", probeEvery)
	fmt.Fprintf(w, "phases, each under that load (%s of it before pgmove starts, %s after it ends):\n", swLead, swTail)
	fmt.Fprintln(w, "  switchover --pgbouncer ... --pgbouncer-ini ...; rollback (the same);")
	fmt.Fprintln(w, "  abandoned switchover: the target's apply waits on a lock (LOCK TABLE probe IN SHARE MODE), --max-pause 500ms")
	fmt.Fprintln(w, "  (and --max-lag 1GB, as the lag grows while the apply waits).")
	fmt.Fprintln(w, "pause = from the fence to RESUME as pgmove reports it; the probe's longest gap = the longest time between two of its")
	fmt.Fprintln(w, "  commits in the phase (10 ms of it is the probe's own sleep). Lost = acknowledged probe rows missing on a side at the")
	fmt.Fprintln(w, "  end, once the target caught up.")
	writeSettings(w, res.Settings, o.fsyncOff)
}

func writeSwitchover(w io.Writer, res *switchoverResults) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "phase\texit\tpause (pgmove)\tsteps\tprobe longest gap\tprobe commits\tpgbench tx (tps)\tfailed (probe+pgbench)\tlost (source/target)")
	for i := range res.Phases {
		p := &res.Phases[i]
		var steps []string
		for _, s := range p.Steps {
			steps = append(steps, fmt.Sprintf("%s %.0f", s.Name, s.MS))
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f ms\t%s\t%.0f ms\t%d\t%d (%.0f)\t%d+%d\t%d/%d\n", p.Name, p.ExitCode, p.PauseMS, strings.Join(steps, ", "),
			p.ProbeMaxGapMS, p.ProbeCommits, p.PgbenchTransactions, p.PgbenchTPS, p.ProbeFailed, p.PgbenchFailed+int64(p.PgbenchAborted),
			len(p.LostSource), len(p.LostTarget))
	}
	tw.Flush()
	pass := 0
	for _, t := range res.Targets {
		if t.Status == "PASS" {
			pass++
		}
	}
	note := ""
	if res.Cores != 2 {
		note = fmt.Sprintf(" (the targets are for a 2-core machine; this one has %d)", res.Cores)
	}
	fmt.Fprintf(w, "\n== targets: %d of %d pass%s\n", pass, len(res.Targets), note)
	for _, t := range res.Targets {
		fmt.Fprintf(w, "  %-4s  %s: %s\n", t.Status, t.Target, t.Got)
	}
}

func writeAnyJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	return nil
}
