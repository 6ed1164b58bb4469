package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
)

// results is everything one bench run measured; it is written as JSON to
// bench/results/<time>.json.
type results struct {
	Time          string            `json:"time"`
	Cores         int               `json:"cores"`
	PgmoveVersion string            `json:"pgmove_version"`
	GitCommit     string            `json:"git_commit,omitempty"`
	Jobs          int               `json:"jobs"`
	Source        string            `json:"source_version"`
	Target        string            `json:"target_version"`
	Settings      map[string]string `json:"server_settings"`
	// FullSize is false when the datasets are smaller than the ones the
	// targets were set for (a smoke run).
	FullSize bool            `json:"full_size"`
	Datasets []datasetResult `json:"datasets"`
}

// targetResult is one of the targets, judged on one dataset.
type targetResult struct {
	Target string `json:"target"`
	Status string `json:"status"` // PASS, FAIL, or n/a when a run it needs failed or was not made
	Got    string `json:"got"`
}

// The targets.
const (
	wantVsNativePgbench   = 2.5 // issue 18: pgbench scale 100 on production settings
	wantVsPgcopydbPgbench = 2.0
	wantVsNativeTables    = 6.0 // issue 18, on production settings
	wantPeakRSSMB         = 100.0
)

// evaluate judges the targets on a dataset's runs.
func evaluate(o *options, ds *dataset) []targetResult {
	var ts []targetResult
	switch ds.Name {
	case dataPgbench:
		if o.has(toolNative) && o.has(toolPgmove) {
			ts = append(ts, ratioTarget(ds, toolNative, o.dstMajor, wantVsNativePgbench))
		}
		if o.has(toolPgcopydb) && o.has(toolPgmove) {
			// The same target major for both: the chosen one if pgcopydb
			// worked there, else the fallback.
			major := o.dstMajor
			if r := find(ds, toolPgcopydb, major); r == nil || r.Error != "" {
				if r15 := find(ds, toolPgcopydb, fallbackMajor); r15 != nil {
					major = fallbackMajor
				}
			}
			ts = append(ts, ratioTarget(ds, toolPgcopydb, major, wantVsPgcopydbPgbench))
		}
	case dataTables:
		if o.has(toolNative) && o.has(toolPgmove) {
			ts = append(ts, ratioTarget(ds, toolNative, o.dstMajor, wantVsNativeTables))
		}
	}
	if o.has(toolPgmove) {
		t := targetResult{Target: fmt.Sprintf("pgmove peak RSS < %.0f MB", wantPeakRSSMB), Status: "n/a", Got: "no pgmove run finished"}
		var peak float64
		var n int
		for _, r := range ds.Runs {
			if r.Tool == toolPgmove && r.Error == "" {
				peak = max(peak, r.PeakRSSMB)
				n++
			}
		}
		if n > 0 {
			t.Got = fmt.Sprintf("%.0f MB", peak)
			t.Status = passFail(peak < wantPeakRSSMB)
		}
		ts = append(ts, t)
	}
	return ts
}

// ratioTarget judges "pgmove at least want× faster than tool" on a target major.
func ratioTarget(ds *dataset, tool string, major int, want float64) targetResult {
	t := targetResult{Target: fmt.Sprintf("pgmove ≥ %g× faster than %s (PostgreSQL %d target)", want, tool, major), Status: "n/a"}
	other, pgm := find(ds, tool, major), find(ds, toolPgmove, major)
	switch {
	case pgm == nil || other == nil:
		t.Got = "not both run on this target"
	case pgm.Error != "":
		t.Got = "pgmove " + pgm.Error
	case other.Error != "":
		t.Got = tool + " " + other.Error
	case !pgm.Equal || !other.Equal:
		t.Status = "FAIL"
		t.Got = "a target is not equal to the source"
	default:
		ratio := other.Seconds / pgm.Seconds
		t.Got = fmt.Sprintf("%.2f× (%.1f s vs %.1f s)", ratio, other.Seconds, pgm.Seconds)
		if n := okRuns(ds, toolPgmove, major); n > 1 {
			t.Got = fmt.Sprintf("%.2f× (medians of %d runs: %.1f s vs %.1f s)", ratio, n, other.Seconds, pgm.Seconds)
		}
		t.Status = passFail(ratio >= want)
	}
	return t
}

// find returns the tool's median run on that target major among those
// that finished (the faster of the two middle ones for an even count), or
// its first run when none finished.
func find(ds *dataset, tool string, major int) *runResult {
	var ok []*runResult
	var first *runResult
	for i := range ds.Runs {
		if r := &ds.Runs[i]; r.Tool == tool && r.TargetMajor == major {
			if first == nil {
				first = r
			}
			if r.Error == "" {
				ok = append(ok, r)
			}
		}
	}
	if len(ok) == 0 {
		return first
	}
	sort.SliceStable(ok, func(i, j int) bool { return ok[i].Seconds < ok[j].Seconds })
	return ok[(len(ok)-1)/2]
}

// okRuns counts the tool's finished runs on that target major.
func okRuns(ds *dataset, tool string, major int) int {
	n := 0
	for _, r := range ds.Runs {
		if r.Tool == tool && r.TargetMajor == major && r.Error == "" {
			n++
		}
	}
	return n
}

