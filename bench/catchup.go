package main

import (
	"bufio"
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
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/phase"
)

// The catch-up benchmark (make bench-catchup, scripts/bench -catchup), issue
// 18 point 4. A long copy leaves the target behind by the WAL written
// meanwhile, and PostgreSQL applies a subscription's changes in one process.
// On pgbench -scale, on production-settings servers (bench/settings.go):
//
//  1. pgbench -R -rate writes on the source through the whole `pgmove
//     migrate`; the lag at the end of the copy (when the subscription
//     starts) and the seconds until it is under 1 MB, read from the
//     source's slot every 200 ms;
//  2. steps of pgbench at rising fixed rates, then unthrottled: the highest
//     rate after which the lag is still under 1 MB, and whether the source
//     (pgbench could not reach the rate) or the apply (the lag grew) is
//     what stopped it;
//  3. the apply's own speed, each subscription option in turn, -runs times
//     taking turns: the subscription disabled, a fixed number of pgbench
//     transactions written, enabled, the seconds until the target confirms
//     them all (binary on and off, where both sides allow binary);
//  4. one large transaction (an UPDATE of 10% of pgbench_accounts): the
//     seconds from its commit on the source until the target has it, with
//     streaming off, on, and parallel (16+ targets).
//
// The lag is the source's own figure: pg_current_wal_lsn() less the slot's
// confirmed_flush_lsn, what the target has confirmed it holds.

// caughtUpBytes is "caught up" for this bench: the 1 MB.
const caughtUpBytes = 1 << 20

const catchupDB = "catchup"

// drainTransactions is the backlog each apply run drains.
const drainTransactions = 50000

// lagSample is the lag at one moment; Bytes < 0 is unknown (no slot yet).
type lagSample struct {
	At        time.Time
	Bytes     int64
	Confirmed int64 // the slot's confirmed_flush_lsn in bytes; -1 unknown
}

type rateStep struct {
	Rate        int     `json:"rate"` // 0: unthrottled
	TPS         float64 `json:"tps"`
	LagEnd      int64   `json:"lag_end_bytes"`
	LagMax      int64   `json:"lag_max_bytes"`
	Drained     float64 `json:"drained_seconds"` // after pgbench ended, until under 1 MB; -1 never
	SourceLimit bool    `json:"source_limited"`
	KeptUp      bool    `json:"kept_up"`
}

type drainRun struct {
	Options      string  `json:"options"`
	Transactions int64   `json:"transactions"`
	WALBytes     int64   `json:"wal_bytes"`
	Seconds      float64 `json:"seconds"`
}

type catchupResults struct {
	Time         string            `json:"time"`
	Source       string            `json:"source"`
	Target       string            `json:"target"`
	Scale        int               `json:"scale"`
	Clients      int               `json:"clients"`
	Rate         int               `json:"rate"`
	Settings     map[string]string `json:"settings"`
	Subscription map[string]string `json:"subscription_options"`

	MigrateSeconds float64            `json:"migrate_seconds"`
	Phases         map[string]float64 `json:"phases"`
	CopyWrites     float64            `json:"copy_load_tps"`
	CopyEndLag     int64              `json:"copy_end_lag_bytes"` // -1 unknown
	CatchUpSeconds float64            `json:"catch_up_seconds"`   // from the subscription's start to under 1 MB; -1 unknown
	Steps          []rateStep         `json:"rate_steps"`
	Sustained      int                `json:"sustained_rate"`
	Drains         []drainRun         `json:"drains"`
	Large          []drainRun         `json:"large_transaction"`
}

