package compare

import (
	"testing"
	"time"
)

// The fraction comes from the bytes when the sizes are known, else the
// ranges, else the tables; the ETA and the rate are unknown until there
// is progress to measure them by.
func TestProgressSnapshot(t *testing.T) {
	for _, c := range []struct {
		s    ProgressSnapshot
		frac float64
		eta  time.Duration
		ok   bool
	}{
		{ProgressSnapshot{}, -1, 0, false},
		{ProgressSnapshot{Stage: StagePrepare, Tables: 3}, -1, 0, false},
		{ProgressSnapshot{Stage: StageChecksum, Tables: 3, Ranges: 10, Bytes: 1000, Elapsed: time.Second}, 0, 0, false},
		{ProgressSnapshot{Stage: StageChecksum, Tables: 3, Ranges: 10, RangesDone: 5, Bytes: 1000, BytesDone: 250, Elapsed: time.Second}, 0.25, 3 * time.Second, true},
		{ProgressSnapshot{Stage: StageChecksum, Tables: 3, Ranges: 10, RangesDone: 5, Elapsed: time.Second}, 0.5, time.Second, true},
		{ProgressSnapshot{Stage: StageCount, Tables: 4, TablesDone: 1, Elapsed: time.Second}, 0.25, 3 * time.Second, true},
		{ProgressSnapshot{Stage: StageCount, Tables: 4, TablesDone: 4, Bytes: 10, BytesDone: 12, Elapsed: time.Second}, 1, 0, true},
	} {
		if f := c.s.Fraction(); f != c.frac {
			t.Errorf("%+v: fraction %v, want %v", c.s, f, c.frac)
		}
		if eta, ok := c.s.ETA(); eta != c.eta || ok != c.ok {
			t.Errorf("%+v: ETA %v %v, want %v %v", c.s, eta, ok, c.eta, c.ok)
		}
	}
	if _, ok := (ProgressSnapshot{Stage: StageCount, Elapsed: time.Second}).RowsPerSecond(); ok {
		t.Error("a rate before a row")
	}
	var p Progress
	p.selected(2, 100)
	p.hashing(4)
	p.rangeDone(10, 25)
	p.rangeDone(10, 25)
	p.tableDone(0, 0)
	if s := p.Snapshot(); s.Stage != StageChecksum || s.Tables != 2 || s.TablesDone != 1 || s.Ranges != 4 || s.RangesDone != 2 || s.Rows != 20 || s.BytesDone != 50 || s.Fraction() != 0.5 {
		t.Errorf("snapshot %+v", s)
	}
}
