package copy

import (
	"context"
	"embed"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
)

// The copy ledger is pgmove's proof, kept on the target itself, of which
// rows it loaded there: a row per copy (migration, slot, and the system
// identifier and database OID of both sides) in pgmove.copy, and a row per
// load transaction (target relation, the transaction's xid, rows) in
// pgmove.load, written in the load's own transaction, so a load rolled
// back leaves no entry. pgmove empties a table only when every row in it
// has the xmin of one of its recorded loads: rows anyone else wrote, and
// tables of another database with the same names, are never touched.

//go:embed sql/*.sql
var sqlFiles embed.FS

func query(name string) string {
	b, err := sqlFiles.ReadFile("sql/" + name + ".sql")
	if err != nil {
		panic("copy: missing embedded query " + name)
	}
	return string(b)
}

// LedgerSchema is the target schema pgmove keeps its copy ledger in. Every
// listing, comparison, dump and publication leaves it out.
const LedgerSchema = catalog.LedgerSchema

// Ledger is one copy's entry in the target's ledger.
type Ledger struct {
	CopyID    int64
	Migration string
	ids       [4]int64 // source system id, database OID; target's
}

// OpenLedger creates the ledger on the target if needed and records a new
// copy of migration (the subscription's name) into slot between src and
// dst.
func OpenLedger(ctx context.Context, src, dst *cluster.Conn, migration, slot string) (*Ledger, error) {
	l := &Ledger{Migration: migration, ids: identities(src, dst)}
	if _, err := dst.Exec(ctx, query("ledger_create")); err != nil {
		return nil, dst.Wrap("create the copy ledger (schema "+LedgerSchema+")", err)
	}
	if err := dst.QueryRow(ctx, query("ledger_open"), migration, slot, l.ids[0], l.ids[1], l.ids[2], l.ids[3]).Scan(&l.CopyID); err != nil {
		return nil, dst.Wrap("record the copy in the ledger", err)
	}
	return l, nil
}

func identities(src, dst *cluster.Conn) [4]int64 {
	return [4]int64{src.SystemID, int64(src.DBOID), dst.SystemID, int64(dst.DBOID)}
}

// epilogue is what ends a load transaction: its entry in the ledger, then
// COMMIT, sent as one query so that it costs no round trip of its own.
// Without a ledger, COMMIT alone.
func (l *Ledger) epilogue(t *Table, rows int64) string {
	if l == nil || t.dst == nil {
		return "COMMIT"
	}
	return fmt.Sprintf("INSERT INTO pgmove.load (copy_id, relid, relname, xid, rows) VALUES (%d, %d, %s, pg_catalog.txid_current() %% 4294967296, %d); COMMIT",
		l.CopyID, t.dst.OID, quoteLiteral(t.Target.String()), rows)
}

// guardSQL counts the rows of target relation d that no load of this
// migration wrote, and all its rows. With a ledger it takes $1 the
// relation's OID, $2 the migration, $3-$6 the identities.
func guardSQL(d *catalog.Table, ledger bool) string {
	name := "ledger_count"
	if ledger {
		name = "ledger_guard"
	}
	return strings.ReplaceAll(query(name), "{{table}}", only(d)+d.Ident())
}

// only is what limits a statement to the relation itself: a partitioned
// table's rows are in its partitions, which it cannot be separated from;
// a plain table's inheritance children are not its own.
func only(d *catalog.Table) string {
	if d.Kind == 'p' {
		return ""
	}
	return "ONLY "
}

func (l *Ledger) guardArgs(d *catalog.Table) []any {
	return []any{d.OID, l.Migration, l.ids[0], l.ids[1], l.ids[2], l.ids[3]}
}

// guardParams are guardArgs in text form, for pgconn.
func (l *Ledger) guardParams(d *catalog.Table) [][]byte {
	var out [][]byte
	for _, a := range l.guardArgs(d) {
		out = append(out, []byte(fmt.Sprint(a)))
	}
	return out
}

// ForeignRowsError is a table that holds rows pgmove cannot prove it
// loaded: pgmove stops rather than empty it.
type ForeignRowsError struct {
	Tables []string // "public.t (N rows pgmove did not load)"
}

func (e *ForeignRowsError) Error() string {
	return fmt.Sprintf("target: %s; pgmove empties only tables it loaded itself in this migration: empty them yourself if those rows can go, or point --dst at an empty database",
		cluster.ListSome(e.Tables, 5))
}

