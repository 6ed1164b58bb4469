// Command bench times pgmove's initial copy against PostgreSQL's native
// subscription copy and `pgcopydb clone`, on the same data and the same
// loopback servers, and checks that every target equals the source.
//
// It is what `make bench` runs (through scripts/bench). It measures and
// prints; it is not a test and fails only when it cannot measure. The
// targets it reports come from the issues that asked for the snapshot copy
// and for its speed on production settings (issue 18):
// on a 2-core machine, pgmove at least 1.8× faster than the native path and
// 1.35× faster than pgcopydb on pgbench scale 100, at least 6× faster than
// the native path on 2,000 tables of 500 rows, and under 100 MB peak RSS.
//
// With -switchover it is `make bench-switchover` instead (switchover.go):
// the switch under pgbench and a 10 ms probe through a real pgbouncer,
// judged against pause < 250 ms, 0 failed and 0 lost commits, both ways,
// and 0 lost on an abandoned switch.
//
// Exit codes: 0 measured (whatever the figures), 1 error, 2 usage, 130 interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// The tools bench knows, in the order it runs them.
const (
	toolNative   = "native"
	toolPgmove   = "pgmove"
	toolPgcopydb = "pgcopydb"
)

var allTools = []string{toolNative, toolPgmove, toolPgcopydb}

// The datasets bench knows, in the order it builds them.
const (
	dataPgbench = "pgbench"
	dataTables  = "tables"
	// dataGrowth is two datasets timed in turns, pgmove only: -growth-tables
	// tables of -growth-rows rows, and ten times as many (issue 18: the
	// time must grow at most 11× for 10× the tables).
	dataGrowth      = "growth"
	dataGrowthSmall = "growth-small"
	dataGrowthLarge = "growth-large"
)

var allDatasets = []string{dataPgbench, dataTables, dataGrowth}

// options are the command line.
type options struct {
	srcMajor, dstMajor int
	scale              int
	tables, rows       int
	only               []string // the datasets to run, in allDatasets' order
	growthTables       int      // tables of dataset growth-small; growth-large has 10×
	growthRows         int
	tools              []string
	jobs               int
	keep               bool
	timeout            time.Duration // per tool run
	pgmove             string
	pgmoveArgs         []string
	runs               int
	pgcopydb           string
	results            string
	// -switchover: the switchover bench instead of the copy bench.
	switchover   bool
	clients      int  // pgbench -c
	rate         int  // pgbench -R; 0: as fast as it goes
	phaseSeconds int  // pgbench -T of each phase
	compare      bool // the compare benchmark instead (bench/compare.go)
	catchup      bool // the catch-up benchmark instead (bench/catchup.go)
	fsyncOff     bool // -fsync-off: servers without disk flushes (bench/settings.go)
}

// The sizes the targets were set for.
const (
	specScale  = 100
	specTables = 2000
	specRows   = 500
	// growth: 2,000 and 20,000 tables of 20 rows (issue 18).
	specGrowthTables = 2000
	specGrowthRows   = 20
	growthFactor     = 10
)

// fullSize reports whether the datasets have the sizes the targets were set for.
func (o *options) fullSize() bool {
	return o.scale == specScale && o.tables == specTables && o.rows == specRows &&
		o.growthTables == specGrowthTables && o.growthRows == specGrowthRows
}

// datasets are the datasets of this run (-only), in allDatasets' order.
func (o *options) datasets() []string { return o.only }

func (o *options) hasData(name string) bool { return slices.Contains(o.only, name) }

