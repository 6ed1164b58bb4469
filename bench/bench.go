package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/pgserver"
)

// fallbackMajor is the newest major pgcopydb 0.10 (Debian's) supports: when
// it fails against the chosen target, the dataset is run again on a target
// of this major for pgcopydb and pgmove, so their ratio compares like with like.
const fallbackMajor = 15

// bench is one run of the benchmark: its servers, files and results.
type bench struct {
	o              *options
	stdout, stderr io.Writer

	password string
	work     string // scratch: pgpass, pgcopydb dirs, pgmove's context dirs
	passfile string
	stamp    string // names the results: <results>/<stamp>.json and <results>/<stamp>/
	logDir   string

	src *pgserver.Server
	dst map[int]*pgserver.Server // by major; the fallback one is started when needed

	pgmoveVersion string
	gitCommit     string
	pgbench       string
	pgcopydb      string // "" when not installed
	clientDir     string // pg_dump 18 and co. for a source newer than 15, else ""

	results results
}

func newBench(ctx context.Context, o *options, stdout, stderr io.Writer) (*bench, error) {
	b := &bench{o: o, stdout: stdout, stderr: stderr, password: rand.Text(), dst: map[int]*pgserver.Server{}}
	b.stamp = time.Now().Format("20060102-150405")

	pgmove, err := filepath.Abs(o.pgmove)
	if err != nil {
		return nil, fmt.Errorf("pgmove binary: %w", err)
	}
	o.pgmove = pgmove
	out, err := exec.CommandContext(ctx, o.pgmove, "version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s version: %w (build it with make build)", o.pgmove, err)
	}
	b.pgmoveVersion = strings.TrimSpace(string(out))
	if out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output(); err == nil {
		b.gitCommit = strings.TrimSpace(string(out))
	}
	if o.has(toolNative) || o.has(toolPgmove) || o.hasData(dataPgbench) {
		if b.pgbench, err = findPgbench(); err != nil && o.hasData(dataPgbench) {
			return nil, err
		}
	}
	if o.has(toolPgcopydb) {
		if p, err := exec.LookPath(o.pgcopydb); err == nil {
			b.pgcopydb = p
		} else {
			b.progress("pgcopydb is not installed (Debian package pgcopydb; make bench installs it): its rows are skipped")
		}
	}

	if o.srcMajor > 15 {
		// pg_dump must be at least the source's major; this machine's
		// Debian client is 15. pgmove looks in PGMOVE_PG_BINDIR first,
		// pgcopydb on PATH.
		if b.clientDir, err = pgserver.ClientDir(); err != nil {
			return nil, fmt.Errorf("-src %d: %w", o.srcMajor, err)
		}
	}
	if b.work, err = os.MkdirTemp("", "pgmove-bench-"); err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	// Servers run as the postgres OS user; the work dir holds pgcopydb's
	// files only, so 0700 for us is right.
	b.passfile = filepath.Join(b.work, "pgpass")
	line := strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(b.password)
	if err := os.WriteFile(b.passfile, []byte("127.0.0.1:*:*:*:"+line+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("pgpass file: %w", err)
	}
	b.logDir = filepath.Join(o.results, b.stamp)
	if err := os.MkdirAll(b.logDir, 0o755); err != nil {
		return nil, fmt.Errorf("results dir: %w", err)
	}
	return b, nil
}

// findPgbench prefers the newest /usr/lib/postgresql/<major>/bin/pgbench
// over PATH, where Debian's pgbench is a wrapper that picks a version itself.
func findPgbench() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	best, bestMajor := "", -1
	for _, m := range matches {
		var major int
		if _, err := fmt.Sscanf(filepath.Base(filepath.Dir(filepath.Dir(m))), "%d", &major); err == nil && major > bestMajor {
			best, bestMajor = m, major
		}
	}
	if best != "" {
		return best, nil
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p, nil
	}
	return "", errors.New("pgbench not found on PATH or in /usr/lib/postgresql/*/bin; run scripts/install-deps (it installs postgresql-client-15)")
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(b.stderr, "bench: "+format+"\n", args...)
}

// startServers removes the servers killed earlier runs left, then starts
// the source (b.src) and the target of -dst, which it returns.
func (b *bench) startServers(ctx context.Context) (*pgserver.Server, error) {
	if reaped, err := pgserver.Reap(""); err == nil && len(reaped) > 0 {
		b.progress("removed %d server(s) left by killed earlier runs", len(reaped))
	}
	var err error
	if b.src, err = b.startServer(ctx, b.o.srcMajor, "bench-src"); err != nil {
		return nil, err
	}
	return b.target(ctx, b.o.dstMajor)
}

