package copy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
)

// Options tune the copy.
type Options struct {
	Jobs        int   // parallel COPY streams (and index builds)
	SplitLarger int64 // tables larger than this are copied in ranges; 0 never
	// Freeze loads tables of freezeFrom or more, copied whole by one
	// stream, with TRUNCATE + COPY FREEZE. The rows land frozen with their
	// hint bits set, so the index builds' scans do not dirty (and write
	// out) every page again, and no anti-wraparound
	// vacuum has to rewrite the table later. Measured on a 2-core machine
	// (pgbench scale 100, PostgreSQL 17): the load as fast as a plain COPY,
	// the primary key's build 25-30% faster.
	Freeze bool
	Status *Status // progress, shared with pgmove progress through a file
	// Replace empties each target table in the loading transaction: for
	// tables copied again (unlogged tables at the switch).
	Replace bool
	// Inline holds, per table, the index builds run as soon as a worker
	// has loaded the table, on index sessions beside the copy workers (see
	// InlineBuilds).
	Inline map[*Table]Inline
	// InlineBuilt counts the index builds done that way; InlineDone gets
	// the source OID of each table whose batch went through.
	InlineBuilt *atomic.Int64
	InlineDone  *sync.Map
	// Ledger records each load on the target, in the load's transaction,
	// and proves which rows a TRUNCATE may remove (see OpenLedger). Nil:
	// no record, and a table is emptied only when it holds no row at all.
	Ledger *Ledger
}

// DefaultSplitLarger is --split-larger-than's default: up to it a table is
// loaded by one stream (with COPY FREEZE from freezeFrom); above it by --jobs sessions, whose
// faster load outweighs the slower index builds of rows that are neither
// frozen nor in order. Measured on two cores (pgbench scale 100, four bench
// runs in ABBA order): 12.5-12.9 s with 1 GB against 14.3-14.4 s with 4 GB.
const DefaultSplitLarger = 1 << 30

// freezeFrom is the size from which a table loaded whole is loaded with
// TRUNCATE + COPY FREEZE. Below it the gain is nil and the TRUNCATE (a new
// file for the table) costs some 2.5 ms: seconds over thousands of tables.
const freezeFrom = 64 << 20

// worker holds one source session inside the snapshot and one target
// session tuned for bulk load.
type worker struct {
	m        *config.Migration
	snapshot string
	src      *pgconn.PgConn
	dst      *pgconn.PgConn
	inline   *inlineBuilder // builds a loaded small table's indexes; nil: none
}

// sessionDst tunes a target session for loading: no synchronous commit, no
// user or FK triggers (session_replication_role = replica, when allowed).
func openTarget(ctx context.Context, m *config.Migration, app string) (*pgconn.PgConn, error) {
	cfg, err := cluster.Config(m.Dst, app)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["synchronous_commit"] = "off"
	conn, err := pgconn.ConnectConfig(ctx, &cfg.Config)
	if err != nil {
		return nil, cluster.ExplainConnect(m.Dst, cfg.User, err)
	}
	// Superusers (and, from 15, roles granted SET on it) may stop triggers
	// and FK checks during the load; others load with them on.
	if err := conn.Exec(ctx, "SET session_replication_role = replica").Close(); err != nil {
		slog.Debug("target: session_replication_role = replica refused; triggers stay on during the load", "err", err)
	}
	return conn, nil
}

// openSource opens a source session and imports the snapshot.
func openSource(ctx context.Context, m *config.Migration, snapshot string) (*pgconn.PgConn, error) {
	cfg, err := cluster.Config(m.Src, "copy")
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["DateStyle"] = "ISO, YMD"
	cfg.RuntimeParams["extra_float_digits"] = "3"
	conn, err := pgconn.ConnectConfig(ctx, &cfg.Config)
	if err != nil {
		return nil, cluster.ExplainConnect(m.Src, cfg.User, err)
	}
	sql := "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
	if snapshot != "" {
		sql += "; SET TRANSACTION SNAPSHOT " + quoteLiteral(snapshot)
	}
	if err := conn.Exec(ctx, sql).Close(); err != nil {
		conn.Close(context.Background())
		return nil, cluster.Wrap(config.Source, "import the copy's snapshot", err)
	}
	return conn, nil
}

