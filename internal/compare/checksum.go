package compare

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/progress"
)

// snapshots opens jobs sessions on one side that all read one snapshot:
// the first (c, the caller's) exports it from a REPEATABLE READ
// transaction, the others import it. done ends the transactions and closes
// the sessions it opened.
func snapshots(ctx context.Context, c *cluster.Conn, ep config.Endpoint, jobs int) (conns []*cluster.Conn, done func(), err error) {
	conns = []*cluster.Conn{c}
	var once sync.Once
	done = func() {
		once.Do(func() {
			for i, s := range conns {
				_, _ = s.Exec(context.Background(), "ROLLBACK")
				if i > 0 {
					s.Close()
				}
			}
		})
	}
	var id string
	if _, err = c.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err == nil {
		err = c.QueryRow(ctx, "SELECT pg_catalog.pg_export_snapshot()").Scan(&id)
	}
	if err != nil {
		done()
		return nil, nil, c.Wrap("export a snapshot", err)
	}
	for range jobs - 1 {
		s, err := Connect(ctx, ep)
		if err != nil {
			done()
			return nil, nil, err
		}
		conns = append(conns, s)
		if _, err = s.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err == nil {
			_, err = s.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(id))
		}
		if err != nil {
			done()
			return nil, nil, s.Wrap("import the snapshot", err)
		}
	}
	return conns, done, nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// task is one span of one table.
type task struct {
	j  *job
	sp span
}

// spanResult is a span that differed in the first pass.
type spanResult struct {
	sp    span
	src   digest
	rows  []Row
	total int
}

// engine runs a checksum comparison.
type engine struct {
	m        *config.Migration
	o        Options
	r        *Report
	mu       sync.Mutex
	differed map[*job][]spanResult
	rows     atomic.Int64 // source rows compared
	total    int64        // spans in all
	// replicating: the migration's slot exists, the target may lag.
	replicating bool
	start       time.Time
}

// prepare reads a table's columns and key on both sides and splits it.
// It returns nil when the table cannot be compared by content (columns
// missing on the target), with the table's report filled in.
func (e *engine) prepare(ctx context.Context, src, dst *cluster.Conn, i int, s, d *catalog.Table, srcBytes, dstBytes bool) (*job, error) {
	res := &e.r.Tables[i]
	scols, err := readColumns(ctx, src, s.OID)
	if err != nil {
		return nil, err
	}
	dcols, err := readColumns(ctx, dst, d.OID)
	if err != nil {
		return nil, err
	}
	have := map[string]Column{}
	for _, c := range dcols {
		have[c.Name] = c
	}
	var missing []string
	j := &job{i: i, s: s, d: d, scols: scols, dcols: dcols}
	for _, c := range scols {
		if _, ok := have[c.Name]; !ok {
			missing = append(missing, catalog.QuoteName(c.Name))
		}
	}
	if len(missing) > 0 {
		res.Status, res.Note = "differ", "columns missing on the target: "+strings.Join(missing, ", ")
		return nil, nil
	}
	j.hash = rowHash(scols, dcols)
	key, refused, err := chooseKey(ctx, src, s.OID, srcBytes && dstBytes)
	if err != nil {
		return nil, err
	}
	if key == nil {
		res.Note = "no primary key or unique NOT NULL index: hashed whole, differing rows not located"
		if len(refused) > 0 {
			res.Note += fmt.Sprintf(" (unique index %s refused as key: %s)", catalog.QuoteName(refused[0].Index), refused[0].Why)
		}
	} else {
		j.key = key
		res.Key = key.Columns
		for _, k := range key.Columns {
			for _, c := range scols {
				if c.Name == k {
					j.stypes = append(j.stypes, c.Type)
				}
			}
			j.dtypes = append(j.dtypes, have[k].Type)
		}
		if !key.ByteOrdered {
			res.Note = "text key under a linguistic collation, which may sort differently on the target: compared as one range"
		}
	}
	if err := j.split(ctx, src); err != nil {
		return nil, err
	}
	res.Ranges = len(j.spans)
	return j, nil
}

