package copy

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
)

// A fan copy reads a table once from the source and deals its rows out, in
// frames of whole rows, to several target sessions, each loading its share
// with a COPY of its own inside an open transaction. The sessions commit
// only once every one of them has loaded its share, so until then a
// failure rolls all of them back and the table is copied again.

// permanent marks a failure that a retry inside this run cannot mend.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// copyFan copies a whole table read once from the source into t.Fan target
// sessions: this worker's and t.Fan-1 more, opened for the table.
func (w *worker) copyFan(ctx context.Context, j job, binaryFormat bool, l *Ledger) (int64, error) {
	t := j.t
	sessions := []*pgconn.PgConn{w.dst}
	defer func() {
		for _, c := range sessions[1:] {
			c.Close(context.Background())
		}
	}()
	for len(sessions) < t.Fan {
		c, err := openTarget(ctx, w.m, "copy")
		if err != nil {
			return 0, err
		}
		sessions = append(sessions, c)
	}
	rollback := func() {
		w.abandon()
		for _, c := range sessions[1:] {
			c.Close(context.Background())
		}
		sessions = sessions[:1]
	}
	for _, c := range sessions {
		if _, err := c.Exec(ctx, "BEGIN").ReadAll(); err != nil {
			rollback()
			return 0, cluster.Wrap(config.Target, "begin "+t.Name, err)
		}
	}

	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ins := make([]*copyIn, 0, len(sessions))
	for _, c := range sessions {
		in, err := startCopyIn(fctx, c, t.copyIn(binaryFormat, false), binaryFormat, "")
		if err != nil {
			for _, in := range ins {
				in.fail("another session failed")
			}
			rollback()
			return 0, cluster.Wrap(config.Target, "copy "+t.Name+" in", err)
		}
		ins = append(ins, in)
	}

	// Whichever session is free takes the next frame.
	frames := make(chan []byte, len(sessions))
	var sourceDone bool // written before frames is closed
	type result struct {
		i    int
		rows int64
		err  error
	}
	results := make(chan result, len(sessions))
	for i, in := range ins {
		go func() {
			var err error
			for f := range frames {
				if err == nil {
					if err = in.send(f); err != nil {
						cancel() // the source and the other sessions stop too
					}
				}
				putFrame(f)
			}
			if err != nil || !sourceDone {
				in.fail("the source's COPY failed")
				results <- result{i: i, err: err}
				return
			}
			tag, err := in.finish()
			if err != nil {
				cancel()
			}
			results <- result{i, tag.RowsAffected(), err}
		}()
	}
	var handed int64
	_, sErr := copyOut(fctx, w.src, t.copyOut(j.chunk, binaryFormat), binaryFormat, t.Trim, func(f []byte, read int64) ([]byte, error) {
		select {
		case frames <- f:
		case <-fctx.Done():
			return nil, fctx.Err()
		}
		j.st.bytes.Add(read)
		handed += read
		return newFrame(), nil
	})
	sourceDone = sErr == nil
	close(frames)
	var rows int64
	shares := make([]int64, len(sessions))
	var dstErr error
	for range sessions {
		r := <-results
		rows += r.rows
		shares[r.i] = r.rows
		if r.err != nil && (dstErr == nil || errors.Is(dstErr, context.Canceled)) {
			dstErr = r.err
		}
	}
	if sErr != nil || dstErr != nil {
		j.st.bytes.Add(-handed) // the retry sends them again
	}
	switch {
	case sErr != nil && !errors.Is(sErr, context.Canceled):
		rollback()
		return 0, cluster.Wrap(config.Source, "copy "+t.Name+" out", sErr)
	case dstErr != nil && !errors.Is(dstErr, context.Canceled):
		rollback()
		return 0, cluster.Wrap(config.Target, "copy "+t.Name+" in", dstErr)
	case sErr != nil || dstErr != nil:
		rollback()
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, cluster.Wrap(config.Source, "copy "+t.Name+" out", context.Canceled)
	}
	for i, c := range sessions {
		// Each session's share is its own load transaction in the ledger.
		if err := commitLoad(ctx, c, l.epilogue(t, shares[i])); err != nil {
			rollback()
			j.st.bytes.Add(-handed)
			err = cluster.Wrap(config.Target, "commit "+t.Name, err)
			if i > 0 {
				// Part of the table is in: only a fresh copy mends that.
				return 0, permanent{fmt.Errorf("%w (%d of %d sessions had committed their share; rerun pgmove: the copy restarts from a new slot)", err, i, len(sessions))}
			}
			return 0, err
		}
	}
	return rows, nil
}

// commitLoad runs a load's epilogue (its ledger entry, then COMMIT) and
// makes sure the transaction committed: a failed one answers COMMIT with
// ROLLBACK.
func commitLoad(ctx context.Context, c *pgconn.PgConn, epilogue string) error {
	res, err := c.Exec(ctx, epilogue).ReadAll()
	if err != nil {
		return err
	}
	if len(res) == 0 || res[len(res)-1].CommandTag.String() != "COMMIT" {
		return errors.New("the load's transaction did not commit")
	}
	return nil
}