// Replace copies the given source tables again into the target, each in
// one transaction that empties the target table first. Without a shared
// snapshot: for use once writes on the source have stopped.
func Replace(ctx context.Context, m *config.Migration, src, dst *cluster.Conn, ssnap, dsnap *catalog.Snapshot, tables []*catalog.Table, jobs int) (int64, error) {
	plan, err := Plan(ctx, src, dst, ssnap, dsnap, tables, 0, 1)
	if err != nil {
		return 0, err
	}
	for _, t := range plan {
		if !t.Direct {
			return 0, fmt.Errorf("target: %s must exist there as a table of its own", t.Name)
		}
	}
	// Each table is emptied in its loading transaction only if it holds
	// nothing but rows pgmove loaded there in this migration.
	ledger, err := OpenLedger(ctx, src, dst, m.SubName, "")
	if err != nil {
		return 0, err
	}
	st := &Status{byTable: map[*Table]*TableStatus{}}
	st.Register(plan)
	if err := Run(ctx, m, "", plan, Options{Jobs: jobs, Replace: true, Status: st, Ledger: ledger}); err != nil {
		return 0, err
	}
	var rows int64
	for _, t := range st.Tables {
		rows += t.rows.Load()
	}
	return rows, nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func (w *worker) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if w.src != nil {
		w.src.Close(ctx)
	}
	if w.dst != nil {
		w.dst.Close(ctx)
	}
}

// ensure reopens whichever session a failure closed.
func (w *worker) ensure(ctx context.Context) error {
	var err error
	if w.src == nil || w.src.IsClosed() {
		if w.src, err = openSource(ctx, w.m, w.snapshot); err != nil {
			return err
		}
	}
	if w.dst == nil || w.dst.IsClosed() {
		if w.dst, err = openTarget(ctx, w.m, "copy"); err != nil {
			return err
		}
	}
	return nil
}

// job is one chunk of one table.
type job struct {
	t     *Table
	chunk Chunk
	st    *TableStatus
}

