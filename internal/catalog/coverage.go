package catalog

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/cluster"
)

// Gap is a table of the migration's selection (the source's tables that
// include/exclude select) that the migration does not carry: missing from
// the publication, from the subscription, or from the target. Its rows are
// not migrated, whatever the lag says.
type Gap struct {
	Table      QualifiedName
	Published  bool // in the source's publication
	Subscribed bool // in the target's subscription (pg_subscription_rel)
	OnTarget   bool // the table exists on the target
}

// Problem is the gap in one line: the table, what it means, and the fix.
func (g Gap) Problem() string {
	return "table " + g.Table.String() + " " + g.Message() + "; fix: " + g.Fix()
}

// Message says what the gap means for the table's rows.
func (g Gap) Message() string {
	switch {
	case !g.Published && !g.OnTarget:
		return "is in the migration's selection but neither in the publication nor on the target: its rows are not migrated (replication carries on without it)"
	case !g.Published:
		return "is in the migration's selection but not in the publication: its rows are not migrated (replication carries on without it)"
	case !g.OnTarget:
		return "is published but missing on the target: the apply stops at its first change"
	}
	return "is published but not in the subscription: its rows are not migrated"
}

// Fix names the commands that close the gap, in order: create the table on
// the target, add it to the publication, then refresh the subscription with
// a copy of its rows.
func (g Gap) Fix() string {
	var steps []string
	if !g.OnTarget {
		steps = append(steps, "pgmove copy-schema --force (creates it on the target)")
	}
	if !g.Published {
		steps = append(steps, "pgmove create-pub (adds it to the publication)")
	}
	steps = append(steps, "pgmove create-sub (refreshes the subscription with a copy of its rows)")
	return strings.Join(steps, ", then ")
}

// State is the gap as a table state in a progress report.
func (g Gap) State() string {
	switch {
	case !g.OnTarget:
		return "not on target"
	case !g.Published:
		return "not published"
	}
	return "not subscribed"
}

// Gaps lists the tables of selection the subscription does not carry, given
// the publication's and the subscription's tables; onTarget tells which of
// the others exist on the target.
func Gaps(selection []*Table, published, subscribed []QualifiedName, onTarget map[QualifiedName]bool) []Gap {
	pub, sub := set(published), set(subscribed)
	var out []Gap
	for _, t := range selection {
		q := QualifiedName{Schema: t.Schema, Name: t.Name}
		if sub[q] && pub[q] {
			continue
		}
		out = append(out, Gap{Table: q, Published: pub[q], Subscribed: sub[q], OnTarget: sub[q] || onTarget[q]})
	}
	return out
}

func set(qs []QualifiedName) map[QualifiedName]bool {
	m := make(map[QualifiedName]bool, len(qs))
	for _, q := range qs {
		m[q] = true
	}
	return m
}

// SubscriptionTables lists the tables a subscription has.
func SubscriptionTables(ctx context.Context, c *cluster.Conn, subOID uint32) ([]QualifiedName, error) {
	rows, err := c.Query(ctx, query("subscription_tables"), subOID)
	if err != nil {
		return nil, c.Wrap("read subscription tables", err)
	}
	names, err := pgx.CollectRows(rows, scanQualified)
	return names, c.Wrap("read subscription tables", err)
}

// ExistingTables tells which of the given tables exist (as tables) on c.
func ExistingTables(ctx context.Context, c *cluster.Conn, tables []QualifiedName) (map[QualifiedName]bool, error) {
	out := map[QualifiedName]bool{}
	if len(tables) == 0 {
		return out, nil
	}
	schemas, names := make([]string, len(tables)), make([]string, len(tables))
	for i, q := range tables {
		schemas[i], names[i] = q.Schema, q.Name
	}
	rows, err := c.Query(ctx, query("existing_tables"), schemas, names)
	if err != nil {
		return nil, c.Wrap("look up tables", err)
	}
	found, err := pgx.CollectRows(rows, scanQualified)
	if err != nil {
		return nil, c.Wrap("look up tables", err)
	}
	for _, q := range found {
		out[q] = true
	}
	return out, nil
}

// Coverage reads what Gaps needs from both servers: the publication's
// tables on the source, the subscription's and the existing tables on the
// target. subOID is the subscription's OID.
func Coverage(ctx context.Context, src, dst *cluster.Conn, selection []*Table, pub string, subOID uint32) ([]Gap, error) {
	published, err := PublicationTables(ctx, src, pub)
	if err != nil {
		return nil, err
	}
	subscribed, err := SubscriptionTables(ctx, dst, subOID)
	if err != nil {
		return nil, err
	}
	gaps := Gaps(selection, published, subscribed, nil)
	if len(gaps) == 0 {
		return nil, nil
	}
	var ask []QualifiedName
	for _, g := range gaps {
		ask = append(ask, g.Table)
	}
	have, err := ExistingTables(ctx, dst, ask)
	if err != nil {
		return nil, err
	}
	for i := range gaps {
		gaps[i].OnTarget = gaps[i].OnTarget || have[gaps[i].Table]
	}
	return gaps, nil
}

func scanQualified(r pgx.CollectableRow) (QualifiedName, error) {
	var q QualifiedName
	return q, r.Scan(&q.Schema, &q.Name)
}