func (b *bench) runCatchup(ctx context.Context) error {
	dst, err := b.startServers(ctx)
	if err != nil {
		return err
	}
	res := catchupResults{Time: time.Now().UTC().Format(time.RFC3339), Source: shortVersion(b.src), Target: shortVersion(dst),
		Scale: b.o.scale, Clients: b.o.clients, Rate: b.o.rate, CopyEndLag: -1, CatchUpSeconds: -1}
	if res.Settings, err = b.liveSettings(ctx, b.src, dst); err != nil {
		return err
	}
	if err := freshDatabase(ctx, catchupDB, b.src, dst); err != nil {
		return err
	}
	b.progress("pgbench -i -s %d", b.o.scale)
	if err := b.buildPgbench(ctx, catchupDB); err != nil {
		return err
	}
	home := filepath.Join(b.work, "catchup")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	lag, err := startLagWatch(ctx, b.src)
	if err != nil {
		return err
	}
	defer lag.stop()

	// 1. The copy under a fixed write rate, and the catch-up after it.
	load, err := b.startLoad(ctx, "copy", b.o.rate, 0, 0)
	if err != nil {
		return err
	}
	b.progress("pgmove migrate under pgbench -c %d -R %d", b.o.clients, b.o.rate)
	logPath := filepath.Join(b.logDir, "catchup-migrate.log")
	start := time.Now()
	err = b.runPgmove(ctx, home, dst, logPath, "migrate", "--jobs", strconv.Itoa(b.o.jobs), "--log-format", "json", "--max-lag", "1MB")
	res.MigrateSeconds = time.Since(start).Seconds()
	tps, lerr := load.wait()
	res.CopyWrites = tps
	if err != nil {
		return err
	}
	if lerr != nil {
		return lerr
	}
	res.Phases = readPhases(logPath)
	if subStart, ok := phaseEnd(logPath, phase.Subscription); ok {
		res.CopyEndLag = lag.at(subStart)
		if t, ok := lag.under(subStart, caughtUpBytes); ok {
			res.CatchUpSeconds = t.Sub(subStart).Seconds()
		}
	}
	b.progress("migrate %.1f s; lag when the subscription started %s, under 1 MB %s later", res.MigrateSeconds, mb(res.CopyEndLag), secs(res.CatchUpSeconds))
	if res.Subscription, err = subscriptionOptions(ctx, dst); err != nil {
		return err
	}

	// 2. Rising fixed rates, then as fast as pgbench goes.
	rates := []int{b.o.rate, 2 * b.o.rate, 4 * b.o.rate, 8 * b.o.rate, 0}
	for _, rate := range rates {
		st, err := b.rateStep(ctx, lag, rate)
		if err != nil {
			return err
		}
		res.Steps = append(res.Steps, st)
		b.progress("rate %s: %.0f tps, lag at the end %s (max %s), under 1 MB %s after; kept up: %v", rateName(rate), st.TPS, mb(st.LagEnd), mb(st.LagMax), secs(st.Drained), st.KeptUp)
		if st.KeptUp && int(st.TPS) > res.Sustained {
			res.Sustained = int(st.TPS)
		}
		if !st.KeptUp || st.SourceLimit {
			break
		}
	}

	// 3. The apply's speed on a backlog, each option in turn.
	sub := pgx.Identifier{res.Subscription["subname"]}.Sanitize()
	variants := []struct{ label, set string }{{"binary=false", "binary = false"}}
	if res.Subscription["binary"] == "true" {
		variants = append(variants, struct{ label, set string }{"binary=true", "binary = true"})
	}
	for round := 0; round < b.o.runs; round++ {
		for _, v := range variants {
			if err := execIn(ctx, dst, catchupDB, "ALTER SUBSCRIPTION "+sub+" SET ("+v.set+")"); err != nil {
				return err
			}
			per := drainTransactions / b.o.clients
			d, err := b.drain(ctx, dst, lag, sub, v.label, func() (int64, error) {
				l, err := b.startLoad(ctx, fmt.Sprintf("drain-%s-%d", v.label, round+1), 0, 0, per)
				if err != nil {
					return 0, err
				}
				_, err = l.wait()
				return int64(per * b.o.clients), err
			})
			if err != nil {
				return err
			}
			res.Drains = append(res.Drains, d)
			b.progress("backlog, %s: %d transactions, %s of WAL applied in %.1f s (%.0f tps)", v.label, d.Transactions, mb(d.WALBytes), d.Seconds, float64(d.Transactions)/d.Seconds)
		}
	}
	// Put the option back as pgmove chose it.
	if err := execIn(ctx, dst, catchupDB, "ALTER SUBSCRIPTION "+sub+" SET (binary = "+res.Subscription["binary"]+")"); err != nil {
		return err
	}

	// 4. One large transaction, each streaming mode the target has.
	modes := []string{"off", "on"}
	if dst.Major >= 16 {
		modes = append(modes, "parallel")
	}
	rows := int64(b.o.scale) * 10000 // 10% of pgbench_accounts
	for round := 0; round < b.o.runs; round++ {
		for _, mode := range modes {
			if err := execIn(ctx, dst, catchupDB, "ALTER SUBSCRIPTION "+sub+" SET (streaming = "+mode+")"); err != nil {
				return err
			}
			d, err := b.largeTransaction(ctx, lag, "streaming="+mode, rows)
			if err != nil {
				return err
			}
			res.Large = append(res.Large, d)
			b.progress("one transaction of %d updated rows, streaming=%s: applied %.2f s after its commit", rows, mode, d.Seconds)
		}
	}
	if err := execIn(ctx, dst, catchupDB, "ALTER SUBSCRIPTION "+sub+" SET (streaming = "+res.Subscription["streaming"]+")"); err != nil {
		return err
	}

	writeCatchup(b.stdout, &res, b.o)
	path := filepath.Join(b.o.results, "catchup-"+b.stamp+".json")
	if err := writeAnyJSON(path, res); err != nil {
		return err
	}
	fmt.Fprintf(b.stdout, "\nresults: %s, logs: %s\n", path, b.logDir)
	return nil
}