// runChecksum compares the jobs' content on one snapshot per side, then
// settles and locates the spans that differ.
func (e *engine) runChecksum(ctx context.Context, src, dst *cluster.Conn, jobs []*job) error {
	// Biggest tables first, so the last to finish is a small one.
	sort.SliceStable(jobs, func(a, b int) bool { return jobs[a].s.Bytes > jobs[b].s.Bytes })
	var tasks []task
	var err error
	for _, j := range jobs {
		for _, sp := range j.spans {
			tasks = append(tasks, task{j, sp})
		}
	}
	e.total = int64(len(tasks))
	for _, j := range jobs {
		if len(j.spans) == 0 {
			e.o.Progress.tableDone(0, j.s.Bytes)
		}
	}
	if e.replicating, err = e.isReplicating(ctx, src); err != nil {
		return err
	}
	e.differed = map[*job][]spanResult{}
	n := max(1, min(e.o.Jobs, len(tasks)))
	snapStart := time.Now()
	srcs, srcDone, err := snapshots(ctx, src, e.m.Src, n)
	if err != nil {
		return err
	}
	defer srcDone()
	if e.replicating {
		// The target's snapshot is taken once it has applied everything
		// the source's holds: they then differ only by what the source
		// committed meanwhile, not by the whole lag.
		ctl, err := Connect(ctx, e.m.Src)
		if err != nil {
			return err
		}
		err = e.fence(ctx, ctl, dst)
		ctl.Close()
		if err != nil {
			return err
		}
	}
	dsts, dstDone, err := snapshots(ctx, dst, e.m.Dst, n)
	if err != nil {
		return err
	}
	defer dstDone()

	slog.Debug(fmt.Sprintf("compare: snapshots open after %s", time.Since(snapStart).Round(time.Millisecond)))
	passStart := time.Now()
	e.o.Progress.hashing(e.total)
	ch := make(chan task)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range ch {
				if errs[w] != nil {
					continue
				}
				errs[w] = e.pass(ctx, srcs[w], dsts[w], t)
			}
		}()
	}
	for _, t := range tasks {
		if ctx.Err() != nil {
			break
		}
		ch <- t
	}
	close(ch)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	srcDone()
	dstDone()
	slog.Debug(fmt.Sprintf("compare: %d range(s) hashed in %s (replicating: %v), %d differed", len(tasks), time.Since(passStart).Round(time.Millisecond), e.replicating, e.differedCount()))
	settleStart := time.Now()
	e.o.Progress.begin(StageRecheck)
	defer func() {
		slog.Debug(fmt.Sprintf("compare: settled in %s", time.Since(settleStart).Round(time.Millisecond)))
	}()
	return e.settleAll(ctx, src, dst, jobs)
}

// pass hashes one span on both sides at once and, when they differ,
// locates its rows in the same snapshots.
func (e *engine) pass(ctx context.Context, src, dst *cluster.Conn, t task) error {
	var sd, dd digest
	var serr, derr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sd, serr = t.j.hashSpan(ctx, src, t.j.s, t.j.stypes, t.sp) }()
	go func() { defer wg.Done(); dd, derr = t.j.hashSpan(ctx, dst, t.j.d, t.j.dtypes, t.sp) }()
	wg.Wait()
	if err := errors.Join(serr, derr); err != nil {
		return err
	}
	e.mu.Lock()
	res := &e.r.Tables[t.j.i]
	res.Source += sd.rows
	res.Target += dd.rows
	// A range's share of the table's size; the last range done adds what
	// the shares left, so a finished table counts its whole size.
	t.j.spansDone++
	share := t.j.s.Bytes / int64(len(t.j.spans))
	finished := t.j.spansDone == len(t.j.spans)
	e.mu.Unlock()
	e.rows.Add(sd.rows)
	e.o.Progress.rangeDone(sd.rows, share)
	if finished {
		e.o.Progress.tableDone(0, t.j.s.Bytes-share*int64(len(t.j.spans)))
	}
	e.throttle(ctx)
	if sd == dd {
		return nil
	}
	sr := spanResult{sp: t.sp, src: sd}
	if t.j.key != nil {
		rows, total, err := t.j.locateDeep(ctx, src, dst, t.sp, sd, dd, e.o.limit())
		if err != nil {
			return err
		}
		sr.rows, sr.total = rows, total
	}
	e.mu.Lock()
	e.differed[t.j] = append(e.differed[t.j], sr)
	e.mu.Unlock()
	return nil
}

