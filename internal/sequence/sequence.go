package sequence

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
)

// Pair is one sequence on both sides.
type Pair struct {
	Src, Dst *catalog.Sequence
}

// Read lists every user sequence of a side with its current value.
func Read(ctx context.Context, c *cluster.Conn) ([]*catalog.Sequence, error) {
	seqs, err := catalog.Sequences(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := catalog.ReadSequenceValues(ctx, c, seqs); err != nil {
		return nil, c.Wrap("read sequence values", err)
	}
	return seqs, nil
}

// Match pairs the source's sequences with the target's by schema and name.
// Sequences the target lacks come back in missing.
func Match(src, dst []*catalog.Sequence) (pairs []Pair, missing []*catalog.Sequence) {
	byName := map[[2]string]*catalog.Sequence{}
	for _, s := range dst {
		byName[[2]string{s.Schema, s.Name}] = s
	}
	for _, s := range src {
		if d := byName[[2]string{s.Schema, s.Name}]; d != nil {
			pairs = append(pairs, Pair{Src: s, Dst: d})
		} else {
			missing = append(missing, s)
		}
	}
	return pairs, missing
}

// shift moves v by n values in the sequence's direction, clamped to its
// bounds; clamped says it hit one.
func shift(v, n int64, s *catalog.Sequence) (out int64, clamped bool) {
	if s.Increment < 0 {
		n = -n
	}
	out = v + n
	if n > 0 && out < v { // overflow
		out, clamped = math.MaxInt64, true
	}
	if n < 0 && out > v {
		out, clamped = math.MinInt64, true
	}
	if out > s.Max {
		return s.Max, true
	}
	if out < s.Min {
		return s.Min, true
	}
	return out, clamped
}

// Result reports what a sequence step did.
type Result struct {
	Set     int
	Ahead   int // target sequences already at or past the wanted value, left alone
	Clamped []string
}

// Copy sets every target sequence to its source's last_value and is_called,
// moved offset values ahead, in one target transaction: all of them or none.
// A target sequence already at or past that point is left alone: moving it
// back could hand out a key twice.
func Copy(ctx context.Context, r cluster.Runner, src, dst *cluster.Conn, offset int64) (Result, error) {
	var res Result
	srcSeqs, err := Read(ctx, src)
	if err != nil {
		return res, err
	}
	dstSeqs, err := Read(ctx, dst)
	if err != nil {
		return res, err
	}
	pairs, missing := Match(srcSeqs, dstSeqs)
	if len(missing) > 0 {
		var n []string
		for _, s := range missing {
			n = append(n, s.String())
		}
		return res, fmt.Errorf("target: %d sequence(s) of the source are missing (%s); run pgmove copy-schema first", len(missing), strings.Join(n, ", "))
	}
	var stmts []setval
	for _, p := range pairs {
		v, called := p.Src.LastValue, p.Src.IsCalled
		clamped := false
		if offset != 0 {
			v, clamped = shift(v, offset, p.Dst)
		} else if v > p.Dst.Max || v < p.Dst.Min {
			v, clamped = min(max(v, p.Dst.Min), p.Dst.Max), true
		}
		want := catalog.Sequence{LastValue: v, IsCalled: called, Increment: p.Dst.Increment, Min: p.Dst.Min, Max: p.Dst.Max, Cycle: p.Dst.Cycle}
		if ahead(p.Dst, &want) {
			res.Ahead++
			continue
		}
		if clamped {
			res.Clamped = append(res.Clamped, p.Dst.String())
		}
		stmts = append(stmts, setval{seq: p.Dst, value: v, called: called})
	}
	res.Set = len(stmts)
	return res, apply(ctx, r, dst, "copy sequence values", stmts)
}

// Advance moves every target sequence n values ahead of where it is now:
// the seed's next-seq, for when writes on the target may collide with keys
// the source handed out after the last copy.
func Advance(ctx context.Context, r cluster.Runner, dst *cluster.Conn, n int64) (Result, error) {
	var res Result
	seqs, err := Read(ctx, dst)
	if err != nil {
		return res, err
	}
	var stmts []setval
	for _, s := range seqs {
		v, clamped := shift(s.LastValue, n, s)
		if clamped {
			res.Clamped = append(res.Clamped, s.String())
		}
		stmts = append(stmts, setval{seq: s, value: v, called: true})
	}
	res.Set = len(stmts)
	return res, apply(ctx, r, dst, fmt.Sprintf("advance sequences by %d", n), stmts)
}

// ahead reports whether sequence a's next value is at or past b's, in the
// sequence's direction.
func ahead(a, b *catalog.Sequence) bool {
	an, _ := a.Next()
	bn, _ := b.Next()
	if a.Increment < 0 {
		return an <= bn
	}
	return an >= bn
}

type setval struct {
	seq    *catalog.Sequence
	value  int64
	called bool
}

func (s setval) sql() string {
	return fmt.Sprintf("SELECT pg_catalog.setval(%s, %d, %t)", quoteRegclass(s.seq.Ident()), s.value, s.called)
}

func quoteRegclass(ident string) string {
	return "'" + strings.ReplaceAll(ident, "'", "''") + "'"
}

func apply(ctx context.Context, r cluster.Runner, c *cluster.Conn, what string, stmts []setval) error {
	if len(stmts) == 0 {
		return nil
	}
	if r.DryRun {
		fmt.Fprintf(r.Out, "-- %s: %s (one transaction)\nBEGIN;\n", c.Side, what)
		for _, s := range stmts {
			fmt.Fprintf(r.Out, "%s;\n", s.sql())
		}
		fmt.Fprintln(r.Out, "COMMIT;")
		return nil
	}
	return pgx.BeginFunc(ctx, c.Conn, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, s := range stmts {
			b.Queue("SELECT pg_catalog.setval($1::oid::regclass, $2, $3)", s.seq.OID, s.value, s.called)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return c.Wrap(what, err)
		}
		return nil
	})
}

