package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/pgserver"
)

// The compare benchmark (make bench-compare, scripts/bench -compare): pgbench
// migrated with pgmove, replication left running, then on the same servers,
// each timed -runs times (medians reported): count(*) of every table on
// both sides at once; compare --checksum on equal data; the same with one
// row of pgbench_accounts changed on the target; and the same while a
// pgbench write load streams through replication. The targets on
// 2 cores: full-content compare and the changed row found by key each in
// at most 3x the count time; under writes, that row and no false
// difference.

// compareRun is one timed compare.
type compareRun struct {
	Seconds    float64  `json:"seconds"`
	Exit       int      `json:"exit"`
	Rows       []string `json:"rows"`        // "table key kind columns"
	Differ     []string `json:"differ"`      // tables reported as differing
	NotSettled []string `json:"not_settled"` // tables with rows that kept changing
}

// compareResults is what bench -compare writes to its JSON file.
type compareResults struct {
	Time       string                  `json:"time"`
	Source     string                  `json:"source"`
	Target     string                  `json:"target"`
	Scale      int                     `json:"scale"`
	Jobs       int                     `json:"jobs"`
	Count      []float64               `json:"count_seconds"`
	Runs       map[string][]compareRun `json:"runs"`
	WriteTPS   float64                 `json:"write_tps"`
	ChangedKey string                  `json:"changed_key"`
}

const compareDB = "cmp"

// changedAid is the pgbench_accounts row changed on the target.
const changedAid = 4242

