package compare

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/sequence"
)

// Options tune a comparison.
type Options struct {
	Checksum bool // hash every row's full content by key range, not only count
	Jobs     int  // tables (counts) or ranges (checksums) compared at once
	// Tables narrows the migration's selection further (--tables).
	Tables []config.Pattern
	// Throttle caps the source rows read per second (0: no cap).
	Throttle int64
	// Limit is how many differing rows of a table are detailed (default 1000).
	Limit int
	// Retries bounds how often a differing range is read again while
	// replication runs (default 5); SettleTimeout how long each waits for
	// the target to apply the source's fence (default 60 s).
	Retries       int
	SettleTimeout time.Duration
	// Progress, when set, is kept up to date while Run runs, for the
	// caller to show.
	Progress *Progress
}

func (o Options) limit() int {
	if o.Limit <= 0 {
		return 1000
	}
	return o.Limit
}

func (o Options) retries() int {
	if o.Retries <= 0 {
		return 5
	}
	return o.Retries
}

func (o Options) settleTimeout() time.Duration {
	if o.SettleTimeout <= 0 {
		return time.Minute
	}
	return o.SettleTimeout
}

// Table is one table compared.
type Table struct {
	Name   string `json:"table"`
	Source int64  `json:"source_rows"`
	Target int64  `json:"target_rows"`
	Status string `json:"status"` // equal, differ, missing, not settled
	Note   string `json:"note,omitempty"`
	// Key is the columns the table was split and located by (--checksum);
	// empty when it has no primary key or unique NOT NULL index.
	Key    []string `json:"key,omitempty"`
	Ranges int      `json:"ranges,omitempty"`
	// Differing counts its rows found differing; NotSettled its rows (its
	// ranges, for a table without a key) that kept changing on the source
	// while they were compared.
	Differing  int `json:"differing_rows,omitempty"`
	NotSettled int `json:"not_settled,omitempty"`

	located   []Row
	unsettled []Row
}

// Report is a whole comparison.
type Report struct {
	Tables    []Table            `json:"tables"`
	Sequences []sequence.Compare `json:"sequences"`
	Equal     bool               `json:"equal"`
	Checksum  bool               `json:"checksum"`
	// Rows are the differing rows, by table and key (--checksum).
	Rows []Row `json:"rows"`
	// NotSettled are the rows that differed on every read while their
	// source rows kept changing: neither equal nor known to differ.
	NotSettled []Row `json:"not_settled,omitempty"`
	// Seconds is the time taken; RowsCompared the source rows counted or
	// hashed.
	Seconds      float64 `json:"seconds"`
	RowsCompared int64   `json:"rows_compared"`
	// Repaired says what --repair wrote and whether --apply ran it.
	Repaired *Repaired `json:"repair,omitempty"`

	jobs []*job
}

// sessionSettings pin every output format a checksum depends on, so two
// servers of different versions or settings render equal values equally.
var sessionSettings = map[string]string{
	"TimeZone": "UTC", "DateStyle": "ISO, YMD", "IntervalStyle": "postgres", "extra_float_digits": "3",
	"bytea_output": "hex", "lc_monetary": "C", "search_path": "pg_catalog", "client_encoding": "UTF8",
}

// Connect opens a connection set up for comparing.
func Connect(ctx context.Context, ep config.Endpoint) (*cluster.Conn, error) {
	cfg, err := cluster.Config(ep, "compare")
	if err != nil {
		return nil, err
	}
	for k, v := range sessionSettings {
		cfg.RuntimeParams[k] = v
	}
	return cluster.ConnectConfig(ctx, ep, cfg)
}

// work is a table found on both sides, at index i of Report.Tables.
type work struct {
	i    int
	s, d *catalog.Table
}

