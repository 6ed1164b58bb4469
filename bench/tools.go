package main

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/pgserver"
)

var (
	//go:embed sql/subscriptions.sql
	subscriptionsSQL string
	//go:embed sql/publications.sql
	publicationsSQL string
	//go:embed sql/slots.sql
	slotsSQL string
	//go:embed sql/autovacuum.sql
	autovacuumSQL string
)

// runResult is one tool timed on one dataset and target.
type runResult struct {
	Tool        string  `json:"tool"`
	TargetMajor int     `json:"target_major"`
	Round       int     `json:"round"` // 1..runs: the tools take turns, round after round
	Target      string  `json:"target_version,omitempty"`
	Command     string  `json:"command,omitempty"` // argv, password-free
	Seconds     float64 `json:"seconds,omitempty"`
	MBps        float64 `json:"mb_per_s,omitempty"`
	// PeakRSSMB is ru_maxrss of the tool's process: the largest resident
	// set of it or any child it waited for (pg_dump, pg_restore).
	PeakRSSMB float64 `json:"peak_rss_mb,omitempty"`
	// CPUSeconds is the user and system time of the tool's process and the
	// children it waited for: the client's own share of a 2-core machine.
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
	// SourceCPUSeconds and TargetCPUSeconds are the CPU the servers'
	// processes used during the run (bench/cpu.go); -1 unknown.
	SourceCPUSeconds float64 `json:"source_cpu_seconds"`
	TargetCPUSeconds float64 `json:"target_cpu_seconds"`
	Equal            bool    `json:"target_equals_source"`
	Check            string  `json:"check,omitempty"`
	Error            string  `json:"error,omitempty"`
	// Leftovers is what the tool's own cleanup left and bench dropped.
	Leftovers string `json:"leftovers,omitempty"`
	Log       string `json:"log,omitempty"`
	// Phases are the seconds of each phase of migrate, from pgmove's own
	// log (bench/phases.go); none for pgcopydb.
	Phases map[string]float64 `json:"phases,omitempty"`
}

// ok reports whether the run finished and its target equals the source.
func (r *runResult) ok() bool { return r.Error == "" && r.Equal }

