package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/pgmove/pgmove/internal/phase"
)

// The phases of migrate the report shows, in the order they run. The
// times come from pgmove's own log (--log-format json, one record per
// phase that ended: internal/phase), never from bench's guesses. Dump runs
// alongside check; "other" is the total less the phases that run one after
// the other: connecting, the journal, the wait for the dump, roles...
var phaseColumns = []struct{ key, title string }{
	{phase.Check, "check"},
	{phase.Dump, "dump*"},
	{phase.Schema, "schema"},
	{phase.PreData, "pre-data"},
	{phase.Publication, "pub"},
	{phase.Copy, "copy"},
	{phase.Indexes, "indexes"},
	{phase.PostData, "post-data"},
	{phase.Subscription, "sub"},
	{phase.CatchUp, "catch-up"},
}

// overlapping are the phases that run alongside another one.
var overlapping = map[string]bool{phase.Dump: true}

// readPhases reads the phase records of a pgmove log: its JSON lines
// (stderr) among the text ones (stdout). A phase logged twice (a retried
// step) counts the sum.
func readPhases(path string) map[string]float64 {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out map[string]float64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var rec map[string]any
		if json.Unmarshal(line, &rec) != nil || rec["msg"] != phase.Msg {
			continue
		}
		name, _ := rec[phase.Key].(string)
		secs, ok := rec[phase.SecondsKey].(float64)
		if name == "" || !ok {
			continue
		}
		if out == nil {
			out = map[string]float64{}
		}
		out[name] += secs
	}
	return out
}

// jsonMessage is the message of a JSON log line, for failureLine.
func jsonMessage(line string) (string, bool) {
	if !strings.HasPrefix(line, "{") {
		return "", false
	}
	var rec struct {
		Msg string `json:"msg"`
	}
	if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg == "" {
		return "", false
	}
	return rec.Msg, true
}

// otherSeconds is the run's time outside its sequential phases, or -1 when
// pgmove logged none.
func otherSeconds(r *runResult) float64 {
	if len(r.Phases) == 0 {
		return -1
	}
	rest := r.Seconds
	for _, c := range phaseColumns {
		if !overlapping[c.key] {
			rest -= r.Phases[c.key]
		}
	}
	return max(rest, 0)
}

// writePhases prints where the time of each pgmove migrate run went, each
// round and the median of each phase, next to the total.
func writePhases(w io.Writer, ds *datasetResult) {
	var runs []*runResult
	used := map[string]bool{}
	for i := range ds.Runs {
		r := &ds.Runs[i]
		if r.Error != "" || len(r.Phases) == 0 {
			continue
		}
		runs = append(runs, r)
		for k := range r.Phases {
			used[k] = true
		}
	}
	if len(runs) == 0 {
		return
	}
	fmt.Fprintln(w, "phases of migrate, seconds (pgmove's own log, --log-format json; dump* runs alongside check;")
	fmt.Fprintln(w, "  other = total less the phases in a row: connecting, journal, waiting for the dump; for native the table sync is in catch-up):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := []string{"tool", "round", "total"}
	var cols []string
	for _, c := range phaseColumns {
		if used[c.key] {
			cols = append(cols, c.key)
			header = append(header, c.title)
		}
	}
	header = append(header, "other")
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	cell := func(v float64, ok bool) string {
		if !ok {
			return "-"
		}
		return fmt.Sprintf("%.2f", v)
	}
	row := func(tool, round string, total float64, get func(string) (float64, bool), other float64) {
		line := []string{tool, round, fmt.Sprintf("%.2f", total)}
		for _, k := range cols {
			line = append(line, cell(get(k)))
		}
		line = append(line, cell(other, other >= 0))
		fmt.Fprintln(tw, strings.Join(line, "\t")+"\t")
	}
	byTool := map[string][]*runResult{}
	var tools []string
	for _, r := range runs {
		key := fmt.Sprintf("%s\x00%d", r.Tool, r.TargetMajor)
		if byTool[key] == nil {
			tools = append(tools, key)
		}
		byTool[key] = append(byTool[key], r)
	}
	for _, key := range tools {
		rs := byTool[key]
		tool := rs[0].Tool
		if rs[0].TargetMajor != 0 && len(tools) > 2 {
			tool = fmt.Sprintf("%s (PG %d)", tool, rs[0].TargetMajor)
		}
		for _, r := range rs {
			row(tool, fmt.Sprint(r.Round), r.Seconds, func(k string) (float64, bool) { v, ok := r.Phases[k]; return v, ok }, otherSeconds(r))
		}
		if len(rs) < 2 {
			continue
		}
		med := func(f func(*runResult) (float64, bool)) (float64, bool) {
			var vs []float64
			for _, r := range rs {
				if v, ok := f(r); ok {
					vs = append(vs, v)
				}
			}
			if len(vs) == 0 {
				return 0, false
			}
			sort.Float64s(vs)
			return vs[(len(vs)-1)/2], true
		}
		total, _ := med(func(r *runResult) (float64, bool) { return r.Seconds, true })
		other, _ := med(func(r *runResult) (float64, bool) { return otherSeconds(r), true })
		row(tool, "median", total, func(k string) (float64, bool) {
			return med(func(r *runResult) (float64, bool) { v, ok := r.Phases[k]; return v, ok })
		}, other)
	}
	tw.Flush()
}