// Compare is one sequence's state on both sides.
type Compare struct {
	Name     string `json:"name"`
	Source   string `json:"source"` // "last_value (called)" or "start (never used)"
	Target   string `json:"target"`
	Status   string `json:"status"` // equal, ahead, behind, missing
	Distance int64  `json:"distance,omitempty"`
}

// Describe renders last_value and is_called.
func Describe(s *catalog.Sequence) string {
	if s == nil {
		return "-"
	}
	if !s.IsCalled {
		return fmt.Sprintf("%d (not called)", s.LastValue)
	}
	return fmt.Sprint(s.LastValue)
}

// CompareAll compares every source sequence with the target's: the target is
// fine when its next value is at or past the source's (in the sequence's
// direction), so no key the source handed out can be handed out again.
func CompareAll(src, dst []*catalog.Sequence) []Compare {
	pairs, missing := Match(src, dst)
	var out []Compare
	for _, p := range pairs {
		c := Compare{Name: p.Src.String(), Source: Describe(p.Src), Target: Describe(p.Dst)}
		sn, _ := p.Src.Next()
		dn, _ := p.Dst.Next()
		d := dn - sn
		if p.Src.Increment < 0 {
			d = -d
		}
		switch {
		case d == 0:
			c.Status = "equal"
		case d > 0:
			c.Status, c.Distance = "ahead", d
		default:
			c.Status, c.Distance = "behind", -d
		}
		out = append(out, c)
	}
	for _, s := range missing {
		out = append(out, Compare{Name: s.String(), Source: Describe(s), Target: "-", Status: "missing"})
	}
	return out
}

// Fprint prints a result summary line.
func (r Result) Fprint(w io.Writer, what string) {
	fmt.Fprintf(w, "%s: %d sequence(s)", what, r.Set)
	if r.Ahead > 0 {
		fmt.Fprintf(w, "; %d already at or past it, left alone", r.Ahead)
	}
	fmt.Fprintln(w)
	for _, c := range r.Clamped {
		fmt.Fprintf(w, "  %s: clamped to its bound\n", c)
	}
}
