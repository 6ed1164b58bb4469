package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/phase"
)

// assertPhases checks that a migrate run's JSON log (stderr of
// --log-format json) has one record for each of the phases named, with
// its seconds, and that the phases run one after the other add up to no
// more than the whole command.
func assertPhases(t *testing.T, stderr string, want ...string) {
	t.Helper()
	got := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("--log-format json wrote %q: %v", line, err)
			continue
		}
		if rec["msg"] != phase.Msg {
			continue
		}
		name, _ := rec[phase.Key].(string)
		secs, ok := rec[phase.SecondsKey].(float64)
		if !ok || secs < 0 {
			t.Errorf("phase record without its seconds: %s", line)
		}
		if _, dup := got[name]; dup {
			t.Errorf("phase %q logged twice", name)
		}
		got[name] = secs
	}
	total, ok := got[phase.Migrate]
	if !ok {
		t.Fatalf("no %q phase record in the log:\n%s", phase.Migrate, stderr)
	}
	var sum float64
	for _, name := range want {
		secs, ok := got[name]
		if !ok {
			t.Errorf("no %q phase record in the log; got %v", name, got)
		}
		if name != phase.Dump { // alongside check
			sum += secs
		}
	}
	if sum > total+0.01 {
		t.Errorf("the phases add up to %.3f s, more than the whole migrate's %.3f s: %v", sum, total, got)
	}
}