// rateStep runs pgbench at rate (0: unthrottled) for -phase-seconds, then
// waits up to 60 s for the lag to fall under 1 MB.
func (b *bench) rateStep(ctx context.Context, lag *lagWatch, rate int) (rateStep, error) {
	st := rateStep{Rate: rate, Drained: -1}
	began := time.Now()
	l, err := b.startLoad(ctx, "rate-"+rateName(rate), rate, b.o.phaseSeconds, 0)
	if err != nil {
		return st, err
	}
	if st.TPS, err = l.wait(); err != nil {
		return st, err
	}
	ended := time.Now()
	st.LagEnd = lag.at(ended)
	st.LagMax = lag.max(began, ended)
	// The source could not write at the rate asked: it is the limit here.
	st.SourceLimit = rate == 0 || st.TPS < 0.9*float64(rate)
	t, ok := lag.waitUnder(ctx, ended, caughtUpBytes, time.Minute)
	if ok {
		st.Drained = t.Sub(ended).Seconds()
	}
	// Kept up: the lag never held more than a few seconds of writes and
	// was gone within 5 s of the load's end.
	st.KeptUp = ok && st.Drained <= 5
	return st, ctx.Err()
}

// drain writes with the subscription disabled, enables it and times the
// apply until the target has confirmed everything written.
func (b *bench) drain(ctx context.Context, dst *pgserver.Server, lag *lagWatch, sub, label string, write func() (int64, error)) (drainRun, error) {
	d := drainRun{Options: label}
	if err := execIn(ctx, dst, catchupDB, "ALTER SUBSCRIPTION "+sub+" DISABLE"); err != nil {
		return d, err
	}
	before, err := walLSN(ctx, b.src)
	if err != nil {
		return d, err
	}
	n, err := write()
	if err != nil {
		return d, err
	}
	after, err := walLSN(ctx, b.src)
	if err != nil {
		return d, err
	}
	d.Transactions, d.WALBytes = n, after-before
	start := time.Now()
	if err := execIn(ctx, dst, catchupDB, "ALTER SUBSCRIPTION "+sub+" ENABLE"); err != nil {
		return d, err
	}
	t, ok := lag.waitConfirmed(ctx, start, after, 10*time.Minute)
	if !ok {
		return d, fmt.Errorf("%s: the target did not catch up in 10 minutes", label)
	}
	d.Seconds = t.Sub(start).Seconds()
	return d, nil
}

// largeTransaction updates rows of pgbench_accounts in one transaction and
// times its apply after the commit.
func (b *bench) largeTransaction(ctx context.Context, lag *lagWatch, label string, rows int64) (drainRun, error) {
	d := drainRun{Options: label, Transactions: 1}
	before, err := walLSN(ctx, b.src)
	if err != nil {
		return d, err
	}
	if err := execIn(ctx, b.src, catchupDB, fmt.Sprintf("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= %d", rows)); err != nil {
		return d, err
	}
	committed := time.Now()
	after, err := walLSN(ctx, b.src)
	if err != nil {
		return d, err
	}
	d.WALBytes = after - before
	t, ok := lag.waitConfirmed(ctx, committed, after, 10*time.Minute)
	if !ok {
		return d, fmt.Errorf("%s: the target did not apply the transaction in 10 minutes", label)
	}
	d.Seconds = t.Sub(committed).Seconds()
	return d, nil
}

