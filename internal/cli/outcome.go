package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"

	"github.com/pgmove/pgmove/internal/cluster"
)

// outcome is what a command that changes something did, or under --dry-run
// would do: each step with its one-line summary (the line the text output
// prints and the journal keeps) and its figures, and the statements run.
// --json prints it as one object on stdout; logs stay on stderr.
type outcome struct {
	Command    string              `json:"command"`
	DryRun     bool                `json:"dry_run"`
	OK         bool                `json:"ok"`
	Error      string              `json:"error,omitempty"`
	Steps      []stepOutcome       `json:"steps"`
	Statements []cluster.Statement `json:"statements"`
	// Output is the rest of what the text output would have printed: the
	// check's findings, a dry-run's description of the copy.
	Output []string `json:"output,omitempty"`

	mu sync.Mutex // statements may come from parallel workers
}

// stepOutcome is one step of a command.
type stepOutcome struct {
	Step    string         `json:"step"`
	Status  string         `json:"status"` // done, failed
	Summary string         `json:"summary"`
	Details map[string]any `json:"details,omitempty"`
}

// withJSON runs a command. With json, what it prints on stdout is kept
// out of the way and one outcome object is printed instead; the error, if
// any, is returned as well (one line on stderr, and the exit code).
func (s *session) withJSON(on, dryRun bool, run func() error) error {
	if !on {
		return run()
	}
	stdout := s.g.stdout
	var text bytes.Buffer
	s.g.stdout = &text
	s.out = &outcome{Command: s.command, DryRun: dryRun, Steps: []stepOutcome{}, Statements: []cluster.Statement{}}
	err := run()
	s.g.stdout = stdout
	s.out.OK = err == nil
	if err != nil {
		s.out.Error = cluster.OneLine(err.Error())
	}
	for _, line := range strings.Split(strings.TrimRight(text.String(), "\n"), "\n") {
		if line != "" {
			s.out.Output = append(s.out.Output, line)
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if jerr := enc.Encode(s.out); jerr != nil && err == nil {
		err = jerr
	}
	return err
}

// note adds a figure to the step under way, for --json.
func (s *session) note(key string, v any) {
	if s.out == nil {
		return
	}
	if s.notes == nil {
		s.notes = map[string]any{}
	}
	s.notes[key] = v
}

// addStep records a step's outcome, for --json.
func (s *session) addStep(name, status, summary string, data map[string]string) {
	if s.out == nil {
		return
	}
	details := s.notes
	s.notes = nil
	for k, v := range data {
		if details == nil {
			details = map[string]any{}
		}
		if _, ok := details[k]; !ok {
			details[k] = v
		}
	}
	s.out.Steps = append(s.out.Steps, stepOutcome{Step: name, Status: status, Summary: summary, Details: details})
}
