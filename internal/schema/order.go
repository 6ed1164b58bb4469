package schema

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/cluster"
)

//go:embed sql/inheritance_children.sql
var inheritanceChildrenSQL string

//go:embed sql/columns.sql
var columnsSQL string

// Reordered lists the tables among oids whose column order a plain restore
// would not keep: an inheritance child gets its parents' columns first,
// then its own, so a child whose parent gained a column after the child
// existed (source b_star: class, aa, bb, a) comes back in another order
// (class, aa, a, bb). Replication maps columns by name, but SELECT * and
// INSERT without a column list would change meaning after the switch.
func Reordered(ctx context.Context, src *cluster.Conn, oids []uint32) ([]Relation, error) {
	if len(oids) == 0 {
		return nil, nil
	}
	rows, err := src.Query(ctx, inheritanceChildrenSQL, oids)
	if err != nil {
		return nil, src.Wrap("list inheritance children", err)
	}
	parents := map[uint32][]uint32{}
	var children []Relation
	rel := map[uint32]bool{}
	for rows.Next() {
		var child int64
		var ps []int64
		var r Relation
		if err := rows.Scan(&child, &r.Schema, &r.Name, &ps); err != nil {
			rows.Close()
			return nil, src.Wrap("list inheritance children", err)
		}
		r.OID = uint32(child)
		children = append(children, r)
		rel[uint32(child)] = true
		for _, p := range ps {
			parents[uint32(child)] = append(parents[uint32(child)], uint32(p))
			rel[uint32(p)] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, src.Wrap("list inheritance children", err)
	}
	if len(children) == 0 {
		return nil, nil
	}
	var rels []uint32
	for r := range rel {
		rels = append(rels, r)
	}
	rows, err = src.Query(ctx, columnsSQL, rels)
	if err != nil {
		return nil, src.Wrap("list columns", err)
	}
	cols := map[uint32][]column{}
	for rows.Next() {
		var r int64
		var c column
		if err := rows.Scan(&r, &c.name, &c.inherited); err != nil {
			rows.Close()
			return nil, src.Wrap("list columns", err)
		}
		cols[uint32(r)] = append(cols[uint32(r)], c)
	}
	if err := rows.Err(); err != nil {
		return nil, src.Wrap("list columns", err)
	}
	var out []Relation
	for _, c := range children {
		if !sameOrder(names(cols[c.OID]), plainOrder(cols[c.OID], parents[c.OID], cols)) {
			out = append(out, c)
		}
	}
	return out, nil
}

// Relation names a table of the source.
type Relation struct {
	OID          uint32
	Schema, Name string
}

func (r Relation) String() string { return r.Schema + "." + r.Name }

// pattern is the relation as a pg_dump --table pattern: quoted, so that
// no character of the name is a wildcard.
func (r Relation) pattern() string {
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	return q(r.Schema) + "." + q(r.Name)
}

type column struct {
	name      string
	inherited int32 // attinhcount
}

func names(cs []column) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.name
	}
	return out
}

// plainOrder is the column order CREATE TABLE child (...) INHERITS
// (parents) gives: each parent's columns in turn (a name seen before merges
// into its first place), then the child's own columns in attnum order. The
// parents are taken in the source's order, which the restore keeps.
func plainOrder(child []column, parents []uint32, cols map[uint32][]column) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range parents {
		for _, c := range cols[p] {
			if !seen[c.name] {
				seen[c.name] = true
				out = append(out, c.name)
			}
		}
	}
	for _, c := range child {
		if c.inherited == 0 && !seen[c.name] {
			seen[c.name] = true
			out = append(out, c.name)
		}
	}
	return out
}

