package compare

import (
	"sync"
	"time"
)

// Progress is how far a running comparison has come. Run fills it in when
// Options.Progress is set, and the caller reads it meanwhile with Snapshot
// (pgmove's progress bar on a terminal, its progress lines elsewhere): one
// struct, so the two always say the same.
type Progress struct {
	mu         sync.Mutex
	stage      string
	stageStart time.Time
	tables     int
	tablesDone int
	ranges     int64
	rangesDone int64
	rows       int64
	bytes      int64
	bytesDone  int64
}

// Stages of a comparison, in order.
const (
	StageCount     = "count"     // row counts, table by table
	StagePrepare   = "prepare"   // columns, keys and key ranges read
	StageChecksum  = "checksum"  // key ranges hashed on both sides
	StageRecheck   = "recheck"   // differing rows read again while replication runs
	StageSequences = "sequences" // sequences compared
)

// ProgressSnapshot is one reading of a Progress.
type ProgressSnapshot struct {
	Stage string // "" before Run began
	// Tables is how many tables are compared, TablesDone how many are
	// finished (every range of theirs hashed, or counted).
	Tables, TablesDone int
	// Ranges is how many key ranges are hashed in all (0 while counting,
	// or before the checksum stage), RangesDone how many are.
	Ranges, RangesDone int64
	// Rows are the source rows counted or hashed so far.
	Rows int64
	// Bytes is the source tables' size (pg_table_size), BytesDone the
	// part of it compared: a finished table's whole size, a table in
	// progress in proportion of its ranges done (an estimate).
	Bytes, BytesDone int64
	// Elapsed is the time in this stage.
	Elapsed time.Duration
}

// Fraction is the part of the stage done, from the bytes when the sizes
// are known, else from the ranges or the tables; -1 when unknown.
func (s ProgressSnapshot) Fraction() float64 {
	switch {
	case s.Stage != StageCount && s.Stage != StageChecksum:
		return -1
	case s.Bytes > 0:
		return min(1, float64(s.BytesDone)/float64(s.Bytes))
	case s.Ranges > 0:
		return float64(s.RangesDone) / float64(s.Ranges)
	case s.Tables > 0:
		return float64(s.TablesDone) / float64(s.Tables)
	}
	return -1
}

// ETA is the time the stage still takes at its pace so far; ok is false
// when that is unknown (nothing done yet, or a stage without a measure).
func (s ProgressSnapshot) ETA() (eta time.Duration, ok bool) {
	f := s.Fraction()
	if f <= 0 || s.Elapsed <= 0 {
		return 0, false
	}
	return time.Duration(float64(s.Elapsed) * (1 - f) / f), true
}

// RowsPerSecond is the stage's average rate; ok is false before a row.
func (s ProgressSnapshot) RowsPerSecond() (rate float64, ok bool) {
	if s.Rows == 0 || s.Elapsed <= 0 {
		return 0, false
	}
	return float64(s.Rows) / s.Elapsed.Seconds(), true
}

// Snapshot reads the progress now.
func (p *Progress) Snapshot() ProgressSnapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := ProgressSnapshot{Stage: p.stage, Tables: p.tables, TablesDone: p.tablesDone, Ranges: p.ranges, RangesDone: p.rangesDone,
		Rows: p.rows, Bytes: p.bytes, BytesDone: p.bytesDone}
	if !p.stageStart.IsZero() {
		s.Elapsed = time.Since(p.stageStart)
	}
	return s
}

func (p *Progress) begin(stage string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stage, p.stageStart = stage, time.Now()
}

// selected sets the tables compared and their size on the source.
func (p *Progress) selected(tables int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tables, p.bytes = tables, bytes
}

// hashing sets the ranges hashed in all and starts the checksum stage;
// the rows of the tables counted before (missing on the target) stay.
func (p *Progress) hashing(ranges int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stage, p.stageStart, p.ranges = StageChecksum, time.Now(), ranges
}

// tableDone counts a finished table: its rows and what is left of its size.
func (p *Progress) tableDone(rows, bytesLeft int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tablesDone++
	p.rows += rows
	p.bytesDone += bytesLeft
}

// rangeDone counts a hashed range, its rows and its share of the size.
func (p *Progress) rangeDone(rows, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rangesDone++
	p.rows += rows
	p.bytesDone += bytes
}
