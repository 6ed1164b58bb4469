package copy

import (
	"context"
	"sync"
)

// parallel runs do on every item with up to n workers, in the items'
// order. Each worker opens its own state (its sessions) once, and closes it
// at the end. The first error stops every worker and is returned.
func parallel[T, S any](ctx context.Context, n int, items []T, open func(context.Context) (S, error), closeFn func(S), do func(context.Context, S, T) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var firstErr error
	var once sync.Once
	fail := func(err error) { once.Do(func() { firstErr = err; cancel() }) }
	ch := make(chan T)
	var wg sync.WaitGroup
	for i := 0; i < min(max(n, 1), len(items)); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := open(ctx)
			if err != nil {
				fail(err)
				return
			}
			defer closeFn(st)
			for it := range ch {
				if err := do(ctx, st, it); err != nil {
					fail(err)
					return
				}
			}
		}()
	}
feed:
	for _, it := range items {
		select {
		case ch <- it:
		case <-ctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}
