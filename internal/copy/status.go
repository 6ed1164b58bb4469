package copy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Status is the copy's progress, kept in memory and written four times a second to
// copy.json in the migration context directory, where pgmove progress (any
// process) reads it.
type Status struct {
	mu      sync.Mutex
	path    string
	Phase   string         `json:"phase"` // copy, index, done, failed
	Started time.Time      `json:"started"`
	Updated time.Time      `json:"updated"`
	PID     int            `json:"pid"`
	Tables  []*TableStatus `json:"tables"`
	Indexes IndexStatus    `json:"indexes"`
	byTable map[*Table]*TableStatus
	stop    chan struct{}
	done    chan struct{}

	// SourceID and TargetID name the databases the copy runs between
	// (system identifier/database OID), so that no later command takes
	// this file for another migration's.
	SourceID string `json:"source_id,omitempty"`
	TargetID string `json:"target_id,omitempty"`
}

// TableStatus is one table's copy progress.
type TableStatus struct {
	Name       string `json:"table"`
	State      string `json:"state"` // waiting, copying, copied
	Rows       int64  `json:"rows"`
	Bytes      int64  `json:"bytes"`       // sent to the target so far
	TotalBytes int64  `json:"total_bytes"` // size on the source
	Chunks     int    `json:"chunks"`      // ranges, each loaded in a transaction of its own
	Streams    int    `json:"streams"`     // target sessions loading it at once, at most
	ChunksDone int    `json:"chunks_done"`
	Retries    int    `json:"retries"`
	Format     string `json:"format"`

	bytes   atomic.Int64
	rows    atomic.Int64
	done    atomic.Int32
	running atomic.Int32
	retries atomic.Int32
}

// IndexStatus is the index builds' progress.
type IndexStatus struct {
	Total   int      `json:"total"`
	Done    int      `json:"done"`
	Running []string `json:"running,omitempty"`
}

// NewStatus starts a status that is written to dir/copy.json until Close.
func NewStatus(dir string) *Status {
	s := &Status{path: filepath.Join(dir, "copy.json"), Phase: "copy", Started: time.Now(), PID: os.Getpid(),
		byTable: map[*Table]*TableStatus{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				_ = s.write()
			}
		}
	}()
	return s
}

func (s *Status) table(t *Table) *TableStatus {
	if s == nil {
		return &TableStatus{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.byTable[t]; st != nil {
		return st
	}
	format := "text"
	if t.Binary {
		format = "binary"
	}
	st := &TableStatus{Name: t.Name, State: "waiting", TotalBytes: t.Bytes, Chunks: len(t.Chunks), Streams: t.Streams(), Format: format}
	s.byTable[t] = st
	s.Tables = append(s.Tables, st)
	return st
}

// Register lists the tables before the copy starts, so progress shows them all.
func (s *Status) Register(tables []*Table) {
	for _, t := range tables {
		s.table(t)
	}
}

func (st *TableStatus) start() { st.running.Add(1) }
func (st *TableStatus) retry() { st.running.Add(-1); st.retries.Add(1) }
func (st *TableStatus) chunkDone(n int64) {
	st.running.Add(-1)
	st.rows.Add(n)
	st.done.Add(1)
}

// Bind records the databases the copy runs between.
func (s *Status) Bind(sourceID, targetID string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.SourceID, s.TargetID = sourceID, targetID
	s.mu.Unlock()
}

// SetPhase records the phase (copy, index, done, failed).
func (s *Status) SetPhase(p string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.Phase = p
	s.mu.Unlock()
	_ = s.write()
}

// SetIndexes records the index builds' progress.
func (s *Status) SetIndexes(total, done int, running []string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.Indexes = IndexStatus{Total: total, Done: done, Running: running}
	s.mu.Unlock()
}

// snapshot refreshes the exported fields from the counters.
func (s *Status) snapshot() {
	s.Updated = time.Now()
	for _, st := range s.Tables {
		st.Bytes, st.Rows, st.ChunksDone, st.Retries = st.bytes.Load(), st.rows.Load(), int(st.done.Load()), int(st.retries.Load())
		switch {
		case st.ChunksDone == st.Chunks:
			st.State = "copied"
		case st.running.Load() > 0 || st.ChunksDone > 0:
			st.State = "copying"
		default:
			st.State = "waiting"
		}
	}
}

// Totals sums bytes copied and to copy, and counts copied tables.
func (s *Status) Totals() (done, total int64, copied, tables int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snapshot()
	for _, st := range s.Tables {
		done += min(st.Bytes, max(st.TotalBytes, st.Bytes))
		total += max(st.TotalBytes, st.Bytes)
		if st.State == "copied" {
			copied++
		}
	}
	return done, total, copied, len(s.Tables)
}

func (s *Status) write() error {
	s.mu.Lock()
	s.snapshot()
	b, err := json.Marshal(s)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}

// Close stops the writer after a last write.
func (s *Status) Close() {
	if s == nil {
		return
	}
	close(s.stop)
	<-s.done
	_ = s.write()
}

// ReadStatus reads copy.json from a context directory; nil when there is none.
func ReadStatus(dir string) (*Status, error) {
	b, err := os.ReadFile(filepath.Join(dir, "copy.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("copy status: %w", err)
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("copy status: %w", err)
	}
	return &s, nil
}