// Run compares every table of the migration's selection (row counts, and
// checksums when asked) and every sequence. The selection is the source's
// tables that include/exclude select, taken from its catalogue now, not the
// publication's list: a table the publication lacks is compared too.
func Run(ctx context.Context, m *config.Migration, src, dst *cluster.Conn, o Options) (*Report, error) {
	start := time.Now()
	r := &Report{Checksum: o.Checksum, Equal: true, Rows: []Row{}}
	ssnap, err := catalog.Tables(ctx, src)
	if err != nil {
		return nil, err
	}
	dsnap, err := catalog.TablesWithoutSizes(ctx, dst)
	if err != nil {
		return nil, err
	}
	published := ssnap.Published(src.VersionNum, m.Include, m.Exclude)
	if len(o.Tables) > 0 {
		var some []*catalog.Table
		for _, t := range published {
			if config.Selected(o.Tables, nil, t.Schema, t.Name) {
				some = append(some, t)
			}
		}
		published = some
	}
	jobs := max(o.Jobs, 1)
	if o.Progress == nil {
		o.Progress = &Progress{}
	}
	pr := o.Progress
	var size int64
	for _, t := range published {
		size += t.Bytes
	}
	pr.selected(len(published), size)
	if o.Checksum {
		pr.begin(StagePrepare)
	} else {
		pr.begin(StageCount)
	}

	r.Tables = make([]Table, len(published))
	var todo []work
	for i, t := range published {
		r.Tables[i] = Table{Name: t.String()}
		d := dsnap.Find(t.Schema, t.Name)
		if d == nil {
			// The source's rows are counted all the same: they are what
			// the target lacks.
			n, err := measure(ctx, src, t)
			if err != nil {
				return nil, err
			}
			r.Tables[i].Source = n
			r.Tables[i].Status = "missing"
			pr.tableDone(n, t.Bytes)
			r.Tables[i].Note = "no such table on the target"
			continue
		}
		todo = append(todo, work{i, t, d})
	}
	if o.Checksum {
		if err := checksumAll(ctx, m, src, dst, o, r, start, todo); err != nil {
			return nil, err
		}
		return finish(ctx, src, dst, r, start, pr)
	}
	ch := make(chan work)
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	for w := 0; w < min(jobs, max(len(todo), 1)); w++ {
		sc, dc := src, dst
		if w > 0 { // the first worker reuses the caller's connections
			if sc, err = Connect(ctx, m.Src); err != nil {
				return nil, err
			}
			defer sc.Close()
			if dc, err = Connect(ctx, m.Dst); err != nil {
				return nil, err
			}
			defer dc.Close()
		}
		wg.Add(1)
		go func(sc, dc *cluster.Conn) {
			defer wg.Done()
			for wk := range ch {
				res, err := compareTable(ctx, sc, dc, wk.s, wk.d)
				if err == nil {
					pr.tableDone(res.Source, wk.s.Bytes)
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				res.Name = r.Tables[wk.i].Name
				r.Tables[wk.i] = res
				mu.Unlock()
			}
		}(sc, dc)
	}
	for _, wk := range todo {
		if ctx.Err() != nil {
			break
		}
		ch <- wk
	}
	close(ch)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	for _, t := range r.Tables {
		r.RowsCompared += t.Source
	}
	return finish(ctx, src, dst, r, start, pr)
}

// checksumAll compares the tables' content by key range (see engine).
func checksumAll(ctx context.Context, m *config.Migration, src, dst *cluster.Conn, o Options, r *Report, start time.Time, todo []work) error {
	srcBytes, err := byteOrderedDefault(ctx, src)
	if err != nil {
		return err
	}
	dstBytes, err := byteOrderedDefault(ctx, dst)
	if err != nil {
		return err
	}
	e := &engine{m: m, o: o, r: r, start: start}
	t0 := time.Now()
	var jobs []*job
	for _, w := range todo {
		j, err := e.prepare(ctx, src, dst, w.i, w.s, w.d, srcBytes, dstBytes)
		if err != nil {
			return err
		}
		if j != nil {
			jobs = append(jobs, j)
		} else {
			o.Progress.tableDone(0, w.s.Bytes)
		}
	}
	slog.Debug(fmt.Sprintf("compare: %d table(s) prepared (columns, keys, ranges) in %s", len(jobs), time.Since(t0).Round(time.Millisecond)))
	if err := e.runChecksum(ctx, src, dst, jobs); err != nil {
		return err
	}
	r.jobs = jobs
	for _, j := range jobs {
		r.Rows = append(r.Rows, r.Tables[j.i].located...)
		r.NotSettled = append(r.NotSettled, r.Tables[j.i].unsettled...)
	}
	sortRows(r.Rows)
	sortRows(r.NotSettled)
	r.RowsCompared = e.rows.Load()
	return nil
}

// finish compares the sequences and decides.
func finish(ctx context.Context, src, dst *cluster.Conn, r *Report, start time.Time, pr *Progress) (*Report, error) {
	pr.begin(StageSequences)
	srcSeqs, err := sequence.Read(ctx, src)
	if err != nil {
		return nil, err
	}
	dstSeqs, err := sequence.Read(ctx, dst)
	if err != nil {
		return nil, err
	}
	r.Sequences = sequence.CompareAll(srcSeqs, dstSeqs)
	for _, t := range r.Tables {
		if t.Status != "equal" {
			r.Equal = false
		}
	}
	for _, s := range r.Sequences {
		if s.Status == "behind" || s.Status == "missing" {
			r.Equal = false
		}
	}
	r.Seconds = time.Since(start).Seconds()
	return r, nil
}

// compareTable counts a table's rows on both sides at once.
func compareTable(ctx context.Context, src, dst *cluster.Conn, s, d *catalog.Table) (Table, error) {
	res := Table{}
	var sv, dv int64
	var serr, derr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sv, serr = measure(ctx, src, s) }()
	go func() { defer wg.Done(); dv, derr = measure(ctx, dst, d) }()
	wg.Wait()
	if serr != nil {
		return res, serr
	}
	if derr != nil {
		return res, derr
	}
	res.Source, res.Target = sv, dv
	res.Status = "equal"
	if res.Source != res.Target {
		res.Status = "differ"
	}
	return res, nil
}

