package schema

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/pgmove/pgmove/internal/cluster"
)

func TestZZChunks(t *testing.T) {
	if os.Getenv("ZZ_MEASURE") == "" {
		t.Skip()
	}
	ctx := context.Background()
	dump, restore, _ := Tools(ctx, 15)
	a, err := Dump(ctx, dump, restore, cluster.ChildConn{Conninfo: "host=/tmp/scratch-schema port=54915 user=postgres dbname=many", Env: os.Environ()}, t.TempDir(), DumpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pre := func(e Entry) bool { return e.Section() == "pre-data" }
	for i := 0; i < 3; i++ {
		t0 := time.Now()
		cs, err := a.chunks(ctx, RestoreOptions{}, pre)
		t1 := time.Now()
		p := planPreData(a.Entries, cs, pre, RestoreOptions{Jobs: 2})
		t.Logf("script %v (%d chunks, err %v), plan %v (%d leaves)", t1.Sub(t0), len(cs), err, time.Since(t1), p.leaves)
	}
}
