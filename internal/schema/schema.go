package schema

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
)

// Archive is a schema-only dump in pg_dump's custom format, with its table
// of contents.
type Archive struct {
	Path        string
	Entries     []Entry
	RestoreTool *Tool
}

// Entry is one line of `pg_restore --list`.
type Entry struct {
	ID         int
	CatalogOID uint32 // 0 for entries attached to another object (COMMENT, ACL, ...)
	ObjectOID  uint32
	Desc       string // TABLE, INDEX, FK CONSTRAINT, ...
	Rest       string // "<namespace> <tag> <owner>" as pg_restore prints it (unquoted, so ambiguous)
	Line       string
	section    string
}

// DumpOptions tune the schema dump.
type DumpOptions struct {
	Snapshot string // pg_dump --snapshot, to match a data copy
}

// Dump runs pg_dump --schema-only against the source into dir and reads the
// archive's table of contents. Owners and privileges are kept in the archive;
// Restore decides whether to apply them.
func Dump(ctx context.Context, dump, restore *Tool, src cluster.ChildConn, dir string, o DumpOptions) (*Archive, error) {
	path := filepath.Join(dir, "schema.dump")
	// pgmove's own copy ledger (a source that was once a target) is not
	// the application's.
	args := []string{"--schema-only", "--format=custom", "--no-publications", "--no-subscriptions",
		"--exclude-schema=" + catalog.LedgerSchema, "--file=" + path, "--dbname=" + src.Conninfo}
	if o.Snapshot != "" {
		args = append(args, "--snapshot="+o.Snapshot)
	}
	if err := run(ctx, dump.Path, args, src.Env); err != nil {
		return nil, fmt.Errorf("source: dump schema with %s: %w", filepath.Base(dump.Path), err)
	}
	a := &Archive{Path: path, RestoreTool: restore}
	out, err := exec.CommandContext(ctx, restore.Path, "--list", path).Output()
	if err != nil {
		return nil, fmt.Errorf("read the schema dump's contents: %w", childError(err))
	}
	a.Entries = ParseList(out)
	return a, nil
}

// descs are pg_dump's object descriptions, longest first so that
// "FK CONSTRAINT" wins over "CONSTRAINT"-like prefixes.
var descs = func() []string {
	d := []string{"ACCESS METHOD", "ACL", "AGGREGATE", "BLOB", "BLOB METADATA", "BLOBS", "CAST", "CHECK CONSTRAINT",
		"COLLATION", "COMMENT", "CONSTRAINT", "CONVERSION", "DATABASE", "DATABASE PROPERTIES", "DEFAULT", "DEFAULT ACL",
		"DOMAIN", "ENCODING", "EVENT TRIGGER", "EXTENSION", "FK CONSTRAINT", "FOREIGN DATA WRAPPER", "FOREIGN TABLE",
		"FUNCTION", "INDEX", "INDEX ATTACH", "LARGE OBJECT", "LARGE OBJECTS", "MATERIALIZED VIEW", "MATERIALIZED VIEW DATA",
		"OPERATOR", "OPERATOR CLASS", "OPERATOR FAMILY", "POLICY", "PROCEDURAL LANGUAGE", "PROCEDURE", "PUBLICATION",
		"PUBLICATION TABLE", "PUBLICATION TABLES IN SCHEMA", "ROW SECURITY", "RULE", "SCHEMA", "SEARCHPATH",
		"SECURITY LABEL", "SEQUENCE", "SEQUENCE OWNED BY", "SEQUENCE SET", "SERVER", "SHELL TYPE", "STATISTICS",
		"STATISTICS DATA", "STDSTRINGS", "SUBSCRIPTION", "SUBSCRIPTION TABLE", "TABLE", "TABLE ATTACH", "TABLE DATA",
		"TEXT SEARCH CONFIGURATION", "TEXT SEARCH DICTIONARY", "TEXT SEARCH PARSER", "TEXT SEARCH TEMPLATE",
		"TRANSFORM", "TRIGGER", "TYPE", "USER MAPPING", "VIEW"}
	sort.Slice(d, func(i, j int) bool { return len(d[i]) > len(d[j]) })
	return d
}()

