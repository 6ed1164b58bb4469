package check

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
)

// IdentityRow is one table of the seed's check-replica-identity report.
type IdentityRow struct {
	Table    *catalog.Table `json:"-"`
	Name     string         `json:"table"`
	Keys     string         `json:"keys"` // "primary key", "unique index x", "none"
	Bytes    int64          `json:"bytes"`
	Identity string         `json:"identity"` // default, nothing, full, index
	OK       bool           `json:"ok"`
	Fix      string         `json:"fix,omitempty"`
	// UsingIndex is the USING INDEX statement for a table without a
	// primary key that has a unique index able to serve, whatever its
	// identity now.
	UsingIndex string `json:"-"`
}

// fixFull reports whether the row's fix is REPLICA IDENTITY FULL (no
// unique index can serve).
func (r IdentityRow) fixFull() bool { return strings.Contains(r.Fix, " FULL;") }

var identityNames = map[byte]string{'d': "default", 'n': "nothing", 'f': "full", 'i': "index"}

// Identities reports, for every table that holds published rows (plain
// tables, partitions and their roots), whether UPDATE and DELETE can be
// replicated, and the statement that fixes those that cannot: USING INDEX
// on a unique, valid, immediate, non-partial index over NOT NULL columns when
// one exists, FULL otherwise.
func Identities(ctx context.Context, src *cluster.Conn, snap *catalog.Snapshot, published []*catalog.Table) ([]IdentityRow, error) {
	tables := append([]*catalog.Table{}, published...)
	seen := map[uint32]bool{}
	for _, t := range published {
		seen[t.OID] = true
	}
	for _, t := range snap.Leaves(published) {
		if !seen[t.OID] {
			tables = append(tables, t)
			seen[t.OID] = true
		}
	}
	var lacking []uint32
	for _, t := range tables {
		if !t.HasIdentity() || !t.HasPK {
			lacking = append(lacking, t.OID)
		}
	}
	cands, err := catalog.IdentityCandidates(ctx, src, lacking)
	if err != nil {
		return nil, err
	}
	rows := make([]IdentityRow, 0, len(tables))
	for _, t := range tables {
		row := IdentityRow{Table: t, Name: t.String(), Bytes: t.Bytes, Identity: identityNames[t.ReplIdent], OK: t.HasIdentity()}
		switch {
		case t.HasPK:
			row.Keys = "primary key"
		case len(cands[t.OID]) > 0:
			row.Keys = "unique index " + catalog.QuoteName(cands[t.OID][0].Index)
		default:
			row.Keys = "none"
		}
		if t.ReplIdent == 'i' {
			row.Identity = "index " + catalog.QuoteName(t.IdentIndex)
		}
		if !row.OK {
			row.Fix = IdentityFix(t, cands[t.OID])
		}
		if !t.HasPK && len(cands[t.OID]) > 0 {
			row.UsingIndex = IdentityFix(t, cands[t.OID])
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// IdentityFix is the statement that gives a table a replica identity.
func IdentityFix(t *catalog.Table, cands []catalog.IdentityCandidate) string {
	if len(cands) > 0 {
		return fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY USING INDEX %s;", t.Ident(), pgx.Identifier{cands[0].Index}.Sanitize())
	}
	return fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL;  -- %s; or better, add a primary key", t.Ident(), PrettyBytes(t.Bytes))
}

// FullCost explains what REPLICA IDENTITY FULL costs.
const FullCost = "FULL writes the whole old row to the source's WAL for every UPDATE and DELETE, and the target finds each changed row by a sequential scan unless it has a usable index (PostgreSQL 16+ uses a btree index)"

func (c *checker) replicaIdentity(ctx context.Context) error {
	if c.src == nil || c.snap == nil {
		return nil
	}
	rows, err := Identities(ctx, c.src, c.snap, c.r.Published)
	if err != nil {
		return err
	}
	// Tables that are, or would be, REPLICA IDENTITY FULL: the target
	// finds a changed row by comparing every column.
	var full []*catalog.Table
	for _, row := range rows {
		if row.Table.ReplIdent == 'f' && !row.Table.HasPK || row.fixFull() {
			full = append(full, row.Table)
		}
	}
	noEq, err := noEquality(ctx, c.src, full)
	if err != nil {
		return err
	}
	for _, row := range rows {
		t := row.Table
		cols := noEq[t.OID]
		switch {
		case !row.OK:
			msg := "no primary key and no usable replica identity: once published, UPDATE and DELETE on it fail on the source"
			if t.ReplIdent == 'n' {
				msg = "replica identity NOTHING: once published, UPDATE and DELETE on it fail on the source"
			}
			c.r.add(Error, "source", "replica_identity", t.String(), msg, row.Fix)
			if row.fixFull() {
				detail := "no unique index over NOT NULL columns can serve instead, so the fix is FULL: " + FullCost
				if len(cols) > 0 {
					detail = "no unique index over NOT NULL columns can serve instead, and FULL works for inserts only: " + fullBreaks(cols)
				}
				c.r.Findings[len(c.r.Findings)-1].Detail = detail
			}
		case t.ReplIdent == 'f' && !t.HasPK && len(cols) > 0:
			fix := row.UsingIndex
			if fix == "" {
				fix = "give it a primary key (or a unique index over NOT NULL columns and REPLICA IDENTITY USING INDEX)"
			}
			c.r.add(Warning, "source", "replica_identity_full", t.String(), "replica identity FULL: "+fullBreaks(cols)+"; a table that only gets INSERTs is fine", fix)
		case t.ReplIdent == 'f' && !t.HasPK:
			c.r.add(Info, "source", "replica_identity", t.String(), "replica identity FULL: "+FullCost, "")
		}
	}
	return nil
}

// fullBreaks says why REPLICA IDENTITY FULL fails with the given columns.
func fullBreaks(cols []string) string {
	return "the target finds an updated or deleted row by comparing every column, and " + strings.Join(cols, ", ") +
		" cannot be compared (no equality operator), so an UPDATE or DELETE replicated with a value there stops the subscription (\"could not identify an equality operator\" in the target's log)"
}

// noEquality returns, by table, the columns whose type has no equality
// operator that PostgreSQL's apply can use: json, xml, point, box, ... (a
// domain's base type and an array's element type count; a composite needs
// every field comparable). Generated columns are left out: the apply does
// not compare them. PostgreSQL itself answers, as it does for the apply:
// SELECT DISTINCT looks the operator up the same way and fails with 42883
// when there is none. One column of each type is asked; a type the probe
// cannot tell about (a privilege missing) is taken as comparable.
func noEquality(ctx context.Context, src *cluster.Conn, tables []*catalog.Table) (map[uint32][]string, error) {
	out := map[uint32][]string{}
	if len(tables) == 0 {
		return out, nil
	}
	var oids []uint32
	byOID := map[uint32]*catalog.Table{}
	for _, t := range tables {
		oids = append(oids, t.OID)
		byOID[t.OID] = t
	}
	gen := "a.attgenerated = ''"
	if src.VersionNum < 120000 {
		gen = "true"
	}
	rows, err := src.Query(ctx, `SELECT a.attrelid::int8, a.attname, a.atttypid::int8, pg_catalog.format_type(a.atttypid, NULL)
		FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped AND `+gen+`
		ORDER BY a.attrelid, a.attnum`, oids)
	if err != nil {
		return nil, src.Wrap("read columns", err)
	}
	type col struct {
		rel, typ    uint32
		name, shown string
	}
	var cols []col
	for rows.Next() {
		var rel, typ int64
		var c col
		if err := rows.Scan(&rel, &c.name, &typ, &c.shown); err != nil {
			return nil, src.Wrap("read columns", err)
		}
		c.rel, c.typ = uint32(rel), uint32(typ)
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, src.Wrap("read columns", err)
	}
	comparable := map[uint32]bool{}
	for _, c := range cols {
		ok, seen := comparable[c.typ]
		if !seen {
			if ok, err = hasEquality(ctx, src, byOID[c.rel], c.name); err != nil {
				return nil, err
			}
			comparable[c.typ] = ok
		}
		if !ok {
			out[c.rel] = append(out[c.rel], fmt.Sprintf("%s (%s)", catalog.QuoteName(c.name), c.shown))
		}
	}
	return out, nil
}

// hasEquality asks the server whether column col of t has the equality
// operator the apply needs. Only 42883 says no; any other error (no
// privilege on the table) leaves the answer unknown, taken as yes.
func hasEquality(ctx context.Context, src *cluster.Conn, t *catalog.Table, col string) (bool, error) {
	action := "probe equality of " + t.String() + "." + catalog.QuoteName(col)
	inTx := src.PgConn().TxStatus() != 'I'
	if inTx {
		if _, err := src.Exec(ctx, "SAVEPOINT pgmove_equality"); err != nil {
			return false, src.Wrap(action, err)
		}
	}
	_, err := src.Exec(ctx, "EXPLAIN SELECT DISTINCT "+pgx.Identifier{col}.Sanitize()+" FROM ONLY "+t.Ident())
	var pgErr *pgconn.PgError
	no := errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UndefinedFunction
	if inTx {
		if _, rerr := src.Exec(ctx, "ROLLBACK TO SAVEPOINT pgmove_equality"); rerr != nil {
			return false, src.Wrap(action, rerr)
		}
	}
	if err != nil && !no {
		if !src.PgConn().IsClosed() && pgErr != nil {
			slog.Debug("source: cannot tell whether a column's type has equality", "table", t.String(), "column", col, "error", err)
			return true, nil
		}
		return false, src.Wrap(action, err)
	}
	return !no, nil
}

// PrettyBytes formats a size like pg_size_pretty.
func PrettyBytes(n int64) string {
	const unit = 1024
	if n < 10*unit {
		return fmt.Sprintf("%d bytes", n)
	}
	f := float64(n)
	for _, u := range []string{"kB", "MB", "GB", "TB"} {
		f /= unit
		if f < 10*unit || u == "TB" {
			return fmt.Sprintf("%.0f %s", f, u)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}

// FullWithoutEquality names the tables among published that are REPLICA
// IDENTITY FULL without a primary key and have a column the apply cannot
// compare: a replicated UPDATE or DELETE there stops the subscription. Each
// entry is one line with the fix, for a report that explains a stalled apply.
func FullWithoutEquality(ctx context.Context, src *cluster.Conn, snap *catalog.Snapshot, published []*catalog.Table) ([]string, error) {
	var full []*catalog.Table
	for _, t := range published {
		if t.ReplIdent == 'f' && !t.HasPK {
			full = append(full, t)
		}
	}
	noEq, err := noEquality(ctx, src, full)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range full {
		if cols := noEq[t.OID]; len(cols) > 0 {
			out = append(out, fmt.Sprintf("table %s is REPLICA IDENTITY FULL and %s cannot be compared: a replicated UPDATE or DELETE on it stops the apply (\"could not identify an equality operator\"); fix: give it a primary key, or a unique index over NOT NULL columns and ALTER TABLE %s REPLICA IDENTITY USING INDEX ...",
				t.String(), strings.Join(cols, ", "), t.Ident()))
		}
	}
	return out, nil
}
