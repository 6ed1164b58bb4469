package compare

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/sequence"
)

// Options tune a comparison.
type Options struct {
	Checksum bool // hash every row's full content, not only count
	Jobs     int  // tables compared at once
}

// Table is one table compared.
type Table struct {
	Name    string `json:"table"`
	Source  int64  `json:"source_rows"`
	Target  int64  `json:"target_rows"`
	SrcHash string `json:"source_checksum,omitempty"`
	DstHash string `json:"target_checksum,omitempty"`
	Status  string `json:"status"` // equal, differ, missing
	Note    string `json:"note,omitempty"`
}

// Report is a whole comparison.
type Report struct {
	Tables    []Table            `json:"tables"`
	Sequences []sequence.Compare `json:"sequences"`
	Equal     bool               `json:"equal"`
	Checksum  bool               `json:"checksum"`
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

// Run compares every table of the migration's selection (row counts, and
// checksums when asked) and every sequence. The selection is the source's
// tables that include/exclude select, taken from its catalogue now, not the
// publication's list: a table the publication lacks is compared too.
func Run(ctx context.Context, m *config.Migration, src, dst *cluster.Conn, o Options) (*Report, error) {
	r := &Report{Checksum: o.Checksum, Equal: true}
	ssnap, err := catalog.Tables(ctx, src)
	if err != nil {
		return nil, err
	}
	dsnap, err := catalog.TablesWithoutSizes(ctx, dst)
	if err != nil {
		return nil, err
	}
	published := ssnap.Published(src.VersionNum, m.Include, m.Exclude)
	jobs := max(o.Jobs, 1)

	type work struct {
		i    int
		s, d *catalog.Table
	}
	r.Tables = make([]Table, len(published))
	var todo []work
	for i, t := range published {
		r.Tables[i] = Table{Name: t.String()}
		d := dsnap.Find(t.Schema, t.Name)
		if d == nil {
			// The source's rows are counted all the same: they are what
			// the target lacks.
			v, err := measure(ctx, src, t, "")
			if err != nil {
				return nil, err
			}
			fmt.Sscan(v[0], &r.Tables[i].Source)
			r.Tables[i].Status = "missing"
			r.Tables[i].Note = "no such table on the target"
			continue
		}
		todo = append(todo, work{i, t, d})
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
				res, err := compareTable(ctx, sc, dc, wk.s, wk.d, o.Checksum)
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
	return r, nil
}

// columns lists a table's columns in order, to hash the same columns in the
// same order on both sides whatever their physical layout.
func columns(ctx context.Context, c *cluster.Conn, oid uint32) ([]string, error) {
	rows, err := c.Query(ctx, `SELECT attname FROM pg_catalog.pg_attribute
		WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, oid)
	if err != nil {
		return nil, c.Wrap("list columns", err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return cols, c.Wrap("list columns", err)
}

func compareTable(ctx context.Context, src, dst *cluster.Conn, s, d *catalog.Table, checksum bool) (Table, error) {
	res := Table{}
	var expr string
	if checksum {
		scols, err := columns(ctx, src, s.OID)
		if err != nil {
			return res, err
		}
		dcols, err := columns(ctx, dst, d.OID)
		if err != nil {
			return res, err
		}
		have := map[string]bool{}
		for _, c := range dcols {
			have[c] = true
		}
		var missing []string
		for _, c := range scols {
			if !have[c] {
				missing = append(missing, catalog.QuoteName(c))
			}
		}
		if len(missing) > 0 {
			res.Status, res.Note = "differ", "columns missing on the target: "+strings.Join(missing, ", ")
			return res, nil
		}
		expr = rowExpr(scols)
	}
	var sv, dv [2]string
	var serr, derr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sv, serr = measure(ctx, src, s, expr) }()
	go func() { defer wg.Done(); dv, derr = measure(ctx, dst, d, expr) }()
	wg.Wait()
	if serr != nil {
		return res, serr
	}
	if derr != nil {
		return res, derr
	}
	fmt.Sscan(sv[0], &res.Source)
	fmt.Sscan(dv[0], &res.Target)
	res.SrcHash, res.DstHash = sv[1], dv[1]
	res.Status = "equal"
	if res.Source != res.Target || res.SrcHash != res.DstHash {
		res.Status = "differ"
	}
	return res, nil
}

// rowExpr renders one row's columns as text in a fixed order.
func rowExpr(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = pgx.Identifier{c}.Sanitize()
	}
	return "ROW(" + strings.Join(q, ", ") + ")::text"
}

// measure counts a table's rows and, with expr, hashes them: two sums of
// 64-bit slices of each row's md5, which do not depend on row order and
// cannot overflow (sum of bigint is numeric).
func measure(ctx context.Context, c *cluster.Conn, t *catalog.Table, expr string) ([2]string, error) {
	from := "ONLY " + t.Ident()
	if t.Kind == 'p' {
		from = t.Ident() // a partitioned table's rows live in its partitions
	}
	var q string
	if expr == "" {
		q = "SELECT count(*)::text, '' FROM " + from
	} else {
		q = `SELECT count(*)::text, count(*) || ':' || COALESCE(sum(('x' || substr(h, 1, 16))::bit(64)::int8), 0) || ':' ||
			COALESCE(sum(('x' || substr(h, 17, 16))::bit(64)::int8), 0)
			FROM (SELECT pg_catalog.md5(` + expr + `) AS h FROM ` + from + ` AS t) AS s`
	}
	var out [2]string
	if err := c.QueryRow(ctx, q).Scan(&out[0], &out[1]); err != nil {
		return out, c.Wrap("compare "+t.String(), err)
	}
	return out, nil
}

// WriteText prints the report.
func (r *Report) WriteText(w io.Writer) {
	for _, t := range r.Tables {
		tag := "PASS"
		if t.Status != "equal" {
			tag = "FAIL"
		}
		line := fmt.Sprintf("[%s] table    %s  source=%d target=%d", tag, catalog.Printable(t.Name), t.Source, t.Target)
		if r.Checksum && t.Status != "missing" {
			if t.SrcHash == t.DstHash {
				line += "  checksum equal"
			} else {
				line += "  checksum differs"
			}
		}
		if t.Note != "" {
			line += "  (" + catalog.Printable(t.Note) + ")"
		}
		fmt.Fprintln(w, line)
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
}

// WriteJSON prints the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
