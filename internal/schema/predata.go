package schema

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/cluster"
)

// restorePreData restores the pre-data entries pre accepts with o.Jobs
// sessions while keeping every dependency pg_dump recorded (pg_restore
// --verbose writes them into its script) and all-or-nothing:
//
//  1. what comes before the archive's first table (schemas, types,
//     functions...), in one committed transaction;
//  2. then, in o.Jobs sessions at once, each in one open transaction: the
//     "leaf" tables, which depend on nothing restored after step 1 and on
//     which nothing else in the pre-data part depends (with their comments
//     and grants), dealt out; and in the first session, in the archive's
//     order, everything else (tables that inherit or are inherited, typed
//     tables' peers, sequences, defaults, views...), which by construction
//     needs no leaf table;
//  3. all sessions commit once every one has succeeded; if one fails, all
//     roll back, and only step 1's objects stay (a rerun skips them as
//     already on the target).
//
// Few tables, or no leaf among them, restore in one transaction in order.
func (a *Archive) restorePreData(ctx context.Context, dst cluster.ChildConn, o RestoreOptions, pre func(Entry) bool) (int, error) {
	single := func() (int, error) {
		if len(o.Replace) > 0 {
			return a.restoreScript(ctx, o, pre)
		}
		return a.runList(ctx, dst, o, pre, 1)
	}
	n, tables := 0, 0
	for _, e := range a.Entries {
		if pre(e) {
			n++
			if e.Desc == "TABLE" {
				tables++
			}
		}
	}
	if o.Jobs <= 1 || tables < 64 {
		return single()
	}
	chunks, err := a.chunks(ctx, o, pre)
	if err != nil {
		return 0, err
	}
	plan := planPreData(a.Entries, chunks, pre, o)
	if plan.leaves == 0 {
		return single()
	}
	slog.Debug("target: pre-data restore", "before the first table", len(plan.prefix), "leaf tables in parallel", plan.leaves, "in order", len(plan.sessions[0])-plan.share0, "sessions", o.Jobs)

	conns := make([]*cluster.Conn, o.Jobs)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for k := range conns {
		if conns[k], err = cluster.Connect(ctx, o.Target, "copy-schema"); err != nil {
			return 0, err
		}
	}
	err = pgx.BeginFunc(ctx, conns[0].Conn, func(tx pgx.Tx) error {
		if err := execChunks(ctx, tx, sessionSettings(conns[0], chunks[0])); err != nil {
			return err
		}
		return execChunks(ctx, tx, plan.prefix)
	})
	if err != nil {
		return 0, restoreError(ctx, err)
	}

	// Each session loads its share in an open transaction, then waits for
	// the others: all commit, or all roll back.
	var loaded sync.WaitGroup
	decided := make(chan struct{}) // closed once commitAll is set
	commitAll := false
	errs := make([]error, o.Jobs)
	var done sync.WaitGroup
	for k := range conns {
		loaded.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			tx, err := conns[k].Begin(ctx)
			if err == nil {
				err = execChunks(ctx, tx, sessionSettings(conns[k], chunks[0]))
			}
			if err == nil {
				err = execChunks(ctx, tx, plan.sessions[k])
			}
			errs[k] = err
			loaded.Done()
			<-decided
			if tx == nil {
				return
			}
			if commitAll && err == nil {
				if err := tx.Commit(ctx); err != nil {
					errs[k] = fmt.Errorf("commit: %w", err)
				}
				return
			}
			tx.Rollback(context.Background())
		}()
	}
	loaded.Wait()
	ok := errors.Join(errs...) == nil
	commitAll = ok
	close(decided)
	done.Wait()
	if err := errors.Join(errs...); err != nil {
		if ok {
			// A commit failed after every session had loaded: some
			// sessions' tables stay; a rerun restores the rest.
			return 0, &ParallelError{restoreError(ctx, err)}
		}
		return 0, restoreError(ctx, firstErr(errs))
	}
	return n, nil
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// preDataPlan is how restorePreData deals out the script's entries.
type preDataPlan struct {
	prefix   []chunk   // before the first table, committed first
	sessions [][]chunk // session 0: the ordered rest, then its leaves
	leaves   int       // leaf tables dealt out
	share0   int       // chunks of leaves in session 0
}

func planPreData(entries []Entry, chunks []chunk, pre func(Entry) bool, o RestoreOptions) preDataPlan {
	p := preDataPlan{sessions: make([][]chunk, o.Jobs)}
	restored := map[int]bool{}
	byID := map[int]Entry{}
	for _, e := range entries {
		if pre(e) {
			restored[e.ID] = true
			byID[e.ID] = e
		}
	}
	body := chunks[1:]
	first := len(body)
	for i, c := range body {
		if byID[c.id].Desc == "TABLE" {
			first = i
			break
		}
	}
	inPrefix := map[int]bool{}
	for _, c := range body[:first] {
		inPrefix[c.id] = true
	}
	p.prefix = body[:first]
	rest := body[first:]
	// An entry is satisfied by what step 1 made or what is not restored.
	satisfied := func(d, except int) bool { return !restored[d] || inPrefix[d] || d == except }
	attached := func(c chunk) bool { // a comment, grant or label on one object
		d := byID[c.id].Desc
		return c.class == 0 && (d == "COMMENT" || d == "ACL" || d == "SECURITY LABEL")
	}
	dependents := map[int][]chunk{}
	for _, c := range rest {
		for _, d := range c.deps {
			dependents[d] = append(dependents[d], c)
		}
	}
	leaf := map[int]bool{}
	for _, c := range rest {
		e := byID[c.id]
		if e.Desc != "TABLE" || o.replaces(e) {
			continue
		}
		ok := true
		for _, d := range c.deps {
			ok = ok && satisfied(d, 0)
		}
		for _, dc := range dependents[c.id] {
			if !attached(dc) {
				ok = false
			}
			for _, d := range dc.deps {
				ok = ok && satisfied(d, c.id)
			}
		}
		if ok {
			leaf[c.id] = true
		}
	}
	share := map[int]int{}
	n := 0
	for _, c := range rest {
		if leaf[c.id] {
			share[c.id] = n % o.Jobs
			n++
		}
	}
	var leaves [][]chunk = make([][]chunk, o.Jobs)
	for _, c := range rest {
		k, isLeaf := share[c.id]
		if !isLeaf && attached(c) && len(c.deps) > 0 {
			for _, d := range c.deps {
				if kk, ok := share[d]; ok {
					k, isLeaf = kk, true
				}
			}
		}
		if isLeaf {
			leaves[k] = append(leaves[k], c)
		} else {
			p.sessions[0] = append(p.sessions[0], c)
		}
	}
	p.share0 = len(leaves[0])
	for k := range p.sessions {
		p.sessions[k] = append(p.sessions[k], leaves[k]...)
	}
	p.leaves = n
	return p
}

// replaces tells whether the entry is a table o.Replace restores otherwise.
func (o RestoreOptions) replaces(e Entry) bool {
	_, ok := o.Replace[e.ObjectOID]
	return ok && e.CatalogOID == 1259
}
