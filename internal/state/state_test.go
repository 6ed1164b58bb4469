package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestJournal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ctx")
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) || j.Exists() {
		t.Fatalf("Open made the context dir (%v): a read-only command must not", err)
	}
	if evs, err := j.Events(); err != nil || len(evs) != 0 {
		t.Fatalf("events of a missing journal: %v %v", evs, err)
	}
	j.Record("copy", Started, "", map[string]string{"slot": "s"})
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("context dir mode %v, want 0700", st.Mode().Perm())
	}
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

func TestBindingAndArchive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ctx")
	j, _ := Open(dir)
	if b, _ := j.Binding(); !b.Empty || b.Bound {
		t.Fatalf("empty journal: %+v", b)
	}
	// The target unreachable at first: only the source is known.
	if err := j.Bind(Identity{SrcSystemID: 7, SrcDBOID: 16384}); err != nil {
		t.Fatal(err)
	}
	live := Identity{SrcSystemID: 7, SrcDBOID: 16384, DstSystemID: 9, DstDBOID: 5}
	b, _ := j.Binding()
	if !b.Bound || Conflict(b.Identity, live) != "" {
		t.Fatalf("partial binding conflicts with the full one: %+v", b)
	}
	j.Bind(live)
	j.Bind(live) // known already: not recorded again
	evs, _ := j.Events()
	if len(evs) != 2 {
		t.Fatalf("bind events: %+v", evs)
	}
	b, _ = j.Binding()
	if b.Identity != live {
		t.Fatalf("merged identity %+v, want %+v", b.Identity, live)
	}
	other := live
	other.DstDBOID = 6 // the target database dropped and created again
	if c := Conflict(b.Identity, other); !strings.Contains(c, "target database's OID is 6, the journal's 5") {
		t.Errorf("conflict: %q", c)
	}
	j.Record("cleanup", Done, "", nil)
	if b, _ := j.Binding(); !b.Finished {
		t.Errorf("cleanup done: not finished: %+v", b)
	}
	os.WriteFile(filepath.Join(dir, "copy.json"), []byte("{}"), 0o600)
	now := time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)
	a1, err := j.Archive(now)
	if err != nil || filepath.Base(a1) != "20261203T140000Z" {
		t.Fatalf("archive: %q %v", a1, err)
	}
	for _, f := range []string{"journal.jsonl", "copy.json"} {
		if _, err := os.Stat(filepath.Join(a1, f)); err != nil {
			t.Errorf("%s not archived: %v", f, err)
		}
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Errorf("%s still in the context dir", f)
		}
	}
	if b, _ := j.Binding(); !b.Empty {
		t.Errorf("after the archive: %+v", b)
	}
	j.Record("x", Done, "", nil)
	if a2, err := j.Archive(now); err != nil || a2 == a1 {
		t.Errorf("second archive in the same second: %q %v", a2, err)
	}
	if a3, err := j.Archive(now); err != nil || a3 != "" {
		t.Errorf("nothing to archive: %q %v", a3, err)
	}
}