// Run copies every table with opts.Jobs workers inside the snapshot. Each
// chunk is loaded in one target transaction: a failure rolls it back
// whole, and it is retried (in text format if binary failed, on fresh
// sessions if one broke). Nothing is left half-loaded.
func Run(ctx context.Context, m *config.Migration, snapshot string, tables []*Table, o Options) error {
	var queue []job
	for _, t := range tables {
		st := o.Status.table(t)
		for _, c := range t.Chunks {
			queue = append(queue, job{t: t, chunk: c, st: st})
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var ib *inlineBuilder
	if len(o.Inline) > 0 {
		ib = startInline(ctx, m, max(o.Jobs, 1), len(o.Inline), o)
	}
	err := parallel(ctx, o.Jobs, queue,
		func(context.Context) (*worker, error) {
			return &worker{m: m, snapshot: snapshot, inline: ib}, nil
		},
		func(w *worker) { w.close() },
		func(ctx context.Context, w *worker, j job) error { return w.run(ctx, j, o) })
	if err != nil {
		cancel()
	}
	ib.wait()
	return err
}

func (w *worker) run(ctx context.Context, j job, o Options) error {
	binary := j.t.Binary
	freeze := o.Freeze && j.t.Direct && j.t.Streams() == 1 && j.t.Bytes >= freezeFrom
	var lastErr error
	for attempt := 0; attempt < 4; attempt++ {
		if err := w.ensure(ctx); err != nil {
			return err
		}
		j.st.start()
		var rows int64
		var err error
		if j.t.Fan > 1 {
			rows, err = w.copyFan(ctx, j, binary, o.Ledger)
		} else {
			rows, err = w.copyChunk(ctx, j, binary, freeze, o.Replace, o.Ledger)
		}
		if err == nil {
			j.st.chunkDone(rows)
			if _, ok := o.Inline[j.t]; ok && w.inline != nil {
				w.inline.ch <- j.t
			}
			return nil
		}
		j.st.retry()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.As(err, new(permanent)) {
			return err
		}
		lastErr = err
		switch {
		case freeze && freezeRefused(err):
			// TRUNCATE refused (a foreign key from a table the target had
			// already, no TRUNCATE privilege), or COPY FREEZE: a plain COPY
			// needs neither.
			slog.Info(fmt.Sprintf("copy %s: TRUNCATE + COPY FREEZE failed (%v); loading with a plain COPY", j.t.Name, err))
			freeze = false
		case binary && binaryRefused(err):
			// The target rejects a value's binary form (a type whose binary
			// I/O differs between the clusters): text is the portable one.
			slog.Info(fmt.Sprintf("copy %s: binary COPY failed (%v); retrying in text format", j.t.Name, err))
			binary = false
		case statementRefused(err):
			// The statement itself is refused (a syntax error, an
			// undefined column, a missing privilege): the same statement
			// fails the same way again, so retrying only delays the error.
			return err
		case cluster.SessionEnded(err):
			// The error's own advice ("rerun when it is back") is for a
			// step that stops; the copy retries by itself.
			slog.Info(fmt.Sprintf("copy %s: a session was terminated or its server restarted (SQLSTATE %s); retrying on new sessions", j.t.Name, cluster.SQLState(err)))
		default:
			slog.Info(fmt.Sprintf("copy %s: %v; retrying", j.t.Name, err))
		}
	}
	return lastErr
}

// statementRefused reports an error of SQLSTATE class 42 (syntax error or
// access rule violation) once binary format is out of the question: the
// COPY statement or its table is wrong, and no retry mends it.
func statementRefused(err error) bool {
	return strings.HasPrefix(cluster.SQLState(err), "42")
}

// freezeRefused reports an error of TRUNCATE or COPY FREEZE itself:
// feature not supported (a table referenced by a foreign key), object not
// in prerequisite state, insufficient privilege.
func freezeRefused(err error) bool {
	switch cluster.SQLState(err) {
	case "0A000", "55000", "42501":
		return true
	}
	return false
}

// binaryRefused reports an error the binary format may cause: a data
// exception (class 22), a type mismatch (class 42) or malformed binary
// data (08P01). A dropped connection or a server shutting down is not one.
func binaryRefused(err error) bool {
	code := cluster.SQLState(err)
	return strings.HasPrefix(code, "22") || strings.HasPrefix(code, "42") || code == "08P01"
}

// inlineBuilder builds the indexes of small tables as the copy workers
// finish loading them, on sessions of its own, one per copy worker: like
// pgcopydb's index jobs, so a copy worker goes on to its next table at
// once, and the target's cores are kept busy through the round trips of
// thousands of small tables.
type inlineBuilder struct {
	ch chan *Table
	wg sync.WaitGroup
}

// startInline starts n builders; queued is how many tables may come.
func startInline(ctx context.Context, m *config.Migration, n, queued int, o Options) *inlineBuilder {
	ib := &inlineBuilder{ch: make(chan *Table, queued)} // copy workers never wait on it
	for range n {
		ib.wg.Add(1)
		go func() {
			defer ib.wg.Done()
			var conn *pgconn.PgConn
			defer func() {
				if conn != nil {
					conn.Close(context.Background())
				}
			}()
			for t := range ib.ch {
				if ctx.Err() != nil {
					return
				}
				if conn == nil || conn.IsClosed() {
					var err error
					if conn, err = openIndexSession(ctx, m, ""); err != nil {
						// Too many connections, most likely: the other
						// builders and the index phase build the rest.
						slog.Info(fmt.Sprintf("index %s: %v; this index session stops, the index phase builds what it leaves", t.Name, err))
						conn = nil
						return
					}
				}
				buildInline(ctx, conn, t, o)
			}
		}()
	}
	return ib
}

// wait lets the builders finish what was queued. A nil builder is fine.
func (ib *inlineBuilder) wait() {
	if ib == nil {
		return
	}
	close(ib.ch)
	ib.wg.Wait()
}

// buildInline runs the table's inline index builds. A failure is not the
// copy's: the rows are in, and BuildIndexes, which comes next, builds what
// is missing and reports what it cannot.
func buildInline(ctx context.Context, conn *pgconn.PgConn, t *Table, o Options) {
	in := o.Inline[t]
	if len(in.Stmts) > 0 {
		if err := in.run(ctx, conn); err != nil {
			slog.Info(fmt.Sprintf("index %s: %v; left to the index phase", t.Name, err))
			return
		}
	}
	if o.InlineBuilt != nil {
		o.InlineBuilt.Add(int64(in.Builds))
	}
	if o.InlineDone != nil {
		o.InlineDone.Store(t.Src.OID, true)
	}
}

// copyChunk streams one chunk from the source straight into the target.
// A chunk is one target transaction, which also writes the load's entry in
// the ledger: BEGIN, COPY, the entry and COMMIT, or with TRUNCATE first
// (FREEZE when asked, or a table copied again), which only a table that is
// empty or holds nothing but rows this migration loaded may get (checked
// under an ACCESS EXCLUSIVE lock in that transaction).
func (w *worker) copyChunk(ctx context.Context, j job, binary, freeze, replace bool, l *Ledger) (int64, error) {
	t := j.t
	var prelude string
	inTx := freeze || replace || (l != nil && t.dst != nil)
	switch {
	case freeze || replace:
		if t.dst == nil {
			return 0, permanent{fmt.Errorf("target: %s is not a table of its own there; it cannot be emptied and loaded in one transaction", t.Target)}
		}
		full, err := l.guardTable(ctx, w.dst, t)
		if err != nil {
			w.abandon()
			return 0, err
		}
		// Emptying the table in this transaction is what lets FREEZE write
		// the rows frozen; it also makes a retry start clean.
		if full || freeze {
			prelude = "TRUNCATE " + only(t.dst) + t.Target.Ident()
		}
	case inTx:
		prelude = "BEGIN"
	}
	in, err := startCopyIn(ctx, w.dst, t.copyIn(binary, freeze), binary, prelude)
	if err != nil {
		w.abandon()
		if strings.HasPrefix(prelude, "TRUNCATE") && freezeRefused(err) {
			return 0, cluster.Wrap(config.Target, "truncate "+t.Name, err)
		}
		return 0, cluster.Wrap(config.Target, "copy "+t.Name+" in", err)
	}
	var sent int64
	srcTag, srcErr := copyOut(ctx, w.src, t.copyOut(j.chunk, binary), binary, t.Trim, func(frame []byte, read int64) ([]byte, error) {
		if err := in.send(frame); err != nil {
			return nil, targetError{err}
		}
		j.st.bytes.Add(read)
		sent += read
		return frame[:frameHead], nil
	})
	if srcErr != nil {
		in.fail("the source's COPY failed")
		j.st.bytes.Add(-sent) // the retry sends them again
		w.abandon()
		if te := (targetError{}); errors.As(srcErr, &te) {
			return 0, cluster.Wrap(config.Target, "copy "+t.Name+" in", te.error)
		}
		return 0, cluster.Wrap(config.Source, "copy "+t.Name+" out", srcErr)
	}
	epilogue := ""
	if inTx {
		epilogue = l.epilogue(t, srcTag.RowsAffected())
	}
	tag, err := in.finishWith(epilogue)
	if err == nil && in.epilogueErr != nil {
		j.st.bytes.Add(-sent)
		w.abandon()
		return 0, cluster.Wrap(config.Target, "commit "+t.Name, in.epilogueErr)
	}
	if err != nil {
		j.st.bytes.Add(-sent)
		w.abandon()
		return 0, cluster.Wrap(config.Target, "copy "+t.Name+" in", err)
	}
	return tag.RowsAffected(), nil
}

// abandon rolls back whatever the target session had open and drops the
// source session: a failed COPY aborts the snapshot's transaction (or pgconn
// closed the connection), so the retry imports the snapshot afresh.
func (w *worker) abandon() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if w.dst != nil && !w.dst.IsClosed() {
		if _, err := w.dst.Exec(ctx, "ROLLBACK").ReadAll(); err != nil {
			w.dst.Close(ctx)
		}
	}
	if w.src != nil {
		w.src.Close(ctx)
	}
}