// timeTool gives the tool a fresh empty target database, times it end to
// end, checks the target against the source and clears up after it.
func (b *bench) timeTool(ctx context.Context, ds *dataset, tool string, major, round int) runResult {
	dst := b.dst[major]
	r := runResult{Tool: tool, TargetMajor: major, Target: shortVersion(dst), Round: round}
	tag := fmt.Sprintf("%s-%s-pg%d-%d", ds.Name, tool, major, round)
	r.Log = filepath.Join(b.logDir, tag+".log")
	fail := func(err error) runResult {
		r.Error = "failed: " + oneLine(err.Error())
		b.progress("%s: %s on PostgreSQL %d: %s", ds.Name, tool, major, r.Error)
		return r
	}

	// Each run loads a database of its own. What becomes of it after the
	// run is the next run's starting point, and the machine showed two
	// opposite costs (2 cores, ext4): dropping a database of thousands of
	// files slowed the file creation of the run after (the pre-data restore
	// of 2,000 tables took 3.3 s instead of 1.1 s: the kernel skips
	// recently freed inodes one by one), while keeping loaded databases
	// slowed bulk loads (pgbench_accounts 10.2-11.7 s instead of 8.6-8.8 s
	// with 4 of them kept). So a database of many files is kept until the
	// dataset is done, and any other is dropped once checked.
	tdb := fmt.Sprintf("%s_%s_%d", ds.Database, tool, round)
	if err := freshDatabase(ctx, tdb, dst); err != nil {
		return fail(fmt.Errorf("target: %w", err))
	}
	// The same starting point for every tool: no autovacuum at work, no
	// dirty buffers to write out, and no dirty page cache either: with
	// -fsync-off, what the previous tool wrote is still on its way to the
	// disk, and the kernel would throttle the next tool's writes while it
	// drains (with fsync on, the checkpoint flushed it already).
	for _, s := range []*pgserver.Server{b.src, dst} {
		if err := b.quiesce(ctx, s); err != nil {
			return fail(err)
		}
	}
	syscall.Sync()
	home := filepath.Join(b.work, tag) // pgmove's context dir (journal) goes under HOME
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fail(fmt.Errorf("work dir: %w", err))
	}
	log, err := os.Create(r.Log)
	if err != nil {
		return fail(fmt.Errorf("log file: %w", err))
	}
	defer log.Close()

	srcURL, dstURL := pgURL(b.src, ds.Database), pgURL(dst, tdb)
	var argv []string
	switch tool {
	case toolNative:
		argv = []string{b.o.pgmove, "--src", srcURL, "--dst", dstURL, "--log-format", "json", "migrate", "--copy", "native"}
	case toolPgmove:
		argv = []string{b.o.pgmove, "--src", srcURL, "--dst", dstURL, "--log-format", "json", "migrate", "--jobs", strconv.Itoa(b.o.jobs)}
		argv = append(argv, b.o.pgmoveArgs...)
	case toolPgcopydb:
		argv = []string{b.pgcopydb, "clone", "--source", srcURL, "--target", dstURL,
			"--dir", filepath.Join(home, "pgcopydb"),
			"--table-jobs", strconv.Itoa(b.o.jobs), "--index-jobs", strconv.Itoa(b.o.jobs),
			"--no-owner", "--no-acl"}
	}
	r.Command = strings.Join(argv, " ")
	fmt.Fprintf(log, "# %s\n", r.Command)
	b.progress("%s: %s -> PostgreSQL %d: %s", ds.Name, tool, major, r.Command)

	rctx, cancel := context.WithTimeout(ctx, b.o.timeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, argv[0], argv[1:]...)
	cmd.Env = b.childEnv(home)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group: pgcopydb signals its whole group when it
	// fails, which would otherwise interrupt bench too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// An interrupt, to the tool's whole group as a terminal would send it,
	// lets pgmove and pgcopydb stop their own way first.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = time.Minute
	meter := startCPU(b.src, dst)
	start := time.Now()
	runErr := cmd.Run()
	r.Seconds = time.Since(start).Seconds()
	r.SourceCPUSeconds, r.TargetCPUSeconds = meter.stop()
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			r.PeakRSSMB = float64(ru.Maxrss) / 1024 // KB on Linux
		}
		r.CPUSeconds = (ps.UserTime() + ps.SystemTime()).Seconds()
	}
	log.Sync()
	if tool != toolPgcopydb {
		r.Phases = readPhases(r.Log)
	}

	if runErr != nil {
		msg := failureLine(r.Log, tool)
		switch {
		case errors.Is(rctx.Err(), context.DeadlineExceeded):
			msg = fmt.Sprintf("timed out after %s; %s", b.o.timeout, msg)
		case msg == "":
			msg = runErr.Error()
		default:
			msg = fmt.Sprintf("%s (%s)", msg, runErr)
		}
		r.Error = "failed: " + oneLine(msg)
		b.progress("%s: %s on PostgreSQL %d %s after %.1f s; log: %s", ds.Name, tool, major, r.Error, r.Seconds, r.Log)
	} else {
		r.MBps = ds.MB / r.Seconds
		b.progress("%s: %s on PostgreSQL %d took %.1f s (%.1f MB/s, peak RSS %.0f MB, %.1f CPU-s)", ds.Name, tool, major, r.Seconds, r.MBps, r.PeakRSSMB, r.CPUSeconds)
		r.Equal, r.Check = b.check(ctx, ds, dst, tdb)
		b.progress("%s: %s on PostgreSQL %d: target %s", ds.Name, tool, major, r.Check)
	}

	// Clear up even when interrupted, so the servers can stop cleanly.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer ccancel()
	r.Leftovers = b.clearUp(cctx, ds, dst, tdb, tool, home, log)
	if r.Leftovers != "" {
		b.progress("%s: after %s: %s", ds.Name, tool, r.Leftovers)
	}
	if ds.Tables < keepFrom {
		if err := dropDatabase(cctx, dst, tdb); err != nil {
			b.progress("%s: target: %v", ds.Name, err)
		}
		return r
	}
	// Kept until the dataset is done: autovacuum must not start on it
	// during a later tool's run. (A VACUUM here instead wrote the whole
	// database again, and the next run was slower for it.)
	ds.targets = append(ds.targets, target{dst, tdb})
	if err := execIn(cctx, dst, tdb, noAutovacuumSQL); err != nil {
		b.progress("%s: target: %v", ds.Name, err)
	}
	return r
}

// keepFrom is the number of tables from which a run's target database is
// kept until the dataset is done rather than dropped after its check.
const keepFrom = 1000

// noAutovacuumSQL turns autovacuum off for every user table of a database.
const noAutovacuumSQL = `DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.oid::regclass AS t FROM pg_catalog.pg_class c
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             AND n.nspname !~ '^pg_toast'
  LOOP
    EXECUTE format('ALTER TABLE %s SET (autovacuum_enabled = off, toast.autovacuum_enabled = off)', r.t);
  END LOOP;
END $$`

