package plan

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pgmove/pgmove/internal/check"
)

// Change is one difference between the plan and the live catalogue.
type Change struct {
	Kind    string `json:"kind"` // new_table, dropped_table, identity_fixed, identity_broken, identity_changed, new_object, object_gone, sequences, size, copy, version
	Object  string `json:"object,omitempty"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
	// Matters is true when the runbook is now wrong in a way that needs a
	// look before going on: a table it does not list, one it lists that is
	// gone, an identity broken, an object it does not cover.
	Matters bool `json:"matters"`
}

// Diff compares the plan's facts with the live ones.
func Diff(old, cur *Facts) []Change {
	var out []Change
	add := func(kind, obj, msg, fix string, matters bool) {
		out = append(out, Change{Kind: kind, Object: obj, Message: msg, Fix: fix, Matters: matters})
	}
	was := map[string]Table{}
	for _, t := range old.Tables {
		was[t.Name] = t
	}
	now := map[string]bool{}
	for _, t := range cur.Tables {
		now[t.Name] = true
		p, ok := was[t.Name]
		switch {
		case !ok && t.OK:
			add("new_table", t.Name, "new table since the plan: the runbook does not list it; create-pub publishes it", "", true)
		case !ok:
			add("new_table", t.Name, "new table since the plan, without a usable replica identity: create-pub refuses until it has one", t.Fix, true)
		case !p.OK && t.OK:
			add("identity_fixed", t.Name, fmt.Sprintf("replica identity fixed since the plan (now %s)", t.Identity), "", false)
		case p.OK && !t.OK:
			add("identity_broken", t.Name, fmt.Sprintf("replica identity lost since the plan (was %s, now %s): create-pub refuses until it has one", p.Identity, t.Identity), t.Fix, true)
		case p.Identity != t.Identity:
			add("identity_changed", t.Name, fmt.Sprintf("replica identity changed from %s to %s", p.Identity, t.Identity), "", false)
		}
	}
	for _, t := range old.Tables {
		if !now[t.Name] {
			add("dropped_table", t.Name, "table gone since the plan: the runbook still lists it", "", true)
		}
	}
	oldObj := map[string]bool{}
	for _, o := range old.Special {
		oldObj[o.Key()] = true
	}
	curObj := map[string]bool{}
	for _, o := range cur.Special {
		curObj[o.Key()] = true
		if !oldObj[o.Key()] {
			add("new_object", o.Object, "new special object since the plan: "+o.Message, o.Fix, true)
		}
	}
	for _, o := range old.Special {
		if !curObj[o.Key()] {
			add("object_gone", o.Object, "no longer found: "+o.Message, "", false)
		}
	}
	if old.Sequences != cur.Sequences {
		add("sequences", "", fmt.Sprintf("%d sequence(s), %d at the plan: copy-seq reads them when it runs", cur.Sequences, old.Sequences), "", false)
	}
	if grown(old.SourceBytes, cur.SourceBytes) {
		add("size", "", fmt.Sprintf("data to copy is now %s (%s at the plan); the initial copy takes %s", check.PrettyBytes(cur.SourceBytes), check.PrettyBytes(old.SourceBytes),
			RoughDuration(cur.Estimate())), "", false)
	}
	// A plan.json written before the copy method was recorded has none.
	if old.Copy != "" && old.Copy != cur.Copy {
		add("copy", "", fmt.Sprintf("migration.yml now chooses the %s copy (%s at the plan): the runbook and the copy-schema script describe the other", cur.Copy, old.Copy), "", true)
	}
	if major(old.Source.Version) != major(cur.Source.Version) {
		add("version", "source", fmt.Sprintf("the source runs PostgreSQL %s (%s at the plan)", major(cur.Source.Version), major(old.Source.Version)), "", true)
	}
	if cur.Target.Reachable && old.Target.Reachable && major(old.Target.Version) != major(cur.Target.Version) {
		add("version", "target", fmt.Sprintf("the target runs PostgreSQL %s (%s at the plan)", major(cur.Target.Version), major(old.Target.Version)), "", true)
	}
	return out
}

// grown reports a change in size worth telling: more than a tenth, and more
// than 16 MB.
func grown(a, b int64) bool {
	d := b - a
	if d < 0 {
		d = -d
	}
	return d > 16<<20 && d*10 > a
}

func major(version string) string {
	f := strings.Fields(version)
	if len(f) == 0 {
		return "unknown"
	}
	return strings.SplitN(f[0], ".", 2)[0]
}

// Matters counts the changes that make the runbook wrong.
func Matters(changes []Change) int {
	n := 0
	for _, c := range changes {
		if c.Matters {
			n++
		}
	}
	return n
}

// WriteDiff prints the changes for a terminal.
func WriteDiff(w io.Writer, dir string, old *Facts, changes []Change, now time.Time) {
	age := now.Sub(old.Written).Round(time.Minute)
	fmt.Fprintf(w, "plan %s written %s (%s ago), compared with the live catalogue\n\n", dir, old.Written.Format(time.RFC3339), age)
	if len(changes) == 0 {
		fmt.Fprintln(w, "no change since the plan: the runbook still holds")
		return
	}
	label := map[string]string{
		"new_table": "NEW", "dropped_table": "DROPPED", "identity_fixed": "FIXED", "identity_broken": "BROKEN", "identity_changed": "CHANGED",
		"new_object": "NEW", "object_gone": "GONE", "sequences": "CHANGED", "size": "CHANGED", "copy": "CHANGED", "version": "CHANGED",
	}
	for _, c := range changes {
		obj := ""
		if c.Object != "" {
			obj = c.Object + ": "
		}
		fmt.Fprintf(w, "%-8s %s%s\n", label[c.Kind], obj, c.Message)
		for _, line := range strings.Split(c.Fix, "\n") {
			if line != "" {
				fmt.Fprintf(w, "         fix: %s\n", line)
			}
		}
	}
	fmt.Fprintln(w)
	if n := Matters(changes); n > 0 {
		fmt.Fprintf(w, "%d change(s) the runbook does not cover: review them, then rerun pgmove plan to rewrite it\n", n)
	} else {
		fmt.Fprintf(w, "%d change(s), none that makes the runbook wrong\n", len(changes))
	}
}

// WriteDiffJSON prints the changes as JSON.
func WriteDiffJSON(w io.Writer, old *Facts, changes []Change) error {
	if changes == nil {
		changes = []Change{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Written time.Time `json:"plan_written"`
		Changes []Change  `json:"changes"`
		Matters int       `json:"matters"`
	}{old.Written, changes, Matters(changes)})
}