// walLSN is the source's WAL insert position in bytes.
func walLSN(ctx context.Context, s *pgserver.Server) (int64, error) {
	var n int64
	err := queryIn(ctx, s, catchupDB, `SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint`, &n)
	return n, err
}

// subscriptionOptions reads the options pgmove gave the subscription.
func subscriptionOptions(ctx context.Context, dst *pgserver.Server) (map[string]string, error) {
	var name, binary, streaming string
	q := `SELECT subname, subbinary::text, ` + streamingColumn(dst.Major) + ` FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`
	if err := queryIn(ctx, dst, catchupDB, q, &name, &binary, &streaming); err != nil {
		return nil, fmt.Errorf("target: the subscription: %w", err)
	}
	return map[string]string{"subname": name, "binary": binary, "streaming": streaming}, nil
}

// streamingColumn renders pg_subscription.substream as ALTER SUBSCRIPTION
// takes it: a boolean before 16, a char (f, t, p) from 16 on.
func streamingColumn(major int) string {
	if major < 16 {
		return `CASE WHEN substream THEN 'on' ELSE 'off' END`
	}
	return `CASE substream WHEN 'p' THEN 'parallel' WHEN 't' THEN 'on' ELSE 'off' END`
}

// load is one pgbench run on the source.
type load struct {
	cmd       *exec.Cmd
	log       *os.File
	openEnded bool // runs until wait stops it
}

// startLoad runs pgbench on the source: at rate tps (0: as fast as it
// goes), for seconds (0 with txns 0: until the load is stopped by wait's
// caller, the end of migrate), or txns transactions per client.
func (b *bench) startLoad(ctx context.Context, tag string, rate, seconds, txns int) (*load, error) {
	args := []string{"-n", "-c", strconv.Itoa(b.o.clients), "-j", "2", "-h", b.src.Host, "-p", strconv.Itoa(b.src.Port), "-U", b.src.Superuser}
	switch {
	case txns > 0:
		args = append(args, "-t", strconv.Itoa(txns))
	case seconds > 0:
		args = append(args, "-T", strconv.Itoa(seconds))
	default:
		// pgbench prints no report when interrupted: its per-second
		// progress lines give the rate.
		args = append(args, "-T", "86400", "-P", "1")
	}
	if rate > 0 {
		args = append(args, "-R", strconv.Itoa(rate))
	}
	args = append(args, catchupDB)
	f, err := os.Create(filepath.Join(b.logDir, "pgbench-"+tag+".log"))
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	fmt.Fprintf(f, "# %s %s\n", b.pgbench, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, b.pgbench, args...)
	cmd.Env = b.childEnv(b.work)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("pgbench: %w", err)
	}
	return &load{cmd: cmd, log: f, openEnded: seconds == 0 && txns == 0}, nil
}

// wait ends an open-ended load (SIGINT) or waits for a bounded one, and
// returns pgbench's tps.
func (l *load) wait() (float64, error) {
	if l.openEnded {
		// pgbench reports what it did on SIGINT too.
		_ = l.cmd.Process.Signal(os.Interrupt)
	}
	err := l.cmd.Wait()
	path := l.log.Name()
	l.log.Close()
	var pr phaseResult
	parsePgbench(path, &pr)
	if l.openEnded {
		pr.PgbenchTPS, pr.PgbenchError = progressTPS(path), ""
	}
	if pr.PgbenchAborted > 0 || pr.PgbenchFailed > 0 {
		return pr.PgbenchTPS, fmt.Errorf("pgbench: %d failed, %d aborted: %s (log: %s)", pr.PgbenchFailed, pr.PgbenchAborted, pr.PgbenchError, path)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 0, fmt.Errorf("pgbench: %w (log: %s)", err, path)
	}
	if pr.PgbenchTPS == 0 {
		return 0, fmt.Errorf("pgbench: no report (log: %s): %s", path, lastLine(path))
	}
	return pr.PgbenchTPS, nil
}

var pgbenchProgress = regexp.MustCompile(`(?m)^progress: [0-9.]+ s, ([0-9.]+) tps`)

// progressTPS is the mean of pgbench -P's per-second rates.
func progressTPS(path string) float64 {
	text, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	var sum float64
	ms := pgbenchProgress.FindAllSubmatch(text, -1)
	for _, m := range ms {
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		sum += v
	}
	if len(ms) == 0 {
		return 0
	}
	return sum / float64(len(ms))
}