func (o *options) has(tool string) bool { return slices.Contains(o.tools, tool) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "bench: "+err.Error())
		return 2
	}
	b, err := newBench(ctx, o, stdout, stderr)
	if err == nil {
		if o.compare {
			err = b.runCompare(ctx)
		} else if o.catchup {
			err = b.runCatchup(ctx)
		} else {
			err = b.run(ctx)
		}
		if cerr := b.close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench: "+err.Error())
		if ctx.Err() != nil {
			return 130
		}
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `bench times the initial copy of a database to another cluster three ways on
the same loopback servers and data: PostgreSQL's native subscription copy
(pgmove migrate --copy native), pgmove's snapshot copy (pgmove migrate), and
pgcopydb clone when it is installed. It checks the target equals the source
after each and prints seconds, MB/s, ratios and pgmove's peak memory.

With -switchover (make bench-switchover) it measures the switch instead: pgbench
and a probe committing every 10 ms through a real pgbouncer, pgmove switchover,
rollback and a switchover abandoned because the target cannot catch up, each
under that load; the pause, the probe's longest gap, failed and lost commits.

Usage: scripts/bench [flags]        (quick smoke run: scripts/bench -scale 1 -tables 50)

Flags:
`)
		fs.PrintDefaults()
		fmt.Fprint(stderr, `
Exit codes: 0 measured (whatever the figures), 1 error, 2 usage, 130 interrupted.
`)
	}
	fs.IntVar(&o.srcMajor, "src", 13, "source PostgreSQL major (13..18; from 16 on, the 18 client scripts/install-deps provides)")
	fs.IntVar(&o.dstMajor, "dst", 17, "target PostgreSQL major (13..18)")
	fs.IntVar(&o.scale, "scale", specScale, "pgbench scale of dataset pgbench")
	fs.IntVar(&o.tables, "tables", specTables, "number of tables of dataset tables")
	fs.IntVar(&o.rows, "rows", specRows, "rows per table of dataset tables")
	only := fs.String("only", strings.Join(allDatasets, ","), "the datasets to run, comma-separated: pgbench, tables, growth")
	fs.IntVar(&o.growthTables, "growth-tables", specGrowthTables, "tables of dataset growth's smaller half; the larger has 10× as many")
	fs.IntVar(&o.growthRows, "growth-rows", specGrowthRows, "rows per table of dataset growth")
	tools := fs.String("tools", strings.Join(allTools, ","), "tools to time, comma-separated: native, pgmove, pgcopydb")
	fs.IntVar(&o.runs, "runs", 3, "time each tool this many times, taking turns; ratios are of the medians")
	fs.IntVar(&o.jobs, "jobs", runtime.NumCPU(), "parallel jobs given to pgmove and pgcopydb")
	fs.BoolVar(&o.keep, "keep", false, "leave the servers running at the end (and print how to reach them)")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Hour, "give up on one tool run after this long")
	fs.StringVar(&o.pgmove, "pgmove", "bin/pgmove", "the pgmove binary to time")
	pgmoveArgs := fs.String("pgmove-args", "", "more arguments for pgmove migrate, space-separated (to compare its options)")
	fs.StringVar(&o.pgcopydb, "pgcopydb", "pgcopydb", "the pgcopydb binary to time (looked up on PATH)")
	fs.StringVar(&o.results, "results", "bench/results", "directory for the JSON results and the tools' logs")
	fs.BoolVar(&o.switchover, "switchover", false, "the switchover bench instead (make bench-switchover): pgbench and a 10 ms probe through pgbouncer,\n"+
		"pgmove switchover, rollback and an abandoned switchover under that load; defaults -src 16 -dst 18 -scale 10")
	fs.IntVar(&o.clients, "clients", 8, "-switchover: pgbench -c")
	fs.IntVar(&o.rate, "rate", 1000, "-switchover: pgbench -R, transactions per second in all (0: as fast as it goes)")
	fs.IntVar(&o.phaseSeconds, "phase-seconds", 15, "-switchover: pgbench -T of each phase (3 s before pgmove starts, the rest during and after it)")
	fs.BoolVar(&o.compare, "compare", false, "run the compare benchmark instead (make bench-compare): count(*) against compare --checksum on pgbench -scale, equal, one changed row, under writes")
	fs.BoolVar(&o.catchup, "catchup", false, "run the catch-up benchmark instead (make bench-catchup): pgbench -R -rate through the copy, the lag after it,\n"+
		"the highest rate the apply sustains, and the apply's speed with binary and streaming on and off; defaults -src 16 -dst 18 -rate 500 -clients 4 -phase-seconds 20")
	fs.BoolVar(&o.fsyncOff, "fsync-off", false, "servers with fsync, full_page_writes and synchronous_commit off (the earlier bench's; not production figures);\n"+
		"the default is production settings (bench/settings.go). -switchover and -compare default to it, as their figures were measured so")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if (o.switchover || o.compare) && !set["fsync-off"] {
		o.fsyncOff = true
	}
	if o.catchup {
		for name, v := range map[string]struct {
			p *int
			v int
		}{"src": {&o.srcMajor, 16}, "dst": {&o.dstMajor, 18}, "rate": {&o.rate, 500}, "clients": {&o.clients, 4}, "phase-seconds": {&o.phaseSeconds, 20}} {
			if !set[name] {
				*v.p = v.v
			}
		}
		*tools = toolPgmove
		if o.clients < 1 || o.rate < 1 || o.phaseSeconds < 5 {
			return nil, errors.New("-catchup: -clients and -rate must be at least 1, -phase-seconds at least 5")
		}
	}
	if o.switchover {
		for name, v := range map[string]struct {
			p *int
			v int
		}{"src": {&o.srcMajor, 16}, "dst": {&o.dstMajor, 18}, "scale": {&o.scale, 10}} {
			if !set[name] {
				*v.p = v.v
			}
		}
		*tools = toolPgmove
		if o.clients < 1 || o.rate < 0 || o.phaseSeconds < 8 {
			return nil, errors.New("-clients must be at least 1, -rate 0 or more, -phase-seconds at least 8")
		}
	}
	o.pgmoveArgs = strings.Fields(*pgmoveArgs)
	if o.runs < 1 {
		return nil, fmt.Errorf("-runs %d: want 1 or more", o.runs)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q; see -h", fs.Arg(0))
	}
	for _, m := range []struct {
		name string
		v    int
	}{{"-src", o.srcMajor}, {"-dst", o.dstMajor}} {
		if m.v < 13 || m.v > 18 {
			return nil, fmt.Errorf("%s %d: pgmove's servers are PostgreSQL 13..18", m.name, m.v)
		}
	}
	for _, d := range strings.Split(*only, ",") {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		if !slices.Contains(allDatasets, d) {
			return nil, fmt.Errorf("-only: unknown dataset %q; want pgbench, tables or growth", d)
		}
		if !slices.Contains(o.only, d) {
			o.only = append(o.only, d)
		}
	}
	if len(o.only) == 0 {
		return nil, errors.New("-only: name at least one dataset")
	}
	slices.SortFunc(o.only, func(a, b string) int { return slices.Index(allDatasets, a) - slices.Index(allDatasets, b) })
	if o.growthTables < 1 || o.growthRows < 0 {
		return nil, errors.New("-growth-tables must be at least 1 and -growth-rows 0 or more")
	}
	for _, t := range strings.Split(*tools, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !slices.Contains(allTools, t) {
			return nil, fmt.Errorf("-tools: unknown tool %q; want native, pgmove or pgcopydb", t)
		}
		if !slices.Contains(o.tools, t) {
			o.tools = append(o.tools, t)
		}
	}
	if len(o.tools) == 0 {
		return nil, errors.New("-tools: name at least one tool")
	}
	// Always in the same order, whatever the flag's.
	slices.SortFunc(o.tools, func(a, b string) int {
		return slices.Index(allTools, a) - slices.Index(allTools, b)
	})
	if o.scale < 1 || o.tables < 1 || o.rows < 1 || o.jobs < 1 {
		return nil, errors.New("-scale, -tables, -rows and -jobs must be at least 1")
	}
	if o.tables > 9999 {
		return nil, errors.New("-tables: at most 9999 (the tables are named t0001..t9999)")
	}
	return o, nil
}