// measure counts a table's rows.
func measure(ctx context.Context, c *cluster.Conn, t *catalog.Table) (int64, error) {
	var n int64
	if err := c.QueryRow(ctx, "SELECT count(*) FROM "+from(t)).Scan(&n); err != nil {
		return 0, c.Wrap("compare "+t.String(), err)
	}
	return n, nil
}

// TextRows is how many differing rows the text report lists.
const TextRows = 20

// WriteText prints the report.
func (r *Report) WriteText(w io.Writer) {
	for _, t := range r.Tables {
		tag := "PASS"
		if t.Status != "equal" {
			tag = "FAIL"
		}
		line := fmt.Sprintf("[%s] table    %s  source=%d target=%d", tag, catalog.Printable(t.Name), t.Source, t.Target)
		if r.Checksum && t.Status != "missing" && !strings.HasPrefix(t.Note, "columns missing") {
			switch t.Status {
			case "equal":
				line += "  checksum equal"
			case "not settled":
				line += "  not settled: " + t.settledText()
			default:
				line += "  checksum differs"
				if t.Differing > 0 {
					line += fmt.Sprintf(": %d row(s)", t.Differing)
				}
				if t.NotSettled > 0 {
					line += "; not settled: " + t.settledText()
				}
			}
		}
		if t.Note != "" {
			line += "  (" + catalog.Printable(t.Note) + ")"
		}
		fmt.Fprintln(w, line)
	}
	for i, row := range r.Rows {
		if i == TextRows {
			fmt.Fprintf(w, "  ... and %d more differing row(s) (--json lists them, up to 1,000 a table)\n", r.differing()-TextRows)
			break
		}
		fmt.Fprintln(w, "  "+row.Text())
	}
	if n := r.differing(); n > len(r.Rows) && len(r.Rows) <= TextRows {
		fmt.Fprintf(w, "  ... and %d more differing row(s) not listed\n", n-len(r.Rows))
	}
	for i, row := range r.NotSettled {
		if i == TextRows {
			fmt.Fprintf(w, "  ... and %d more not settled\n", len(r.NotSettled)-TextRows)
			break
		}
		fmt.Fprintf(w, "  not settled:           %s %s\n", catalog.Printable(row.Table), catalog.Printable(row.Key.String()))
	}
	for _, s := range r.Sequences {
		tag := "PASS"
		if s.Status == "behind" || s.Status == "missing" {
			tag = "FAIL"
		}
		line := fmt.Sprintf("[%s] sequence %s  source=%s target=%s  %s", tag, catalog.Printable(s.Name), s.Source, s.Target, s.Status)
		if s.Distance != 0 {
			line += fmt.Sprintf(" by %d", s.Distance)
		}
		fmt.Fprintln(w, line)
	}
	diff := 0
	for _, t := range r.Tables {
		if t.Status != "equal" {
			diff++
		}
	}
	behind := 0
	for _, s := range r.Sequences {
		if s.Status == "behind" || s.Status == "missing" {
			behind++
		}
	}
	if r.Equal {
		fmt.Fprintf(w, "equal: %d table(s) and %d sequence(s) match\n", len(r.Tables), len(r.Sequences))
	} else {
		fmt.Fprintf(w, "not equal: %d of %d table(s) differ, %d of %d sequence(s) behind or missing on the target\n", diff, len(r.Tables), behind, len(r.Sequences))
	}
	fmt.Fprintln(w, r.Summary())
	if p := r.Repaired; p != nil {
		if p.Applied {
			fmt.Fprintf(w, "repair: %d statement(s) written to %s and applied to the target; rerun compare to confirm\n", p.Statements, catalog.Printable(p.File))
		} else {
			fmt.Fprintf(w, "repair: %d statement(s) written to %s; review it, then run it on the target or rerun with --apply\n", p.Statements, catalog.Printable(p.File))
		}
	}
}