// ParseList parses `pg_restore --list` output.
func ParseList(out []byte) []Entry {
	var entries []Entry
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, ";") {
			continue
		}
		semi := strings.Index(line, ";")
		if semi < 0 {
			continue
		}
		id, err := strconv.Atoi(strings.TrimSpace(line[:semi]))
		if err != nil {
			continue
		}
		fields := strings.SplitN(strings.TrimSpace(line[semi+1:]), " ", 3)
		if len(fields) < 3 {
			continue
		}
		cat, _ := strconv.ParseUint(fields[0], 10, 32)
		obj, _ := strconv.ParseUint(fields[1], 10, 32)
		e := Entry{ID: id, CatalogOID: uint32(cat), ObjectOID: uint32(obj), Line: line}
		rest := fields[2]
		for _, d := range descs {
			if rest == d || strings.HasPrefix(rest, d+" ") {
				e.Desc = d
				e.Rest = strings.TrimPrefix(strings.TrimPrefix(rest, d), " ")
				break
			}
		}
		entries = append(entries, e)
	}
	// An entry attached to an object (a comment, a grant, a security label)
	// comes right after it in the list and restores in its section: a
	// comment on a trigger must wait for the trigger.
	section := "pre-data"
	for i := range entries {
		e := &entries[i]
		switch {
		case e.Desc == "TABLE ATTACH":
			e.section = "pre-data"
		case e.Desc == "INDEX ATTACH":
			e.section = "post-data"
		case e.Desc == "SHELL TYPE":
			e.section = "pre-data"
		case e.CatalogOID == 0:
			e.section = section
		default:
			e.section = sectionOf(e.Desc)
			section = e.section
		}
	}
	return entries
}

// CreatesObject reports whether restoring the entry makes a new object, as
// opposed to attaching something to one (a comment, a grant, ownership of a
// sequence), which is harmless to run again.
func (e Entry) CreatesObject() bool {
	return e.CatalogOID != 0 || e.Desc == "TABLE ATTACH" || e.Desc == "INDEX ATTACH" || e.Desc == "SHELL TYPE"
}

// Section tells which part of the archive an entry restores in, as pg_dump
// splits it: pre-data (types, tables, functions...), data, post-data
// (indexes, constraints other than NOT NULL/CHECK, triggers, rules, policies...).
func (e Entry) Section() string {
	if e.section != "" {
		return e.section
	}
	return sectionOf(e.Desc)
}

// sectionOf is the section of an object of the given kind. CHECK
// CONSTRAINT entries are the NOT VALID checks pg_dump dumps apart from
// their table: they must come after the data they would reject.
func sectionOf(desc string) string {
	switch desc {
	case "INDEX", "INDEX ATTACH", "CONSTRAINT", "CHECK CONSTRAINT", "FK CONSTRAINT", "TRIGGER", "EVENT TRIGGER", "RULE", "POLICY",
		"DEFAULT ACL", "MATERIALIZED VIEW DATA", "PUBLICATION", "PUBLICATION TABLE", "SUBSCRIPTION", "STATISTICS", "STATISTICS DATA":
		return "post-data"
	case "TABLE DATA", "SEQUENCE SET", "BLOBS", "BLOB", "LARGE OBJECTS":
		return "data"
	}
	return "pre-data"
}

// RestoreOptions tune a restore.
type RestoreOptions struct {
	WithOwners bool             // restore object owners (the roles must exist on the target)
	WithACL    bool             // restore GRANT/REVOKE
	Skip       map[int]bool     // entry IDs to leave out
	Only       func(Entry) bool // if set, restore only entries it accepts
	// Jobs > 1 restores the post-data part in parallel (pg_restore --jobs):
	// index builds and foreign key checks of different tables at once. That
	// part cannot run in one transaction, so a failure there leaves what was
	// done (a *ParallelError); a rerun skips it. The pre-data part always
	// runs in the archive's order, in one transaction, as pg_restore --jobs
	// does it too: a table may inherit from, be typed by or use a type of an
	// object created just before it.
	Jobs int
	// Replace restores these tables (by pg_class OID) from the given SQL
	// instead of their archive entry: tables whose column order a plain
	// restore would not keep (see Reordered). Needs Target.
	Replace map[uint32]string
	Target  config.Endpoint // where Replace's script runs
	// TargetMajor is the target's major: a pg_restore newer than it
	// cannot run its statements there itself (needsScript).
	TargetMajor int
}

// ParallelError is a failure of the parallel (post-data) part of a
// restore: what was restored before it stays.
type ParallelError struct{ Err error }

func (e *ParallelError) Error() string { return e.Err.Error() }
func (e *ParallelError) Unwrap() error { return e.Err }