func sameOrder(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// OrderedTables returns, for each table of oids, the SQL that creates it
// with the source's column order, as pg_dump --binary-upgrade writes it:
// every column in attnum order (dropped ones recreated and dropped again,
// so the column numbers match too), the inherited columns and CHECK
// constraints marked as such in the catalogue (attislocal, conislocal;
// this needs a superuser on the target), then ALTER TABLE ... INHERIT each
// parent in order. Binary upgrade's OID, relfilenode, missing-value and
// relfrozenxid settings are left out: they only make sense inside
// pg_upgrade.
func OrderedTables(ctx context.Context, dump, restore *Tool, src cluster.ChildConn, dir string, tables []Relation, o DumpOptions, ro RestoreOptions) (map[uint32]string, error) {
	path := filepath.Join(dir, "ordered.dump")
	args := []string{"--schema-only", "--binary-upgrade", "--format=custom", "--file=" + path, "--dbname=" + src.Conninfo}
	if o.Snapshot != "" {
		args = append(args, "--snapshot="+o.Snapshot)
	}
	for _, t := range tables {
		args = append(args, "--table="+t.pattern())
	}
	if err := run(ctx, dump.Path, args, src.Env); err != nil {
		return nil, fmt.Errorf("source: dump inheritance children with %s --binary-upgrade: %w", filepath.Base(dump.Path), err)
	}
	defer os.Remove(path)
	out, err := exec.CommandContext(ctx, restore.Path, "--list", path).Output()
	if err != nil {
		return nil, fmt.Errorf("read the children's dump: %w", childError(err))
	}
	want := map[uint32]bool{}
	for _, t := range tables {
		want[t.OID] = true
	}
	a := &Archive{Path: path, Entries: ParseList(out), RestoreTool: restore}
	script, err := a.script(ctx, ro, func(e Entry) bool { return e.Desc == "TABLE" && want[e.ObjectOID] })
	if err != nil {
		return nil, err
	}
	sqls := map[uint32]string{}
	split, err := splitScript(script)
	if err != nil {
		return nil, err
	}
	for _, c := range split {
		if c.class == 1259 && want[c.oid] {
			sqls[c.oid] = withoutBinaryUpgrade(c.text)
		}
	}
	for _, t := range tables {
		if sqls[t.OID] == "" {
			return nil, fmt.Errorf("source: pg_dump --binary-upgrade wrote nothing for %s", t)
		}
	}
	return sqls, nil
}

// withoutBinaryUpgrade drops the statements of a binary-upgrade dump that
// only pg_upgrade may run: the binary_upgrade_* calls (OIDs, relfilenodes,
// missing values: the table is empty) and the relfrozenxid/relminmxid
// updates, which hold the source's transaction IDs and would be wrong, even
// dangerous, on another cluster.
func withoutBinaryUpgrade(s string) string {
	lines := strings.SplitAfter(s, "\n")
	var b strings.Builder
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		t := strings.TrimSpace(l)
		drop := strings.HasPrefix(t, "SELECT pg_catalog.binary_upgrade_") ||
			(t == "UPDATE pg_catalog.pg_class" && i+1 < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i+1]), "SET relfrozenxid"))
		if !drop {
			b.WriteString(l)
			continue
		}
		for ; i < len(lines) && !strings.HasSuffix(strings.TrimSpace(lines[i]), ";"); i++ {
		}
	}
	return b.String()
}

// chunk is one archive entry of a pg_restore script.
type chunk struct {
	id         int
	deps       []int // the entries it depends on, as pg_dump recorded them
	class, oid uint32
	name       string // "b_star; Type: TABLE; Schema: public", for errors
	text       string
}

