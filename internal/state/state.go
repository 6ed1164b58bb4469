package state

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Event is one line of the journal: a step starting, ending or failing.
type Event struct {
	Time    time.Time         `json:"time"`
	Step    string            `json:"step"`
	Status  string            `json:"status"` // started, done, failed
	Message string            `json:"message,omitempty"`
	Data    map[string]string `json:"data,omitempty"`
}

// Statuses.
const (
	Started = "started"
	Done    = "done"
	Failed  = "failed"
)

// Journal is the migration's state: an append-only JSON-lines file in the
// migration context directory. The servers hold the truth (every step checks
// them before acting); the journal says what ran, when, and with what result,
// and keeps the few facts only pgmove knows (a slot's consistent point).
type Journal struct {
	Dir  string
	path string
}

// Open opens the context directory's journal. It creates nothing: the
// directory (mode 0700) is made by the first Record or Acquire, so a
// read-only command, or one that fails before it changes anything, leaves no
// empty directory behind.
func Open(dir string) (*Journal, error) {
	return &Journal{Dir: dir, path: filepath.Join(dir, "journal.jsonl")}, nil
}

// Exists reports whether the context directory exists.
func (j *Journal) Exists() bool {
	st, err := os.Stat(j.Dir)
	return err == nil && st.IsDir()
}

func (j *Journal) mkdir() error {
	if err := os.MkdirAll(j.Dir, 0o700); err != nil {
		return fmt.Errorf("migration context directory: %w", err)
	}
	return nil
}

// Record appends an event.
func (j *Journal) Record(step, status, msg string, data map[string]string) error {
	b, err := json.Marshal(Event{Time: time.Now().UTC(), Step: step, Status: status, Message: msg, Data: data})
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := j.mkdir(); err != nil {
		return err
	}
	f, err := os.OpenFile(j.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return f.Sync()
}

// Events reads the whole journal. A torn last line (a crash mid-write) is skipped.
func (j *Journal) Events() ([]Event, error) {
	f, err := os.Open(j.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	var out []Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var e Event
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out, sc.Err()
}

// Last returns the latest event of a step, or nil.
func (j *Journal) Last(step string) (*Event, error) {
	evs, err := j.Events()
	if err != nil {
		return nil, err
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Step == step {
			return &evs[i], nil
		}
	}
	return nil, nil
}

// Lock is an exclusive hold on the migration for one pgmove process.
type Lock struct{ f *os.File }

// Acquire takes the migration's lock without waiting. A second pgmove on the
// same migration gets an error naming the holder.
func (j *Journal) Acquire(command string) (*Lock, error) {
	if err := j.mkdir(); err != nil {
		return nil, err
	}
	path := filepath.Join(j.Dir, "lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		return nil, fmt.Errorf("another pgmove is working on this migration (%s); wait for it to finish or stop it", describeHolder(string(holder)))
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("%d %s %s", os.Getpid(), time.Now().UTC().Format(time.RFC3339), command)), 0)
	return &Lock{f: f}, nil
}

func describeHolder(s string) string {
	parts := strings.SplitN(strings.TrimSpace(s), " ", 3)
	if len(parts) < 3 {
		return "lock file " + "held"
	}
	if _, err := strconv.Atoi(parts[0]); err != nil {
		return "lock held"
	}
	return fmt.Sprintf("pid %s, pgmove %s, since %s", parts[0], parts[2], parts[1])
}

// Release lets go of the lock.
func (l *Lock) Release() {
	if l != nil && l.f != nil {
		_ = l.f.Truncate(0)
		_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
		l.f.Close()
	}
}
