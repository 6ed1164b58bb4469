package catalog

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/cluster"
)

// Sequence is a user sequence with its parameters and, once read, its state.
type Sequence struct {
	OID       uint32
	Schema    string
	Name      string
	Type      string
	Start     int64
	Increment int64
	Min, Max  int64
	Cycle     bool
	// The column that owns it (serial or identity), if any.
	OwnerSchema, OwnerTable, OwnerColumn string

	LastValue int64
	IsCalled  bool
}

// Ident is the quoted, schema-qualified name.
func (s *Sequence) Ident() string { return pgx.Identifier{s.Schema, s.Name}.Sanitize() }

// String is the name as a DBA reads it.
func (s *Sequence) String() string { return QuoteName(s.Schema) + "." + QuoteName(s.Name) }

// Owned reports whether a column owns the sequence.
func (s *Sequence) Owned() bool { return s.OwnerTable != "" }

// Next is the value nextval() would return now, and false when the sequence
// is exhausted (no cycle, at its bound).
func (s *Sequence) Next() (int64, bool) {
	if !s.IsCalled {
		return s.LastValue, true
	}
	n := s.LastValue + s.Increment
	if s.Increment > 0 && (n > s.Max || n < s.LastValue) || s.Increment < 0 && (n < s.Min || n > s.LastValue) {
		if !s.Cycle {
			return s.LastValue, false
		}
		if s.Increment > 0 {
			return s.Min, true
		}
		return s.Max, true
	}
	return n, true
}

// Sequences lists the user sequences of the connected database, without values.
func Sequences(ctx context.Context, c *cluster.Conn) ([]*Sequence, error) {
	rows, err := c.Query(ctx, query("sequences"))
	if err != nil {
		return nil, c.Wrap("list sequences", err)
	}
	seqs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Sequence, error) {
		s := &Sequence{}
		var oid int64
		err := r.Scan(&oid, &s.Schema, &s.Name, &s.Type, &s.Start, &s.Increment, &s.Min, &s.Max, &s.Cycle,
			&s.OwnerSchema, &s.OwnerTable, &s.OwnerColumn)
		s.OID = uint32(oid)
		return s, err
	})
	return seqs, c.Wrap("list sequences", err)
}

// ReadSequenceValues reads last_value and is_called of every sequence, a few
// hundred per query. (pg_sequences hides is_called, and its last_value is
// NULL for a sequence never used, so read the relations themselves.)
func ReadSequenceValues(ctx context.Context, q Querier, seqs []*Sequence) error {
	return UnionAll(ctx, q, len(seqs),
		func(i int) string { return "SELECT last_value::int8, is_called FROM " + seqs[i].Ident() },
		func(i int, vals []any) error {
			last, ok1 := vals[0].(int64)
			called, ok2 := vals[1].(bool)
			if !ok1 || !ok2 {
				return fmt.Errorf("sequence %s: unexpected values %v", seqs[i], vals)
			}
			seqs[i].LastValue, seqs[i].IsCalled = last, called
			return nil
		})
}

// UnionAll runs one small query per relation, n of them, a few hundred at a
// time as one UNION ALL statement: thousands of relations cost a handful of
// round trips. part(i) is the i-th query (it may return no row); row(i,
// vals) receives each row it returns, decoded.
func UnionAll(ctx context.Context, q Querier, n int, part func(i int) string, row func(i int, vals []any) error) error {
	const batch = 200
	for lo := 0; lo < n; lo += batch {
		var sb strings.Builder
		for i := lo; i < min(lo+batch, n); i++ {
			if i > lo {
				sb.WriteString(" UNION ALL ")
			}
			fmt.Fprintf(&sb, "SELECT %d::int8 AS pgmove_i, p.* FROM (%s) AS p", i, part(i))
		}
		rows, err := q.Query(ctx, sb.String())
		if err != nil {
			return err
		}
		for rows.Next() {
			vals, err := rows.Values()
			if err == nil {
				err = row(int(vals[0].(int64)), vals[1:])
			}
			if err != nil {
				rows.Close()
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// Querier is what ReadSequenceValues needs: a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}