// Restore applies the archive to the target. With o.Jobs <= 1 it runs in
// one transaction: either all of it lands or none does. With o.Jobs > 1 the
// pre-data part lands in one transaction, in order, then the rest runs in
// parallel.
func (a *Archive) Restore(ctx context.Context, dst cluster.ChildConn, o RestoreOptions) (restored int, err error) {
	keep := func(e Entry) bool { return !o.Skip[e.ID] && (o.Only == nil || o.Only(e)) }
	pre := func(e Entry) bool { return keep(e) && e.Section() == "pre-data" }
	if o.Jobs <= 1 {
		if len(o.Replace) > 0 {
			return a.restoreScript(ctx, o, keep)
		}
		return a.runList(ctx, dst, o, keep, 1)
	}
	n, err := a.restorePreData(ctx, dst, o, pre)
	if err != nil {
		return 0, err
	}
	rest, err := a.restoreList(ctx, dst, o, func(e Entry) bool { return keep(e) && !pre(e) }, o.Jobs)
	if err != nil && o.Jobs > 1 {
		err = &ParallelError{err}
	}
	return n + rest, err
}

// restoreList runs pg_restore for the entries keep accepts: in one
// transaction, or with --jobs when jobs > 1. With --jobs, the stretch of
// the archive from its first INDEX ATTACH to its last runs in one session:
// two sessions attaching partitions of one partitioned index at once each
// miss the other's attachment, and the index is left invalid. The archive's
// order (dependencies first) is kept throughout.
func (a *Archive) restoreList(ctx context.Context, dst cluster.ChildConn, o RestoreOptions, keep func(Entry) bool, jobs int) (int, error) {
	if jobs <= 1 {
		return a.runList(ctx, dst, o, keep, 1)
	}
	first, last := -1, -1
	for i, e := range a.Entries {
		if e.Desc == "INDEX ATTACH" && keep(e) {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return a.runList(ctx, dst, o, keep, jobs)
	}
	index := map[int]int{}
	for i, e := range a.Entries {
		index[e.ID] = i
	}
	total := 0
	for _, ph := range []struct {
		from, to, jobs int
	}{{0, first, jobs}, {first, last + 1, 1}, {last + 1, len(a.Entries), jobs}} {
		n, err := a.runList(ctx, dst, o, func(e Entry) bool {
			i := index[e.ID]
			return i >= ph.from && i < ph.to && keep(e)
		}, ph.jobs)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// runList runs one pg_restore for the entries keep accepts.
func (a *Archive) runList(ctx context.Context, dst cluster.ChildConn, o RestoreOptions, keep func(Entry) bool, jobs int) (int, error) {
	if needsScript(a.RestoreTool.Major, o.TargetMajor) {
		// The script, in one transaction, without the settings it lacks.
		return a.restoreScript(ctx, o, keep)
	}
	list, n, err := a.writeList(keep)
	if err != nil {
		return 0, err
	}
	defer os.Remove(list)
	if n == 0 {
		return 0, nil
	}
	args := []string{"--exit-on-error", "--use-list=" + list, "--dbname=" + dst.Conninfo}
	if jobs > 1 {
		args = append(args, fmt.Sprintf("--jobs=%d", jobs))
	} else {
		args = append(args, "--single-transaction")
	}
	if !o.WithOwners {
		args = append(args, "--no-owner")
	}
	if !o.WithACL {
		args = append(args, "--no-acl")
	}
	args = append(args, a.Path)
	if err := run(ctx, a.RestoreTool.Path, args, dst.Env); err != nil {
		return 0, fmt.Errorf("target: restore schema: %w", err)
	}
	return n, nil
}

func (a *Archive) writeList(keep func(Entry) bool) (string, int, error) {
	f, err := os.CreateTemp(filepath.Dir(a.Path), "restore-*.list")
	if err != nil {
		return "", 0, fmt.Errorf("write restore list: %w", err)
	}
	defer f.Close()
	n := 0
	w := bufio.NewWriter(f)
	for _, e := range a.Entries {
		if keep(e) {
			n++
			fmt.Fprintln(w, e.Line)
		} else {
			fmt.Fprintln(w, ";"+e.Line)
		}
	}
	if err := w.Flush(); err != nil {
		return "", 0, fmt.Errorf("write restore list: %w", err)
	}
	return f.Name(), n, nil
}

func run(ctx context.Context, path string, args, env []string) error {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s", firstError(stderr.String(), err))
	}
	return nil
}

// firstError picks the line of a client program's stderr that says what went
// wrong, so the user sees one line instead of a page.
func firstError(stderr string, err error) string {
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	for i, l := range lines {
		if strings.Contains(l, "ERROR:") || strings.Contains(l, "error:") || strings.Contains(l, "FATAL:") {
			msg := l
			if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "Command was:") {
				msg += " (" + truncate(lines[i+1], 200) + ")"
			}
			return squeeze(msg)
		}
	}
	if len(lines) > 0 {
		return squeeze(lines[len(lines)-1])
	}
	return err.Error()
}

func squeeze(s string) string { return strings.Join(strings.Fields(s), " ") }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func childError(err error) error {
	if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
		return fmt.Errorf("%s", firstError(string(ee.Stderr), err))
	}
	return err
}