// settledText says what kept changing while compared.
func (t Table) settledText() string {
	if t.Key == nil {
		return "its rows kept changing while compared (no key to tell which)"
	}
	return fmt.Sprintf("%d row(s) kept changing while compared", t.NotSettled)
}

// Repaired is what --repair did.
type Repaired struct {
	File       string `json:"file"`
	Statements int    `json:"statements"`
	Applied    bool   `json:"applied"`
}

// Summary is the closing line: rows compared, time, rate.
func (r *Report) Summary() string {
	what := "counted"
	if r.Checksum {
		what = "compared"
	}
	rate := 0.0
	if r.Seconds > 0 {
		rate = float64(r.RowsCompared) / r.Seconds
	}
	return fmt.Sprintf("%s %d source row(s) in %.1fs (%.0f rows/s)", what, r.RowsCompared, r.Seconds, rate)
}

// differing counts the differing rows found in all tables.
func (r *Report) differing() int {
	n := 0
	for _, t := range r.Tables {
		n += t.Differing
	}
	return max(n, len(r.Rows))
}

// Text is one differing row as the text report prints it.
func (row Row) Text() string {
	k := catalog.Printable(row.Key.String())
	switch row.Kind {
	case Missing:
		return fmt.Sprintf("missing on the target: %s %s", catalog.Printable(row.Table), k)
	case Extra:
		return fmt.Sprintf("extra on the target:   %s %s", catalog.Printable(row.Table), k)
	}
	cols := make([]string, len(row.Columns))
	for i, c := range row.Columns {
		cols[i] = catalog.QuoteName(c)
	}
	return fmt.Sprintf("changed:               %s %s (%s)", catalog.Printable(row.Table), k, catalog.Printable(strings.Join(cols, ", ")))
}

// WriteJSON prints the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