func (e *engine) differedCount() int {
	n := 0
	for _, d := range e.differed {
		n += len(d)
	}
	return n
}

// throttle sleeps while the source rows read run ahead of --throttle.
func (e *engine) throttle(ctx context.Context) {
	if e.o.Throttle <= 0 {
		return
	}
	ahead := time.Duration(float64(e.rows.Load())/float64(e.o.Throttle)*float64(time.Second)) - time.Since(e.start)
	if ahead > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(ahead):
		}
	}
}

// settleAll decides what differed between the snapshots. Without
// replication to the target, that is the answer. While a subscription
// applies the source's changes, the target's snapshot was taken once it had
// applied the source's (see runChecksum), so the snapshots differ only by
// real differences and by what the source committed in between. The rows
// that differed are read again, in rounds: all of them on the source, then
// the source's WAL is flushed past those reads (the fence), then, once the
// target has applied the fence, all of them on the target. A row equal
// then was in flight; one that still differs with the same source content
// as the read before is reported; one whose source row changed again is
// read in the next round, and after --retries rounds it is "not settled",
// never equal. A differing span of a keyless table is decided the same way,
// as a whole.
func (e *engine) settleAll(ctx context.Context, src, dst *cluster.Conn, jobs []*job) error {
	var whole []keyless
	cand := map[*job][]Row{}
	for _, j := range jobs {
		res := &e.r.Tables[j.i]
		res.Status = "equal"
		for _, sr := range e.differed[j] {
			switch {
			case !e.replicating:
				res.Status = "differ"
				res.Differing += sr.total
				res.located = append(res.located, sr.rows...)
			case j.key == nil:
				whole = append(whole, keyless{j, sr.sp, sr.src})
			default:
				cand[j] = append(cand[j], sr.rows...)
				if n := sr.total - len(sr.rows); n > 0 {
					// Past the limit: counted, not read again.
					res.Status = "differ"
					res.Differing += n
				}
			}
		}
	}
	if len(whole) > 0 || len(cand) > 0 {
		if err := e.rounds(ctx, src, dst, whole, cand); err != nil {
			return err
		}
	}
	for _, j := range jobs {
		res := &e.r.Tables[j.i]
		if res.Status == "equal" && res.NotSettled > 0 {
			res.Status = "not settled"
		}
		sortRows(res.located)
		sortRows(res.unsettled)
		res.located = res.located[:min(len(res.located), e.o.limit())]
		res.unsettled = res.unsettled[:min(len(res.unsettled), e.o.limit())]
		if len(res.located) > res.Differing {
			res.Differing = len(res.located)
		}
	}
	return nil
}

// keyless is a differing span of a table without a key, with the source's
// digest of the read before.
type keyless struct {
	j    *job
	sp   span
	prev digest
}