// freshDatabase drops and creates database name on each server.
func freshDatabase(ctx context.Context, name string, servers ...*pgserver.Server) error {
	db := pgx.Identifier{name}.Sanitize()
	for _, s := range servers {
		if err := execIn(ctx, s, "postgres", "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)", "CREATE DATABASE "+db); err != nil {
			return err
		}
	}
	return nil
}

// run starts the servers, builds each dataset and times each tool on it.
func (b *bench) run(ctx context.Context) error {
	if b.o.switchover {
		return b.runSwitchover(ctx)
	}
	if _, err := b.startServers(ctx); err != nil {
		return err
	}
	b.results = results{
		Time:          time.Now().UTC().Format(time.RFC3339),
		Cores:         runtime.NumCPU(),
		PgmoveVersion: b.pgmoveVersion,
		GitCommit:     b.gitCommit,
		Jobs:          b.o.jobs,
		Source:        shortVersion(b.src),
		Target:        shortVersion(b.dst[b.o.dstMajor]),
		FullSize:      b.o.fullSize(),
	}
	var err error
	if b.results.Settings, err = b.liveSettings(ctx, b.src, b.dst[b.o.dstMajor]); err != nil {
		return err
	}
	writeHeader(b.stdout, b.results, b.o)

	for _, name := range b.o.datasets() {
		if name == dataGrowth {
			sets, err := b.runGrowth(ctx)
			if err != nil {
				return err
			}
			for _, ds := range sets {
				b.results.Datasets = append(b.results.Datasets, ds.datasetResult)
				writeDataset(b.stdout, b.results, &ds.datasetResult)
			}
			continue
		}
		ds, err := b.build(ctx, name)
		if err != nil {
			return err
		}
		b.runDataset(ctx, ds)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		ds.Targets = evaluate(b.o, ds)
		b.results.Datasets = append(b.results.Datasets, ds.datasetResult)
		writeDataset(b.stdout, b.results, &ds.datasetResult)
	}
	writeSummary(b.stdout, b.results)
	path := filepath.Join(b.o.results, b.stamp+".json")
	if err := writeJSON(path, b.results); err != nil {
		return err
	}
	fmt.Fprintf(b.stdout, "\nresults: %s (tool logs in %s/)\n", path, b.logDir)
	return nil
}

// runDataset times each tool on the chosen target, then, when pgcopydb
// failed there, pgcopydb and pgmove again on a PostgreSQL 15 target.
func (b *bench) runDataset(ctx context.Context, ds *dataset) {
	pgcopydbFailed := false
	rounds := func(tools []string, major int) {
		for round := 1; round <= b.o.runs; round++ {
			for _, tool := range tools {
				if tool == toolPgcopydb && b.pgcopydb == "" {
					if round == 1 {
						ds.Runs = append(ds.Runs, runResult{Tool: tool, Round: round, Error: "skipped: pgcopydb is not installed"})
					}
					continue
				}
				r := b.timeTool(ctx, ds, tool, major, round)
				ds.Runs = append(ds.Runs, r)
				if tool == toolPgcopydb && r.Error != "" && major == b.o.dstMajor {
					pgcopydbFailed = true
				}
				if ctx.Err() != nil {
					return
				}
			}
		}
	}
	defer b.dropTargets(ctx, ds)
	rounds(b.o.tools, b.o.dstMajor)
	if !pgcopydbFailed || b.o.dstMajor == fallbackMajor || ctx.Err() != nil {
		return
	}
	b.progress("%s: pgcopydb failed against PostgreSQL %d; timing pgcopydb and pgmove again on a PostgreSQL %d target", ds.Name, b.o.dstMajor, fallbackMajor)
	if _, err := b.target(ctx, fallbackMajor); err != nil {
		ds.Runs = append(ds.Runs, runResult{Tool: toolPgcopydb, TargetMajor: fallbackMajor, Round: 1, Error: "failed: " + oneLine(err.Error())})
		return
	}
	var tools []string
	for _, tool := range []string{toolPgcopydb, toolPgmove} {
		if b.o.has(tool) {
			tools = append(tools, tool)
		}
	}
	rounds(tools, fallbackMajor)
}

