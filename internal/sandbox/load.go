package sandbox

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// LoadOptions shape the write load.
type LoadOptions struct {
	Clients  int           // concurrent sessions
	Rate     int           // transactions per second in all, 0 = as fast as they go
	Duration time.Duration // 0 = until the context ends
	// Verify, once the load ends, waits for both servers to hold every
	// event row the load committed (and none it deleted): replication runs
	// one way or the other, through a switchover too.
	Verify bool
}

// LoadResult counts what the load did.
type LoadResult struct {
	Transactions int64
	Errors       int64
	Elapsed      time.Duration
	// MaxGap is the longest time one session waited between two of its
	// commits: the pause the application saw.
	MaxGap time.Duration
	// Through is where the load connected: pgbouncer or pg-meta.
	Through string
	// With Verify: the acknowledged event rows (inserted and not deleted by
	// the load), and those missing on each side, or deleted rows still there.
	Acked    int
	Lost     map[string]int // by cluster
	Verified bool           // both sides were checked
}

// Load runs pgbench's TPC-B-like transaction against the source, plus an
// insert into pgbench_events (which has a sequence), until the duration
// elapses or ctx ends. Every transaction updates, inserts and (one in ten)
// deletes, so replication carries all three.
func Load(ctx context.Context, dir string, o LoadOptions) (LoadResult, error) {
	st, err := ReadState(dir)
	if err != nil {
		return LoadResult{}, err
	}
	if o.Clients <= 0 {
		o.Clients = 4
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	app := st.App()
	conn, err := connectApp(ctx, dir, app)
	if err != nil {
		return LoadResult{}, err
	}
	var scale int
	err = conn.QueryRow(ctx, "SELECT count(*) FROM pgbench_branches").Scan(&scale)
	conn.Close(context.Background())
	if err != nil {
		return LoadResult{}, fmt.Errorf("sandbox: read pgbench scale: %w", err)
	}
	var tick <-chan time.Time
	if o.Rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(o.Rate))
		defer t.Stop()
		tick = t.C
	}
	res := LoadResult{Through: app.Cluster}
	var mu sync.Mutex
	inserted, deleted := map[int64]bool{}, map[int64]bool{}
	start := time.Now()
	var wg sync.WaitGroup
	errc := make(chan error, o.Clients)
	for i := 0; i < o.Clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := connectApp(ctx, dir, app)
			if err != nil {
				errc <- err
				return
			}
			defer func() {
				if c != nil {
					c.Close(context.Background())
				}
			}()
			last := time.Now()
			for {
				if tick != nil {
					select {
					case <-ctx.Done():
						return
					case <-tick:
					}
				}
				if ctx.Err() != nil {
					return
				}
				if c == nil {
					// The session broke: the application connects again.
					if c, err = connectApp(ctx, dir, app); err != nil {
						if ctx.Err() != nil {
							return
						}
						atomic.AddInt64(&res.Errors, 1)
						time.Sleep(10 * time.Millisecond)
						continue
					}
				}
				id, gone, err := transaction(ctx, c, scale)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					atomic.AddInt64(&res.Errors, 1)
					c.Close(context.Background())
					c = nil
					continue
				}
				now := time.Now()
				mu.Lock()
				res.Transactions++
				res.MaxGap = max(res.MaxGap, now.Sub(last))
				inserted[id] = true
				for _, g := range gone {
					deleted[g] = true
				}
				mu.Unlock()
				last = now
			}
		}()
	}
	wg.Wait()
	close(errc)
	res.Elapsed = time.Since(start)
	if err := <-errc; err != nil {
		return res, err
	}
	if o.Verify {
		vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		var keep, gone []int64
		for id := range inserted {
			if !deleted[id] {
				keep = append(keep, id)
			}
		}
		for id := range deleted {
			gone = append(gone, id)
		}
		res.Acked = len(keep)
		if err := verify(vctx, dir, st, keep, gone, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// connectApp connects where the application does; through pgbouncer in
// transaction pooling, with the simple protocol (no prepared statement
// outlives its transaction there).
func connectApp(ctx context.Context, dir string, n Node) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=%s passfile=%s application_name=pgmove/sandbox-load",
		n.Port, n.DB, AdminUser, PassFilePath(dir)))
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("sandbox: connect to %s: %w", n.Cluster, err)
	}
	return conn, nil
}

// verify waits until both servers hold every acknowledged event row and
// none of the deleted ones, and counts, per side, the rows still wrong.
func verify(ctx context.Context, dir string, st *State, keep, gone []int64, res *LoadResult) error {
	res.Lost = map[string]int{}
	for {
		done := true
		for _, n := range []Node{st.Src, st.Dst} {
			c, err := Connect(ctx, dir, n)
			if err != nil {
				return err
			}
			var missing, back int
			err = c.QueryRow(ctx, `SELECT (SELECT count(*) FROM unnest($1::bigint[]) a(id) WHERE NOT EXISTS (SELECT 1 FROM pgbench_events e WHERE e.id = a.id)),
				(SELECT count(*) FROM pgbench_events e WHERE e.id = ANY ($2::bigint[]))`, keep, gone).Scan(&missing, &back)
			c.Close(context.Background())
			if err != nil {
				return fmt.Errorf("sandbox: %s: look up the acknowledged rows: %w", n.Cluster, err)
			}
			res.Lost[n.Cluster] = missing + back
			if missing+back > 0 {
				done = false
			}
		}
		if done || ctx.Err() != nil {
			res.Verified = true
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// transaction runs one write transaction and returns the event row it
// inserted and those it deleted, once committed.
func transaction(ctx context.Context, c *pgx.Conn, scale int) (id int64, deleted []int64, err error) {
	aid := rand.IntN(100000*scale) + 1
	tid := rand.IntN(10*scale) + 1
	bid := rand.IntN(scale) + 1
	delta := rand.IntN(10001) - 5000
	del := rand.IntN(10) == 0
	err = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		deleted = nil
		b := &pgx.Batch{}
		b.Queue("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2", delta, aid)
		b.Queue("UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2", delta, tid)
		b.Queue("UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2", delta, bid)
		b.Queue("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)", tid, bid, aid, delta)
		b.Queue("INSERT INTO pgbench_events (aid, delta) VALUES ($1, $2) RETURNING id", aid, delta).QueryRow(func(row pgx.Row) error {
			return row.Scan(&id)
		})
		if del {
			b.Queue("DELETE FROM pgbench_events WHERE id = (SELECT min(id) FROM pgbench_events) RETURNING id").Query(func(rows pgx.Rows) error {
				var err error
				deleted, err = pgx.CollectRows(rows, pgx.RowTo[int64])
				return err
			})
		}
		return tx.SendBatch(ctx, b).Close()
	})
	return id, deleted, err
}