// inRound returns the tool's run of that round on that target major.
func inRound(ds *datasetResult, tool string, major, round int) *runResult {
	for i := range ds.Runs {
		if r := &ds.Runs[i]; r.Tool == tool && r.TargetMajor == major && r.Round == round {
			return r
		}
	}
	return nil
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

// writeHeader says what is measured, where and with which settings.
func writeHeader(w io.Writer, res results, o *options) {
	fmt.Fprintf(w, "pgmove bench: %s", res.PgmoveVersion)
	if res.GitCommit != "" {
		fmt.Fprintf(w, " (%s)", res.GitCommit)
	}
	fmt.Fprintf(w, ", %d cores, --jobs %d; source PostgreSQL %s -> target PostgreSQL %s, loopback\n", res.Cores, res.Jobs, res.Source, res.Target)
	writeSettings(w, res.Settings, o.fsyncOff)
	fmt.Fprintln(w, "tools: native = pgmove migrate --copy native (full schema, then PostgreSQL's table sync); pgmove = pgmove migrate;")
	fmt.Fprintln(w, "  pgcopydb = pgcopydb clone. Each gets a fresh empty target database; seconds are the whole command, wall clock.")
	fmt.Fprintln(w, "  MB/s = the source's table data (sum of pg_table_size, MB of 2^20 bytes) / seconds. Peak RSS = ru_maxrss of the tool's process")
	fmt.Fprintln(w, "  (the largest of it and the children it waited for, such as pg_dump and pg_restore).")
	fmt.Fprintf(w, "  Each tool runs %d time(s), the tools taking turns (round after round) on a machine whose speed drifts; before each run\n", o.runs)
	fmt.Fprintln(w, "  both servers are checkpointed and the page cache is synced. Targets compare the tools' median times.")
	fmt.Fprintln(w, "  Each run loads a database of its own, dropped after its check; with 1,000 tables or more it is kept (autovacuum off)")
	fmt.Fprintln(w, "  until the dataset is done instead: dropping thousands of files slowed the next run's file creation by seconds.")
	if len(o.pgmoveArgs) > 0 {
		fmt.Fprintf(w, "  pgmove runs with extra arguments: %s\n", strings.Join(o.pgmoveArgs, " "))
	}
	if !o.fullSize() {
		fmt.Fprintf(w, "NOTE: other datasets than the targets were set for (pgbench scale %d, %d tables of %d rows, growth %d and %d tables of %d rows): the PASS/FAIL lines are indicative only.\n",
			specScale, specTables, specRows, specGrowthTables, specGrowthTables*growthFactor, specGrowthRows)
	}
}

// writeDataset prints a dataset's table and its targets.
func writeDataset(w io.Writer, res results, ds *datasetResult) {
	fmt.Fprintf(w, "\n== %s: %d tables, %d rows, %d indexes, %.1f MB of table data (built in %.1f s)\n",
		ds.Description, ds.Tables, ds.Rows, ds.Indexes, ds.MB, ds.BuildSeconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "tool\tround\ttarget\tseconds\tMB/s\tvs pgmove (same target and round)\tpeak RSS\ttarget = source")
	for i := range ds.Runs {
		r := &ds.Runs[i]
		target := "-"
		if r.Target != "" {
			target = "PG " + r.Target
		}
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t%d\t%s\t-\t-\t-\t-\t%s\n", r.Tool, r.Round, target, r.Error)
			continue
		}
		vs := "-"
		if pgm := inRound(ds, toolPgmove, r.TargetMajor, r.Round); r.Tool != toolPgmove && pgm != nil && pgm.Error == "" {
			ratio := r.Seconds / pgm.Seconds
			if ratio >= 1 {
				vs = fmt.Sprintf("%s %.2f× slower", r.Tool, ratio)
			} else {
				vs = fmt.Sprintf("%s %.2f× faster", r.Tool, 1/ratio)
			}
		}
		check := r.Check
		if r.Leftovers != "" {
			check += "; " + r.Leftovers
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.1f\t%.1f\t%s\t%.0f MB\t%s\n", r.Tool, r.Round, target, r.Seconds, r.MBps, vs, r.PeakRSSMB, check)
	}
	tw.Flush()
	writePhases(w, ds)
	writeCPU(w, ds, res.Cores)
	writeTargets(w, ds)
}

func writeTargets(w io.Writer, ds *datasetResult) {
	if len(ds.Targets) == 0 {
		return
	}
	fmt.Fprintln(w, "targets:")
	for _, t := range ds.Targets {
		fmt.Fprintf(w, "  %-4s  %s: %s\n", t.Status, t.Target, t.Got)
	}
}

// writeSummary repeats every target in one place.
func writeSummary(w io.Writer, res results) {
	var lines []string
	pass, total := 0, 0
	for i := range res.Datasets {
		ds := &res.Datasets[i]
		for _, t := range ds.Targets {
			lines = append(lines, fmt.Sprintf("  %-4s  %s, %s: %s", t.Status, ds.Name, t.Target, t.Got))
			total++
			if t.Status == "PASS" {
				pass++
			}
		}
	}
	if total == 0 {
		return
	}
	note := ""
	if !res.FullSize {
		note = " (smaller datasets than the targets were set for: indicative only)"
	}
	if res.Cores != 2 {
		note += fmt.Sprintf(" (the targets are for a 2-core machine; this one has %d)", res.Cores)
	}
	fmt.Fprintf(w, "\n== targets: %d of %d pass%s\n%s\n", pass, total, note, strings.Join(lines, "\n"))
}

func writeJSON(path string, res results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	return nil
}