// rounds settles, while replication runs, the rows that differed between
// the snapshots and the keyless spans that did (see settleAll).
func (e *engine) rounds(ctx context.Context, src, dst *cluster.Conn, whole []keyless, cand map[*job][]Row) error {
	confirmed := map[*job][]Row{}
	for range e.o.retries() {
		n := len(whole)
		for _, c := range cand {
			n += len(c)
		}
		if n == 0 {
			break
		}
		srcByKey := map[*job]map[string]keyed{}
		for j, c := range cand {
			if len(c) == 0 {
				continue
			}
			m, err := j.rowsByKeys(ctx, src, j.s, j.stypes, keysOf(c))
			if err != nil {
				return err
			}
			srcByKey[j] = m
		}
		wholeSrc := make([]digest, len(whole))
		for i, k := range whole {
			d, err := k.j.hashSpan(ctx, src, k.j.s, k.j.stypes, k.sp)
			if err != nil {
				return err
			}
			wholeSrc[i] = d
		}
		if err := e.fence(ctx, src, dst); err != nil {
			return err
		}
		for j, c := range cand {
			if len(c) == 0 {
				continue
			}
			d2, err := j.rowsByKeys(ctx, dst, j.d, j.dtypes, keysOf(c))
			if err != nil {
				return err
			}
			s2 := srcByKey[j]
			var next []Row
			for _, r := range c {
				k := strings.Join(r.keyText, "\x00")
				s, sok := s2[k]
				d, dok := d2[k]
				if sok == dok && (!sok || s.hash == d.hash) {
					continue // equal now: it was lag
				}
				var row Row
				switch {
				case !dok:
					row = j.row(s, Missing, true)
				case !sok:
					row = j.row(d, Extra, false)
				default:
					row = j.row(s, Changed, true)
				}
				if sameHash(r.srcHash, row.srcHash) {
					confirmed[j] = append(confirmed[j], row)
				} else {
					next = append(next, row)
				}
			}
			cand[j] = next
		}
		var nextWhole []keyless
		for i, k := range whole {
			d, err := k.j.hashSpan(ctx, dst, k.j.d, k.j.dtypes, k.sp)
			if err != nil {
				return err
			}
			switch {
			case d == wholeSrc[i]:
			case wholeSrc[i] == k.prev:
				e.r.Tables[k.j.i].Status = "differ"
			default:
				k.prev = wholeSrc[i]
				nextWhole = append(nextWhole, k)
			}
		}
		whole = nextWhole
	}
	for _, k := range whole {
		e.r.Tables[k.j.i].NotSettled++
	}
	for j, rows := range confirmed {
		res := &e.r.Tables[j.i]
		res.Status = "differ"
		res.Differing += len(rows)
		sortRows(rows)
		rows = rows[:min(len(rows), e.o.limit())]
		if err := j.detail(ctx, src, dst, rows); err != nil {
			return err
		}
		res.located = rows
	}
	for j, rows := range cand {
		e.r.Tables[j.i].NotSettled += len(rows)
		e.r.Tables[j.i].unsettled = rows
	}
	return nil
}

func keysOf(rows []Row) [][]string {
	keys := make([][]string, len(rows))
	for i, r := range rows {
		keys[i] = r.keyText
	}
	return keys
}

func sameHash(a, b *int64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// isReplicating reports whether the migration's slot exists on the source:
// then the target may lag behind what a snapshot of the source shows.
func (e *engine) isReplicating(ctx context.Context, src *cluster.Conn) (bool, error) {
	var n int
	err := src.QueryRow(ctx, query("slot"), e.m.SlotName).Scan(&n)
	if err != nil {
		return false, src.Wrap("read replication slot", err)
	}
	return n > 0, nil
}

// fence flushes the source's WAL past everything read so far and waits
// until the target applied it: the subscription's origin on the target
// has applied a source commit at or past the fence (immediate, under
// load), or the slot on the source confirms it (when nothing else is
// committed, the fence's own position is confirmed by feedback).
func (e *engine) fence(ctx context.Context, src, dst *cluster.Conn) error {
	lsn, err := progress.Fence(ctx, src)
	if err != nil {
		return err
	}
	fenceStart := time.Now()
	defer func() {
		slog.Debug(fmt.Sprintf("compare: fence %X/%X applied after %s", lsn>>32, uint32(lsn), time.Since(fenceStart).Round(time.Millisecond)))
	}()
	deadline := time.Now().Add(e.o.settleTimeout())
	useOrigin := true
	for i := 0; ; i++ {
		if useOrigin {
			var applied *string
			err := dst.QueryRow(ctx, query("applied"), e.m.SubName).Scan(&applied)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				useOrigin = false
			case cluster.SQLState(err) == pgerrcode.InsufficientPrivilege:
				useOrigin = false // not a superuser: the slot tells
			case err != nil:
				return dst.Wrap("read the subscription's applied position", err)
			case applied != nil:
				if a, err := parseLSN(*applied); err == nil && a >= lsn {
					return nil
				}
			}
		}
		if i%5 == 0 {
			var conf *string
			err := src.QueryRow(ctx, query("confirmed"), e.m.SlotName).Scan(&conf)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return src.Wrap("read replication slot", err)
			}
			if conf != nil {
				if c, err := parseLSN(*conf); err == nil && c >= lsn {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("target: the subscription did not apply the source's WAL up to %X/%X within %s; check `pgmove progress` (the apply may be down), then rerun compare",
				lsn>>32, uint32(lsn), e.o.settleTimeout())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func parseLSN(s string) (uint64, error) {
	var hi, lo uint32
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		return 0, fmt.Errorf("LSN %q: %w", s, err)
	}
	return uint64(hi)<<32 | uint64(lo), nil
}