// dropTargets drops the dataset's target databases, even when interrupted.
func (b *bench) dropTargets(ctx context.Context, ds *dataset) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	for _, t := range ds.targets {
		if err := dropDatabase(cctx, t.server, t.db); err != nil {
			b.progress("%s: target: %v", ds.Name, err)
		}
	}
	ds.targets = nil
}

// dropDatabase drops a database, whoever is connected to it.
func dropDatabase(ctx context.Context, s *pgserver.Server, db string) error {
	return execIn(ctx, s, "postgres", "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
}

// target returns the target server of that major, starting it the first time.
func (b *bench) target(ctx context.Context, major int) (*pgserver.Server, error) {
	if s := b.dst[major]; s != nil {
		return s, nil
	}
	s, err := b.startServer(ctx, major, fmt.Sprintf("bench-dst%d", major))
	if err != nil {
		return nil, err
	}
	b.dst[major] = s
	return s, nil
}

func (b *bench) startServer(ctx context.Context, major int, name string) (*pgserver.Server, error) {
	b.progress("starting PostgreSQL %d (%s)", major, name)
	s, err := pgserver.Start(ctx, pgserver.Options{Major: major, Name: name, Password: b.password, Settings: b.o.serverSettings(), Keep: b.o.keep})
	if err != nil {
		return nil, err
	}
	b.progress("PostgreSQL %s (%s) on 127.0.0.1:%d", shortVersion(s), name, s.Port)
	return s, nil
}

// close stops the servers (unless -keep) and removes the scratch files.
func (b *bench) close() error {
	servers := []*pgserver.Server{}
	if b.src != nil {
		servers = append(servers, b.src)
	}
	for _, major := range []int{b.o.dstMajor, fallbackMajor} {
		if s := b.dst[major]; s != nil && !containsServer(servers, s) {
			servers = append(servers, s)
		}
	}
	if b.o.keep {
		fmt.Fprintln(b.stdout, "\nservers left running (-keep); export PGPASSFILE="+b.passfile)
		for _, s := range servers {
			fmt.Fprintf(b.stdout, "  PostgreSQL %s  %s\n    stop: %s stop -D %s (as the postgres OS user when root), then rm -r %s\n",
				shortVersion(s), pgURL(s, "postgres"), filepath.Join(s.BinDir, "pg_ctl"), s.DataDir, filepath.Dir(s.DataDir))
		}
		return nil
	}
	var errs []error
	for _, s := range servers {
		if err := s.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if b.work != "" {
		if err := os.RemoveAll(b.work); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func containsServer(list []*pgserver.Server, s *pgserver.Server) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// shortVersion is a server's version without a packager's suffix: "15.18",
// not "15.18 (Debian 15.18-0+deb12u1)".
func shortVersion(s *pgserver.Server) string {
	if f := strings.Fields(s.Version); len(f) > 0 {
		return f[0]
	}
	return s.Version
}

// pgURL is the password-free URL the tools get; PGPASSFILE gives the password.
func pgURL(s *pgserver.Server, db string) string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s", s.Superuser, s.Host, s.Port, db)
}

// connect opens a superuser connection to db.
func connect(ctx context.Context, s *pgserver.Server, db string) (*pgx.Conn, error) {
	cfg, err := s.ConnConfig(db)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["application_name"] = "pgmove/bench"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgresql %d, database %s: %w", s.Major, db, err)
	}
	return conn, nil
}

// execIn runs statements in db, one after the other.
func execIn(ctx context.Context, s *pgserver.Server, db string, stmts ...string) error {
	conn, err := connect(ctx, s, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("postgresql %d, database %s: %s: %w", s.Major, db, firstWords(q), err)
		}
	}
	return nil
}

// firstWords shortens a statement for an error message.
func firstWords(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > 60 {
		q = q[:60] + "..."
	}
	return q
}

// childEnv is our environment with PGPASSFILE set, HOME as given, and no
// other PG* variable that could point a tool elsewhere; for a source newer
// than 15, the 18 client first (PGMOVE_PG_BINDIR, and PATH for pgcopydb).
func (b *bench) childEnv(home string) []string {
	env := []string{"PGPASSFILE=" + b.passfile, "HOME=" + home}
	if b.clientDir != "" {
		env = append(env, "PGMOVE_PG_BINDIR="+b.clientDir)
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		if path, ok := strings.CutPrefix(kv, "PATH="); ok && b.clientDir != "" {
			kv = "PATH=" + b.clientDir + string(os.PathListSeparator) + path
		}
		env = append(env, kv)
	}
	return env
}
