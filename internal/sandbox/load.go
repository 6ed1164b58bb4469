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
}

// LoadResult counts what the load did.
type LoadResult struct {
	Transactions int64
	Errors       int64
	Elapsed      time.Duration
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
	conn, err := Connect(ctx, dir, st.Src)
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
	var res LoadResult
	start := time.Now()
	var wg sync.WaitGroup
	errc := make(chan error, o.Clients)
	for i := 0; i < o.Clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Connect(ctx, dir, st.Src)
			if err != nil {
				errc <- err
				return
			}
			defer c.Close(context.Background())
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
				if err := transaction(ctx, c, scale); err != nil {
					if ctx.Err() != nil {
						return
					}
					atomic.AddInt64(&res.Errors, 1)
					continue
				}
				atomic.AddInt64(&res.Transactions, 1)
			}
		}()
	}
	wg.Wait()
	close(errc)
	res.Elapsed = time.Since(start)
	if err := <-errc; err != nil {
		return res, err
	}
	return res, nil
}

func transaction(ctx context.Context, c *pgx.Conn, scale int) error {
	aid := rand.IntN(100000*scale) + 1
	tid := rand.IntN(10*scale) + 1
	bid := rand.IntN(scale) + 1
	delta := rand.IntN(10001) - 5000
	return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2", delta, aid)
		b.Queue("UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2", delta, tid)
		b.Queue("UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2", delta, bid)
		b.Queue("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)", tid, bid, aid, delta)
		b.Queue("INSERT INTO pgbench_events (aid, delta) VALUES ($1, $2)", aid, delta)
		if rand.IntN(10) == 0 {
			b.Queue("DELETE FROM pgbench_events WHERE id = (SELECT min(id) FROM pgbench_events)")
		}
		return tx.SendBatch(ctx, b).Close()
	})
}