func foreignRows(d *catalog.Table, n, total int64) string {
	return fmt.Sprintf("%s holds %d row(s) pgmove did not load (of %d)", d, n, total)
}

// guardTable opens a transaction on conn, locks the target relation of t
// and checks that every row it holds was loaded by this migration.
// It reports whether the table holds rows at all.
func (l *Ledger) guardTable(ctx context.Context, conn *pgconn.PgConn, t *Table) (bool, error) {
	d := t.dst
	if _, err := conn.Exec(ctx, "BEGIN; LOCK TABLE "+only(d)+d.Ident()+" IN ACCESS EXCLUSIVE MODE").ReadAll(); err != nil {
		return false, cluster.Wrap(config.Target, "lock "+t.Target.String(), err)
	}
	var rr *pgconn.ResultReader
	if l == nil {
		rr = conn.ExecParams(ctx, guardSQL(d, false), nil, nil, nil, nil)
	} else {
		rr = conn.ExecParams(ctx, guardSQL(d, true), l.guardParams(d), nil, nil, nil)
	}
	res := rr.Read()
	if res.Err != nil {
		return false, cluster.Wrap(config.Target, "look for rows pgmove did not load in "+t.Target.String(), res.Err)
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 2 {
		return false, fmt.Errorf("target: look for rows pgmove did not load in %s: unexpected answer", t.Target)
	}
	foreign, _ := strconv.ParseInt(string(res.Rows[0][0]), 10, 64)
	total, _ := strconv.ParseInt(string(res.Rows[0][1]), 10, 64)
	if foreign > 0 {
		return true, permanent{&ForeignRowsError{Tables: []string{foreignRows(d, foreign, total)}}}
	}
	return total > 0, nil
}

// ledgerExists reports whether the target has a copy ledger.
func ledgerExists(ctx context.Context, dst *cluster.Conn) (bool, error) {
	var ok bool
	if err := dst.QueryRow(ctx, query("ledger_exists")).Scan(&ok); err != nil {
		return false, dst.Wrap("look for the copy ledger", err)
	}
	return ok, nil
}

// EmptyProven empties the target relations that hold rows, provided the
// ledger proves every one of those rows was loaded by this migration
// (migration, between src and dst): in one transaction, each relation
// locked in ACCESS EXCLUSIVE mode, checked, then truncated. A relation
// holding any other row stops it all, nothing emptied, with a
// ForeignRowsError naming them. It returns the relations it emptied.
func EmptyProven(ctx context.Context, src, dst *cluster.Conn, migration string, tables []*catalog.Table) ([]string, error) {
	// Only relations with pages can hold rows: an empty one is neither
	// locked nor truncated (thousands of locks would not fit in the lock
	// table, and a TRUNCATE costs a new file).
	var oids []uint32
	byOID := map[uint32]*catalog.Table{}
	for _, d := range tables {
		oids = append(oids, d.OID)
		byOID[d.OID] = d
	}
	if len(oids) == 0 {
		return nil, nil
	}
	rows, err := dst.Query(ctx, `SELECT c.oid FROM pg_catalog.pg_class c WHERE c.oid = ANY($1::oid[])
		AND (c.relkind = 'p' OR pg_catalog.pg_relation_size(c.oid) > 0)`, oids)
	if err != nil {
		return nil, dst.Wrap("look for rows in the tables to copy", err)
	}
	sized, err := pgx.CollectRows(rows, pgx.RowTo[uint32])
	if err != nil {
		return nil, dst.Wrap("look for rows in the tables to copy", err)
	}
	if len(sized) == 0 {
		return nil, nil
	}
	hasLedger, err := ledgerExists(ctx, dst)
	if err != nil {
		return nil, err
	}
	l := &Ledger{Migration: migration, ids: identities(src, dst)}
	var emptied []string
	err = pgx.BeginFunc(ctx, dst.Conn, func(tx pgx.Tx) error {
		var cand []*catalog.Table
		var locks []string
		for _, oid := range sized {
			d := byOID[oid]
			cand = append(cand, d)
			locks = append(locks, only(d)+d.Ident())
		}
		if _, err := tx.Exec(ctx, "LOCK TABLE "+strings.Join(locks, ", ")+" IN ACCESS EXCLUSIVE MODE"); err != nil {
			return dst.Wrap("lock the tables to copy", err)
		}
		b := &pgx.Batch{}
		for _, d := range cand {
			if hasLedger {
				b.Queue(guardSQL(d, true), l.guardArgs(d)...)
			} else {
				b.Queue(guardSQL(d, false))
			}
		}
		br := tx.SendBatch(ctx, b)
		var foreign []string
		var full []*catalog.Table
		for _, d := range cand {
			var n, total int64
			if err := br.QueryRow().Scan(&n, &total); err != nil {
				br.Close()
				return dst.Wrap("look for rows pgmove did not load in "+d.String(), err)
			}
			if n > 0 {
				foreign = append(foreign, foreignRows(d, n, total))
			} else if total > 0 {
				full = append(full, d)
			}
		}
		if err := br.Close(); err != nil {
			return dst.Wrap("look for rows pgmove did not load", err)
		}
		if len(foreign) > 0 {
			return &ForeignRowsError{Tables: foreign}
		}
		if len(full) == 0 {
			return nil
		}
		var ids []string
		for _, d := range full {
			ids = append(ids, only(d)+d.Ident())
			emptied = append(emptied, d.String())
		}
		sql := "TRUNCATE " + strings.Join(ids, ", ")
		slog.Info(fmt.Sprintf("target: empty the %d table(s) an earlier copy of this migration loaded (the ledger proves every row)", len(ids)), "sql", sql)
		if _, err := tx.Exec(ctx, sql); err != nil {
			return dst.Wrap(fmt.Sprintf("empty the %d table(s) an earlier copy loaded", len(ids)), err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return emptied, nil
}

// DropLedger drops the ledger schema once the migration is over.
func DropLedger(ctx context.Context, r cluster.Runner, dst *cluster.Conn) (bool, error) {
	ok, err := ledgerExists(ctx, dst)
	if err != nil {
		return false, err
	}
	if ok {
		if err := r.Exec(ctx, dst, "drop the copy ledger", "DROP TABLE IF EXISTS pgmove.load, pgmove.copy"); err != nil {
			return false, err
		}
	} else {
		// A cleanup killed between the two statements left the schema
		// without its tables: drop it all the same.
		var left bool
		if err := dst.QueryRow(ctx, query("ledger_schema_exists")).Scan(&left); err != nil {
			return false, dst.Wrap("look for the copy ledger's schema", err)
		}
		if !left {
			return false, nil
		}
	}
	// The schema goes too, unless something else was put in it.
	if err := r.Exec(ctx, dst, "drop the copy ledger's schema", "DROP SCHEMA IF EXISTS "+pgx.Identifier{LedgerSchema}.Sanitize()); err != nil {
		if cluster.SQLState(err) != pgerrcode.DependentObjectsStillExist {
			return true, err
		}
		slog.Warn("target: schema " + LedgerSchema + " holds objects pgmove did not make; left in place")
	}
	return true, nil
}

// LoadedTable is a target table the ledger proves pgmove loaded.
type LoadedTable struct {
	OID    uint32
	Name   catalog.QualifiedName
	Parted bool // a partitioned table: emptied with its partitions
}

// LoadedTables lists the target relations the ledger proves this
// migration's copies between the two databases (srcSys/srcDB, and dst's)
// loaded and that still exist; none without a ledger.
func LoadedTables(ctx context.Context, dst *cluster.Conn, migration string, srcSys int64, srcDB uint32) ([]LoadedTable, error) {
	ok, err := ledgerExists(ctx, dst)
	if err != nil || !ok {
		return nil, err
	}
	rows, err := dst.Query(ctx, query("ledger_tables"), migration, srcSys, srcDB, dst.SystemID, dst.DBOID)
	if err != nil {
		return nil, dst.Wrap("read the copy ledger", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LoadedTable, error) {
		var t LoadedTable
		var oid int64
		var kind string
		err := r.Scan(&oid, &t.Name.Schema, &t.Name.Name, &kind)
		t.OID, t.Parted = uint32(oid), kind == "p"
		return t, err
	})
	return out, dst.Wrap("read the copy ledger", err)
}

// EmptyLoadedSQL is the statement that empties tables LoadedTables named.
func EmptyLoadedSQL(tables []LoadedTable) string {
	var ids []string
	for _, t := range tables {
		id := pgx.Identifier{t.Name.Schema, t.Name.Name}.Sanitize()
		if !t.Parted {
			id = "ONLY " + id
		}
		ids = append(ids, id)
	}
	return "TRUNCATE " + strings.Join(ids, ", ")
}