// runPgmove runs pgmove with its output in logPath.
func (b *bench) runPgmove(ctx context.Context, home string, dst *pgserver.Server, logPath string, args ...string) error {
	f, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	defer f.Close()
	argv := append([]string{"--src", pgURL(b.src, catchupDB), "--dst", pgURL(dst, catchupDB)}, args...)
	cmd := exec.CommandContext(ctx, b.o.pgmove, argv...)
	cmd.Env = b.childEnv(home)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pgmove %s: %w (log: %s): %s", args[0], err, logPath, failureLine(logPath, "pgmove"))
	}
	return nil
}

// phaseEnd is the time a phase's record was logged (its end).
func phaseEnd(path, name string) (time.Time, bool) {
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var rec struct {
			Time  time.Time `json:"time"`
			Msg   string    `json:"msg"`
			Phase string    `json:"phase"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == phase.Msg && rec.Phase == name {
			return rec.Time, true
		}
	}
	return time.Time{}, false
}

// lagWatch samples the lag of the source's one logical slot of the bench's
// database every 200 ms.
type lagWatch struct {
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	samples []lagSample
	updated chan struct{}
}

func startLagWatch(ctx context.Context, src *pgserver.Server) (*lagWatch, error) {
	conn, err := connect(ctx, src, catchupDB)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &lagWatch{cancel: cancel, done: make(chan struct{}), updated: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer conn.Close(context.Background())
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			var n, c int64 = -1, -1
			var v, f *int64
			err := conn.QueryRow(ctx, `SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint, (confirmed_flush_lsn - '0/0')::bigint
				FROM pg_replication_slots WHERE database = current_database() AND slot_type = 'logical' ORDER BY slot_name LIMIT 1`).Scan(&v, &f)
			if err == nil && v != nil && f != nil {
				n, c = *v, *f
			}
			if err != nil && ctx.Err() != nil {
				return
			}
			w.mu.Lock()
			w.samples = append(w.samples, lagSample{At: time.Now(), Bytes: n, Confirmed: c})
			close(w.updated)
			w.updated = make(chan struct{})
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w, nil
}

func (w *lagWatch) stop() { w.cancel(); <-w.done }

// at is the first known lag sampled at t or after (-1 unknown), waiting
// at most a second for it.
func (w *lagWatch) at(t time.Time) int64 {
	deadline := time.After(time.Second)
	for {
		w.mu.Lock()
		i := sort.Search(len(w.samples), func(i int) bool { return !w.samples[i].At.Before(t) })
		for ; i < len(w.samples); i++ {
			if w.samples[i].Bytes >= 0 {
				w.mu.Unlock()
				return w.samples[i].Bytes
			}
		}
		ch := w.updated
		w.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return -1
		case <-w.done:
			return -1
		}
	}
}

// max is the highest lag sampled between from and to.
func (w *lagWatch) max(from, to time.Time) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := int64(-1)
	for _, s := range w.samples {
		if !s.At.Before(from) && !s.At.After(to) && s.Bytes > m {
			m = s.Bytes
		}
	}
	return m
}

// under is the first sample at or after t with a lag under limit.
func (w *lagWatch) under(t time.Time, limit int64) (time.Time, bool) {
	return w.first(t, func(s lagSample) bool { return s.Bytes >= 0 && s.Bytes < limit })
}

// first is the time of the first sample at or after t that ok accepts.
func (w *lagWatch) first(t time.Time, ok func(lagSample) bool) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.samples {
		if !s.At.Before(t) && ok(s) {
			return s.At, true
		}
	}
	return time.Time{}, false
}

// waitUnder waits, at most for, for a sample after t with a lag under limit.
func (w *lagWatch) waitUnder(ctx context.Context, t time.Time, limit int64, most time.Duration) (time.Time, bool) {
	return w.wait(ctx, t, most, func(s lagSample) bool { return s.Bytes >= 0 && s.Bytes < limit })
}

// waitConfirmed waits, at most for, for the target to confirm lsn.
func (w *lagWatch) waitConfirmed(ctx context.Context, t time.Time, lsn int64, most time.Duration) (time.Time, bool) {
	return w.wait(ctx, t, most, func(s lagSample) bool { return s.Confirmed >= lsn })
}

func (w *lagWatch) wait(ctx context.Context, t time.Time, most time.Duration, ok func(lagSample) bool) (time.Time, bool) {
	deadline := time.After(most)
	for {
		if at, found := w.first(t, ok); found {
			return at, true
		}
		w.mu.Lock()
		ch := w.updated
		w.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return time.Time{}, false
		case <-ctx.Done():
			return time.Time{}, false
		case <-w.done:
			return time.Time{}, false
		}
	}
}

func rateName(rate int) string {
	if rate == 0 {
		return "unthrottled"
	}
	return strconv.Itoa(rate)
}

func mb(n int64) string {
	if n < 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
}

func secs(s float64) string {
	if s < 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.1f s", s)
}

// medianOf is the median seconds of the runs with options label.
func medianOf(runs []drainRun, label string) (float64, int) {
	var xs []float64
	for _, r := range runs {
		if r.Options == label {
			xs = append(xs, r.Seconds)
		}
	}
	return median(xs), len(xs)
}

func writeCatchup(w io.Writer, res *catchupResults, o *options) {
	fmt.Fprintf(w, "\ncatch-up: pgbench scale %d, PostgreSQL %s -> %s, pgbench -c %d on the source (%d cores: the load, both servers and the apply share them)\n",
		res.Scale, res.Source, res.Target, res.Clients, runtime.NumCPU())
	writeSettings(w, res.Settings, o.fsyncOff)
	fmt.Fprintf(w, "subscription as pgmove made it: binary=%s streaming=%s\n", res.Subscription["binary"], res.Subscription["streaming"])
	fmt.Fprintf(w, "\n1. migrate under pgbench -R %d (%.0f tps reached): %.1f s; lag when the subscription started %s; under 1 MB %s later\n",
		res.Rate, res.CopyWrites, res.MigrateSeconds, mb(res.CopyEndLag), secs(res.CatchUpSeconds))
	fmt.Fprintf(w, "\n2. fixed rates, %d s each (kept up: under 1 MB within 5 s of the load's end)\n", o.phaseSeconds)
	fmt.Fprintf(w, "   %-12s %8s %12s %12s %10s  %s\n", "rate", "tps", "lag at end", "lag max", "drained", "")
	for _, st := range res.Steps {
		note := "kept up"
		switch {
		case !st.KeptUp:
			note = "FELL BEHIND: the apply is the limit"
		case st.SourceLimit:
			note = "kept up; the source (pgbench) could go no faster"
		}
		fmt.Fprintf(w, "   %-12s %8.0f %12s %12s %10s  %s\n", rateName(st.Rate), st.TPS, mb(st.LagEnd), mb(st.LagMax), secs(st.Drained), note)
	}
	if last := res.Steps[len(res.Steps)-1]; last.KeptUp && last.SourceLimit {
		fmt.Fprintf(w, "   highest rate the apply sustained: at least %d tps, all the source could write here (3. shows the apply's own speed)\n", res.Sustained)
	} else {
		fmt.Fprintf(w, "   highest rate the apply sustained: %d tps\n", res.Sustained)
	}
	fmt.Fprintf(w, "\n3. a backlog of pgbench transactions written with the subscription disabled, then applied (median of %d)\n", o.runs)
	seen := map[string]bool{}
	for _, d := range res.Drains {
		if seen[d.Options] {
			continue
		}
		seen[d.Options] = true
		m, n := medianOf(res.Drains, d.Options)
		fmt.Fprintf(w, "   %-16s %6d transactions, %s: %.1f s (%d runs), %.0f tps applied\n", d.Options, d.Transactions, mb(d.WALBytes), m, n, float64(d.Transactions)/m)
	}
	fmt.Fprintf(w, "\n4. one transaction updating %d rows: seconds from its commit until the target has it (median of %d;\n   streaming starts only past logical_decoding_work_mem, 64MB by default)\n", int64(res.Scale)*10000, o.runs)
	seen = map[string]bool{}
	for _, d := range res.Large {
		if seen[d.Options] {
			continue
		}
		seen[d.Options] = true
		m, n := medianOf(res.Large, d.Options)
		fmt.Fprintf(w, "   %-20s %s of WAL: %.2f s (%d runs)\n", d.Options, mb(d.WALBytes), m, n)
	}
}