func (b *bench) runCompare(ctx context.Context) error {
	dst, err := b.startServers(ctx)
	if err != nil {
		return err
	}
	res := compareResults{Time: time.Now().UTC().Format(time.RFC3339), Source: shortVersion(b.src), Target: shortVersion(dst),
		Scale: b.o.scale, Jobs: b.o.jobs, Runs: map[string][]compareRun{}}
	if err := freshDatabase(ctx, compareDB, b.src, dst); err != nil {
		return err
	}
	b.progress("pgbench -i -s %d", b.o.scale)
	if err := b.buildPgbench(ctx, compareDB); err != nil {
		return err
	}
	home := filepath.Join(b.work, "compare")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	pgmove := func(args ...string) ([]byte, int, time.Duration, error) {
		argv := append([]string{"--src", pgURL(b.src, compareDB), "--dst", pgURL(dst, compareDB)}, args...)
		cmd := exec.CommandContext(ctx, b.o.pgmove, argv...)
		cmd.Env = b.childEnv(home)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		out, err := cmd.Output()
		el := time.Since(start)
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code, err = ee.ExitCode(), nil
		}
		if err != nil {
			return nil, 0, el, fmt.Errorf("pgmove %s: %w", strings.Join(args, " "), err)
		}
		if code != 0 && code != 3 {
			return nil, code, el, fmt.Errorf("pgmove %s: exit %d: %s", strings.Join(args, " "), code, strings.TrimSpace(stderr.String()))
		}
		return out, code, el, nil
	}
	b.progress("pgmove migrate (replication stays running)")
	if _, _, el, err := pgmove("migrate", "--jobs", strconv.Itoa(b.o.jobs)); err != nil {
		return err
	} else {
		b.progress("migrated in %.1f s", el.Seconds())
	}
	if _, _, _, err := pgmove("progress", "--wait", "--timeout", "10m"); err != nil {
		return err
	}
	for _, s := range []*pgserver.Server{b.src, dst} {
		if err := b.quiesce(ctx, s); err != nil {
			return err
		}
	}
	tables := []string{"pgbench_accounts", "pgbench_branches", "pgbench_history", "pgbench_tellers"}
	// The count: every table on both sides at once, one session a side.
	count := func() (float64, error) {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		start := time.Now()
		for i, s := range []*pgserver.Server{b.src, dst} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conn, err := connect(ctx, s, compareDB)
				if err != nil {
					errs[i] = err
					return
				}
				defer conn.Close(context.Background())
				for _, t := range tables {
					var n int64
					if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{t}.Sanitize()).Scan(&n); err != nil {
						errs[i] = err
						return
					}
				}
			}()
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			return 0, fmt.Errorf("count: %v %v", errs[0], errs[1])
		}
		return time.Since(start).Seconds(), nil
	}
	compare := func(name string) error {
		out, code, el, err := pgmove("compare", "--checksum", "--json", "--jobs", strconv.Itoa(b.o.jobs))
		if err != nil {
			return err
		}
		var rep struct {
			Tables []struct {
				Table  string `json:"table"`
				Status string `json:"status"`
			} `json:"tables"`
			Rows []struct {
				Table   string          `json:"table"`
				Key     json.RawMessage `json:"key"`
				Kind    string          `json:"kind"`
				Columns []string        `json:"columns"`
			} `json:"rows"`
		}
		if err := json.Unmarshal(out, &rep); err != nil {
			return fmt.Errorf("compare --json: %w", err)
		}
		r := compareRun{Seconds: el.Seconds(), Exit: code, Rows: []string{}, Differ: []string{}, NotSettled: []string{}}
		for _, row := range rep.Rows {
			var key bytes.Buffer
			if err := json.Compact(&key, row.Key); err != nil {
				return fmt.Errorf("compare --json: key: %w", err)
			}
			r.Rows = append(r.Rows, strings.Join([]string{row.Table, key.String(), row.Kind, strings.Join(row.Columns, ",")}, " "))
		}
		for _, t := range rep.Tables {
			switch t.Status {
			case "differ":
				r.Differ = append(r.Differ, t.Table)
			case "not settled":
				r.NotSettled = append(r.NotSettled, t.Table)
			}
		}
		b.progress("%s: %.2f s, exit %d, rows %v, differ %v, not settled %v", name, r.Seconds, code, r.Rows, r.Differ, r.NotSettled)
		res.Runs[name] = append(res.Runs[name], r)
		return nil
	}
	for range b.o.runs {
		c, err := count()
		if err != nil {
			return err
		}
		b.progress("count: %.2f s", c)
		res.Count = append(res.Count, c)
		if err := compare("equal"); err != nil {
			return err
		}
	}
	res.ChangedKey = fmt.Sprintf(`public.pgbench_accounts {"aid":%d}`, changedAid)
	if err := execIn(ctx, dst, compareDB, fmt.Sprintf("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = %d", changedAid)); err != nil {
		return err
	}
	for range b.o.runs {
		if err := compare("one changed row"); err != nil {
			return err
		}
	}
	// The write load: pgbench's TPC-B-like script, 2 clients, for as long
	// as the compares take, on the accounts from 10001 up, so that it never
	// overwrites the row changed on the target.
	script := filepath.Join(b.work, "tpcb-from-10001.sql")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(tpcbScript, 100000*b.o.scale, b.o.scale, 10*b.o.scale)), 0o644); err != nil {
		return fmt.Errorf("pgbench script: %w", err)
	}
	lctx, stopLoad := context.WithCancel(ctx)
	load := exec.CommandContext(lctx, b.pgbench, "-n", "-c", "2", "-j", "2", "-T", "3600", "-f", script,
		"-h", b.src.Host, "-p", strconv.Itoa(b.src.Port), "-U", b.src.Superuser, compareDB)
	load.Env = b.childEnv(b.work)
	var loadOut strings.Builder
	load.Stdout, load.Stderr = &loadOut, &loadOut
	load.Cancel = func() error { return load.Process.Signal(syscall.SIGINT) }
	if err := load.Start(); err != nil {
		stopLoad()
		return fmt.Errorf("pgbench load: %w", err)
	}
	time.Sleep(5 * time.Second) // replication under load before the first compare
	srcConn, err := connect(ctx, b.src, compareDB)
	if err != nil {
		stopLoad()
		return err
	}
	var tx0 int64
	_ = srcConn.QueryRow(ctx, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").Scan(&tx0)
	t0 := time.Now()
	for range b.o.runs {
		if err := compare("under writes"); err != nil {
			stopLoad()
			return err
		}
	}
	var tx1 int64
	_ = srcConn.QueryRow(ctx, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").Scan(&tx1)
	res.WriteTPS = float64(tx1-tx0) / time.Since(t0).Seconds()
	srcConn.Close(context.Background())
	stopLoad()
	_ = load.Wait()
	writeCompare(b, res)
	path := filepath.Join(b.o.results, "compare-"+b.stamp+".json")
	data, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	fmt.Fprintf(b.stdout, "\nresults: %s\n", path)
	return nil
}

// tpcbScript is pgbench's tpcb-like script with the accounts drawn from
// 10001 up; %d are the accounts, branches and tellers.
const tpcbScript = `\set aid random(10001, %d)
\set bid random(1, %d)
\set tid random(1, %d)
\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
`

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// writeCompare prints the figures and the targets.
func writeCompare(b *bench, res compareResults) {
	w := b.stdout
	c := median(res.Count)
	fmt.Fprintf(w, "\ncompare benchmark: pgbench scale %d, PostgreSQL %s -> %s, --jobs %d, medians of %d run(s)\n", res.Scale, res.Source, res.Target, res.Jobs, len(res.Count))
	fmt.Fprintf(w, "  %-34s %7.2f s\n", "count(*) of every table, both sides", c)
	secs := func(name string) float64 {
		var xs []float64
		for _, r := range res.Runs[name] {
			xs = append(xs, r.Seconds)
		}
		return median(xs)
	}
	want := res.ChangedKey + " changed abalance"
	for _, name := range []string{"equal", "one changed row", "under writes"} {
		s := secs(name)
		ok := true
		for _, r := range res.Runs[name] {
			switch name {
			case "equal":
				ok = ok && r.Exit == 0 && len(r.Rows) == 0
			default:
				ok = ok && len(r.Rows) == 1 && r.Rows[0] == want && len(r.Differ) == 1
			}
		}
		target := s <= 3*c
		if name == "under writes" {
			target = ok // the target under writes is the row and no false difference
		}
		fmt.Fprintf(w, "  %-34s %7.2f s  %4.1fx the count  answer %s  target %s\n", "compare --checksum, "+name, s, s/c, passFail(ok), passFail(target && ok))
	}
	if res.WriteTPS > 0 {
		fmt.Fprintf(w, "  write load during the compares: %.0f transactions/s on the source (pgbench -c 2)\n", res.WriteTPS)
	}
	for _, r := range res.Runs["under writes"] {
		if len(r.NotSettled) > 0 {
			fmt.Fprintf(w, "  under writes, not settled (rows that kept changing, never called equal): %s\n", strings.Join(r.NotSettled, ", "))
			break
		}
	}
}
