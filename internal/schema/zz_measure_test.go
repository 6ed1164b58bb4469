package schema

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
)

// Throwaway measurement (not committed): pre-data restore of 2,000 tables.
func TestZZMeasurePreData(t *testing.T) {
	if os.Getenv("ZZ_MEASURE") == "" {
		t.Skip()
	}
	ctx := context.Background()
	dump, restore, err := Tools(ctx, 15)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a, err := Dump(ctx, dump, restore, cluster.ChildConn{Conninfo: "host=/tmp/scratch-schema port=54915 user=postgres dbname=many", Env: os.Environ()}, dir, DumpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for run := 0; run < 1; run++ {
		jobs := 2
		if os.Getenv("ZZ_JOBS") == "1" {
			jobs = 1
		}
		db := fmt.Sprintf("m_%d_%d", time.Now().UnixNano(), run)
		if out, err := exec.Command("psql", "-h", "/tmp/scratch-schema", "-p", "54917", "-U", "postgres", "-c", "CREATE DATABASE "+db).CombinedOutput(); err != nil {
			t.Fatal(string(out))
		}
		exec.Command("psql", "-h", "/tmp/scratch-schema", "-p", "54917", "-U", "postgres", "-c", "CHECKPOINT").Run()
		t0 := time.Now()
		_, err := a.Restore(ctx, cluster.ChildConn{Conninfo: "host=/tmp/scratch-schema port=54917 user=postgres dbname=" + db, Env: os.Environ()},
			RestoreOptions{Jobs: jobs, Target: zzTarget(t, db), Only: func(e Entry) bool { return e.Section() == "pre-data" }})
		t.Logf("jobs=%d pre-data restore %v err=%v", jobs, time.Since(t0).Round(time.Millisecond), err)
	}
}

func zzTarget(t *testing.T, db string) config.Endpoint {
	ci, err := config.ParseConninfo("host=/tmp/scratch-schema port=54917 user=postgres dbname=" + db)
	if err != nil {
		t.Fatal(err)
	}
	return config.Endpoint{Side: config.Target, Conninfo: ci}
}