// splitScript cuts a pg_restore --verbose script at its "-- TOC entry"
// headers. The text before the first entry (the session's SET commands)
// is a chunk with id 0.
func splitScript(s []byte) ([]chunk, error) {
	var out []chunk
	cur := chunk{}
	var b strings.Builder
	flush := func() {
		cur.text = b.String()
		out = append(out, cur)
		b.Reset()
	}
	for _, l := range bytes.SplitAfter(s, []byte("\n")) {
		line := string(l)
		if strings.HasPrefix(line, "-- TOC entry ") {
			flush()
			cur = chunk{}
			var class, oid uint64
			f := strings.Fields(strings.NewReplacer("(", " ", ")", " ").Replace(line))
			// -- TOC entry 215 (class 1259 OID 16388)
			if len(f) >= 8 {
				cur.id, _ = strconv.Atoi(f[3])
				class, _ = strconv.ParseUint(f[5], 10, 32)
				oid, _ = strconv.ParseUint(f[7], 10, 32)
			}
			cur.class, cur.oid = uint32(class), uint32(oid)
		}
		if d, ok := strings.CutPrefix(line, "-- Dependencies: "); ok && cur.id != 0 && cur.deps == nil {
			for _, f := range strings.Fields(d) {
				if n, err := strconv.Atoi(f); err == nil {
					cur.deps = append(cur.deps, n)
				}
			}
		}
		if strings.HasPrefix(line, "-- Name: ") && cur.name == "" {
			cur.name = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(line), "-- Name: "), "; Owner: -")
			if i := strings.Index(cur.name, "; Owner: "); i >= 0 {
				cur.name = cur.name[:i]
			}
		}
		// psql meta-commands: pg_dump 15.14+ writes \restrict and
		// \unrestrict around a script, for psql only; any other cannot
		// run as SQL.
		if strings.HasPrefix(line, `\`) {
			if strings.HasPrefix(line, `\restrict `) || strings.HasPrefix(line, `\unrestrict `) {
				continue
			}
			return nil, fmt.Errorf("pg_restore's script holds the psql command %q, which pgmove cannot run", truncate(strings.TrimSpace(line), 60))
		}
		b.WriteString(line)
	}
	flush()
	return out, nil
}

// script writes the SQL pg_restore would run for the entries keep accepts.
func (a *Archive) script(ctx context.Context, o RestoreOptions, keep func(Entry) bool) ([]byte, error) {
	list, _, err := a.writeList(keep)
	if err != nil {
		return nil, err
	}
	defer os.Remove(list)
	args := []string{"--verbose", "--file=-", "--use-list=" + list}
	if !o.WithOwners {
		args = append(args, "--no-owner")
	}
	if !o.WithACL {
		args = append(args, "--no-acl")
	}
	args = append(args, a.Path)
	cmd := exec.CommandContext(ctx, a.RestoreTool.Path, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("write the schema script with pg_restore: %s", firstError(stderr.String(), err))
	}
	return out, nil
}

// restoreScript restores the entries keep accepts in the archive's order, in
// one target transaction, with the tables of o.Replace created from their
// replacement SQL instead of their entry.
func (a *Archive) restoreScript(ctx context.Context, o RestoreOptions, keep func(Entry) bool) (int, error) {
	n := 0
	for _, e := range a.Entries {
		if keep(e) {
			n++
		}
	}
	if n == 0 {
		return 0, nil
	}
	chunks, err := a.chunks(ctx, o, keep)
	if err != nil {
		return 0, err
	}
	conn, err := cluster.Connect(ctx, o.Target, "copy-schema")
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	err = pgx.BeginFunc(ctx, conn.Conn, func(tx pgx.Tx) error {
		if err := execChunks(ctx, tx, sessionSettings(conn, chunks[0])); err != nil {
			return err
		}
		return execChunks(ctx, tx, chunks[1:])
	})
	if err != nil {
		return 0, restoreError(ctx, err)
	}
	slog.Debug("target: schema restored in one transaction with the source's column order", "tables", len(o.Replace))
	return n, nil
}

// chunks is the script pg_restore writes for the entries keep accepts, cut
// into entries (the first is the session's settings), with the tables of
// o.Replace made from their replacement SQL.
func (a *Archive) chunks(ctx context.Context, o RestoreOptions, keep func(Entry) bool) ([]chunk, error) {
	script, err := a.script(ctx, o, keep)
	if err != nil {
		return nil, err
	}
	chunks, err := splitScript(script)
	if err != nil {
		return nil, fmt.Errorf("target: restore schema: %w", err)
	}
	for i := range chunks {
		if c := &chunks[i]; c.class == 1259 {
			if sql, ok := o.Replace[c.oid]; ok {
				c.text = sql
			}
		}
	}
	return chunks, nil
}

// sessionSettings is the script's session settings for this server.
func sessionSettings(conn *cluster.Conn, c chunk) []chunk {
	if conn.VersionNum < 170000 {
		// pg_restore 17+ sets transaction_timeout, which older servers lack.
		c.text = strings.ReplaceAll(c.text, "SET transaction_timeout = 0;\n", "")
	}
	return []chunk{c}
}

// execChunks runs script entries in order, naming the one that fails.
func execChunks(ctx context.Context, tx pgx.Tx, chunks []chunk) error {
	for _, c := range chunks {
		if strings.TrimSpace(stripComments(c.text)) == "" {
			continue
		}
		if _, err := tx.Exec(ctx, c.text); err != nil {
			if c.name != "" {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			return err
		}
	}
	return nil
}

func restoreError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("target: restore schema: %s", squeeze(err.Error()))
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
