package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pgmove/pgmove/internal/pgtest"
)

// TestSlotLost holds the migration's slot behind on a 13 source whose
// max_slot_wal_keep_size is 1MB until the source removes the WAL it needs:
// check reports the limit, progress warns past --max-retained, then
// progress and status say the slot is lost with the way out (a new copy)
// and exit 3, with the retained WAL unknown (null), never 0; cleanup then
// leaves nothing behind.
func TestSlotLost(t *testing.T) {
	p := newPair(t, 13, 15)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'x' FROM generate_series(1, 1000) g;
		GRANT SELECT ON t TO replicator`)
	r := p.run("check")
	if r.code != 0 || !strings.Contains(r.stdout, "max_slot_wal_keep_size = -1 (no limit): a slot that falls behind keeps WAL until the source's disk is full") {
		t.Fatalf("check with no limit: %s", r)
	}
	pgtest.Exec(t, p.src, "meta", "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
	pgtest.Exec(t, p.src, "meta", "SELECT pg_reload_conf()")
	r = p.run("check", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, "max_slot_wal_keep_size = 1024 kB: a slot that falls that far behind is lost") {
		t.Fatalf("check with a 1MB limit: %s", r)
	}
	p.must("migrate")

	// A healthy slot: a warning past a tiny --max-retained, nothing blocking.
	pgtest.Exec(t, p.src, "meta", "INSERT INTO t SELECT g, 'y' FROM generate_series(1001, 2000) g")
	r = p.run("progress", "--json", "--max-retained", "1B")
	var rep struct {
		WALStatus   *string  `json:"wal_status"`
		Retained    *int64   `json:"retained_bytes"`
		Limit       *int64   `json:"max_slot_wal_keep_bytes"`
		MaxRetained *int64   `json:"max_retained_bytes"`
		Lost        bool     `json:"slot_lost"`
		Warnings    []string `json:"warnings"`
		Problems    []string `json:"problems"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("progress --json: %v: %s", err, r)
	}
	if r.code != 0 || rep.WALStatus == nil || *rep.WALStatus != "reserved" || rep.Limit == nil || *rep.Limit != 1<<20 || rep.Lost || rep.MaxRetained == nil || *rep.MaxRetained != 1 {
		t.Fatalf("progress of a healthy slot: %s", r)
	}
	if rep.Retained != nil && *rep.Retained > 1 && (len(rep.Warnings) == 0 || !strings.Contains(rep.Warnings[0], "past --max-retained 1 B")) {
		t.Errorf("no warning past --max-retained: %s", r)
	}

	// The target stops confirming; the source writes on, switches segments
	// and checkpoints until the slot is lost.
	pgtest.Exec(t, p.dst, "test", "ALTER SUBSCRIPTION sub_pg_meta_meta DISABLE")
	deadline := time.Now().Add(60 * time.Second)
	status := ""
	for time.Now().Before(deadline) {
		pgtest.Exec(t, p.src, "meta", "INSERT INTO t SELECT g, repeat('z', 200) FROM generate_series(100001, 120000) g ON CONFLICT (id) DO UPDATE SET v = excluded.v")
		pgtest.Exec(t, p.src, "meta", "SELECT pg_switch_wal()")
		pgtest.Exec(t, p.src, "meta", "CHECKPOINT")
		status = pgtest.QueryValue[string](t, p.src, "meta", "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'sub_pg_meta_meta'")
		if status == "lost" {
			break
		}
	}
	if status != "lost" {
		t.Fatalf("the slot never got lost: wal_status %s", status)
	}
	way := "start a new copy: pgmove cleanup, then pgmove migrate"
	r = p.run("progress")
	if r.code != ExitProblems || !strings.Contains(r.stdout, `PROBLEM: replication slot sub_pg_meta_meta on the source is lost (wal_status lost)`) ||
		!strings.Contains(r.stdout, way) || !strings.Contains(r.stdout, "slot retains unknown") || !strings.Contains(r.stderr, "is lost") {
		t.Fatalf("progress of a lost slot: %s", r)
	}
	r = p.run("progress", "--json")
	rep = struct {
		WALStatus   *string  `json:"wal_status"`
		Retained    *int64   `json:"retained_bytes"`
		Limit       *int64   `json:"max_slot_wal_keep_bytes"`
		MaxRetained *int64   `json:"max_retained_bytes"`
		Lost        bool     `json:"slot_lost"`
		Warnings    []string `json:"warnings"`
		Problems    []string `json:"problems"`
	}{}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("progress --json: %v: %s", err, r)
	}
	if r.code != ExitProblems || !rep.Lost || rep.Retained != nil || rep.WALStatus == nil || *rep.WALStatus != "lost" || !strings.Contains(r.stdout, `"retained_bytes":null`) {
		t.Fatalf("progress --json of a lost slot: %s", r)
	}
	r = p.run("status")
	if r.code != ExitProblems || !strings.Contains(r.stdout, "phase      slot lost: the migration must start again") || !strings.Contains(r.stdout, "slot       source slot sub_pg_meta_meta (migration), inactive, wal_status lost, retains unknown") ||
		!strings.Contains(r.stdout, "is lost") || !strings.Contains(r.stdout, way) {
		t.Fatalf("status of a lost slot: %s", r)
	}
	// The wait for the catch-up (progress --wait, migrate's) stops at once
	// rather than wait for ever, and migrate's check names it.
	pgtest.Exec(t, p.dst, "test", "ALTER SUBSCRIPTION sub_pg_meta_meta ENABLE")
	start := time.Now()
	r = p.run("progress", "--wait", "--timeout", "60s")
	if r.code != ExitProblems || !strings.Contains(r.stderr, "is lost (wal_status lost)") || time.Since(start) > 30*time.Second {
		t.Fatalf("progress --wait with a lost slot: %s", r)
	}
	r = p.run("migrate", "--timeout", "60s")
	if r.code != ExitProblems || !strings.Contains(r.stderr, "sub_pg_meta_meta: replication slot is lost (wal_status lost)") || !strings.Contains(r.stderr, "fix: start a new copy: pgmove cleanup, then pgmove migrate") {
		t.Fatalf("migrate with a lost slot: %s", r)
	}
	p.must("cleanup")
	if left := p.objectsLeft(); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