// quiesce waits (up to two minutes) until no autovacuum worker runs on the
// server, then checkpoints it.
func (b *bench) quiesce(ctx context.Context, s *pgserver.Server) error {
	conn, err := connect(ctx, s, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for deadline := time.Now().Add(2 * time.Minute); ; {
		var n int
		if err := conn.QueryRow(ctx, autovacuumSQL).Scan(&n); err != nil {
			return fmt.Errorf("postgresql %d: autovacuum workers: %w", s.Major, err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.progress("PostgreSQL %d: %d autovacuum worker(s) still at work after 2 minutes; timing anyway", s.Major, n)
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("postgresql %d: checkpoint: %w", s.Major, err)
	}
	return nil
}

// check compares the target database with the source's stats.
func (b *bench) check(ctx context.Context, ds *dataset, dst *pgserver.Server, tdb string) (bool, string) {
	conn, err := connect(ctx, dst, tdb)
	if err != nil {
		return false, "not checked: " + oneLine(err.Error())
	}
	defer conn.Close(context.Background())
	st, err := readStats(ctx, conn, ds.src.checksum != nil)
	if err != nil {
		return false, "not checked: " + oneLine(err.Error())
	}
	return ds.src.equal(st)
}

// clearUp runs pgmove cleanup after the tools that use pgmove's names, then
// drops whatever subscription, slot or publication is still there, and says
// what it had to drop: a gap in the tool's cleanup.
func (b *bench) clearUp(ctx context.Context, ds *dataset, dst *pgserver.Server, tdb, tool, home string, log *os.File) string {
	if tool == toolNative || tool == toolPgmove {
		argv := []string{b.o.pgmove, "--src", pgURL(b.src, ds.Database), "--dst", pgURL(dst, tdb), "cleanup"}
		fmt.Fprintf(log, "\n# %s\n", strings.Join(argv, " "))
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = b.childEnv(home)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(log, "# pgmove cleanup: %v\n", err)
		}
	}
	var left []string
	if err := b.dropLeftovers(ctx, ds, dst, tdb, &left); err != nil {
		left = append(left, "bench could not finish: "+oneLine(err.Error()))
	}
	if len(left) == 0 {
		return ""
	}
	return "left behind and dropped by bench: " + strings.Join(left, ", ")
}

func (b *bench) dropLeftovers(ctx context.Context, ds *dataset, dst *pgserver.Server, tdb string, left *[]string) error {
	tconn, err := connect(ctx, dst, tdb)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	defer tconn.Close(context.Background())
	rows, _ := tconn.Query(ctx, subscriptionsSQL)
	subs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("target: list subscriptions: %w", err)
	}
	for _, sub := range subs {
		*left = append(*left, "subscription "+sub)
		id := pgx.Identifier{sub}.Sanitize()
		// Detached from its slot first, so dropping it cannot wait on the source.
		for _, q := range []string{"ALTER SUBSCRIPTION " + id + " DISABLE", "ALTER SUBSCRIPTION " + id + " SET (slot_name = NONE)", "DROP SUBSCRIPTION " + id} {
			if _, err := tconn.Exec(ctx, q); err != nil {
				return fmt.Errorf("target: %s: %w", q, err)
			}
		}
	}

	sconn, err := connect(ctx, b.src, ds.Database)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer sconn.Close(context.Background())
	rows, _ = sconn.Query(ctx, slotsSQL)
	type slot struct {
		Name string
		PID  *int32
	}
	slots, err := pgx.CollectRows(rows, pgx.RowToStructByPos[slot])
	if err != nil {
		return fmt.Errorf("source: list slots: %w", err)
	}
	for _, s := range slots {
		*left = append(*left, "slot "+s.Name)
		if s.PID != nil {
			if _, err := sconn.Exec(ctx, "SELECT pg_catalog.pg_terminate_backend($1)", *s.PID); err != nil {
				return fmt.Errorf("source: end the walsender of slot %s: %w", s.Name, err)
			}
		}
		// A terminated walsender releases its slot a moment later.
		var err error
		for range 50 {
			if _, err = sconn.Exec(ctx, "SELECT pg_catalog.pg_drop_replication_slot($1)", s.Name); err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("source: drop slot %s: %w", s.Name, err)
		}
	}
	rows, _ = sconn.Query(ctx, publicationsSQL)
	pubs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("source: list publications: %w", err)
	}
	for _, p := range pubs {
		*left = append(*left, "publication "+p)
		if _, err := sconn.Exec(ctx, "DROP PUBLICATION "+pgx.Identifier{p}.Sanitize()); err != nil {
			return fmt.Errorf("source: drop publication %s: %w", p, err)
		}
	}
	return nil
}

// failureLine picks the line of a tool's log that says why it failed:
// pgcopydb's first ERROR line, else the last line (pgmove's error).
func failureLine(path, tool string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var last, firstError string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "# ") {
			continue
		}
		if msg, ok := jsonMessage(line); ok {
			line = msg
		}
		last = line
		if firstError == "" && tool == toolPgcopydb && strings.Contains(line, " ERROR ") {
			firstError = line
		}
	}
	if firstError != "" {
		return firstError
	}
	return last
}

// lastLine is the last non-empty line of a file.
func lastLine(path string) string {
	return failureLine(path, "")
}

// oneLine keeps the first line of a message, at most 200 characters.
func oneLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
