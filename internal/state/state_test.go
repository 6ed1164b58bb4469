package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestJournal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ctx")
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("context dir mode %v, want 0700", st.Mode().Perm())
	}
	j.Record("copy", Started, "", map[string]string{"slot": "s"})
	j.Record("copy", Done, "5 tables", map[string]string{"slot": "s", "consistent_point": "0/1"})
	j.Record("create-sub", Failed, "boom", nil)
	// A torn last line (a crash mid-write) is skipped.
	f, _ := os.OpenFile(filepath.Join(dir, "journal.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2026-`)
	f.Close()
	evs, err := j.Events()
	if err != nil || len(evs) != 3 {
		t.Fatalf("events: %v %v", evs, err)
	}
	last, _ := j.Last("copy")
	if last.Status != Done || last.Data["consistent_point"] != "0/1" {
		t.Errorf("last copy event: %+v", last)
	}
	if e, _ := j.Last("nothing"); e != nil {
		t.Errorf("unknown step: %+v", e)
	}
}

func TestLockRefusesASecondHolder(t *testing.T) {
	j, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := j.Acquire("migrate")
	if err != nil {
		t.Fatal(err)
	}
	j2, _ := Open(j.Dir)
	if _, err := j2.Acquire("create-sub"); err == nil || !strings.Contains(err.Error(), "pgmove migrate") {
		t.Fatalf("second lock: %v", err)
	}
	l.Release()
	l2, err := j2.Acquire("create-sub")
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Release()
}
