package check

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/state"
)

// Severity ranks a finding.
type Severity int

const (
	Info Severity = iota
	Warning
	Error // blocks the migration
)

func (s Severity) String() string { return [...]string{"info", "warning", "error"}[s] }

// MarshalJSON writes the severity as its name.
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads a severity written by MarshalJSON.
func (s *Severity) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return err
	}
	for i, n := range [...]string{"info", "warning", "error"} {
		if n == name {
			*s = Severity(i)
			return nil
		}
	}
	return fmt.Errorf("unknown severity %q", name)
}

// Finding is one thing check found, with the statement or setting that fixes it.
type Finding struct {
	Severity Severity `json:"severity"`
	Side     string   `json:"side"` // source, target or both
	Code     string   `json:"code"`
	Object   string   `json:"object,omitempty"`
	Message  string   `json:"message"`
	Detail   string   `json:"detail,omitempty"` // why, or what the fix costs
	Fix      string   `json:"fix,omitempty"`
}

// Endpoint describes one side in the report.
type Endpoint struct {
	Display   string `json:"display"`
	Version   string `json:"version,omitempty"`
	Reachable bool   `json:"reachable"` // connected (see Problem otherwise)
	// Problem is why pgmove could not connect: "unreachable" only when no
	// server answered; "login failed", "no such database" when one did.
	Problem string `json:"problem,omitempty"`
}

// Report is the result of a check.
type Report struct {
	Source   Endpoint  `json:"source"`
	Target   Endpoint  `json:"target"`
	Ready    bool      `json:"ready"`
	Findings []Finding `json:"findings"`

	// Facts gathered on the way, for the runbook and the plan.
	Published   []*catalog.Table `json:"-"`
	SourceBytes int64            `json:"source_bytes"`
}

// Errors counts blocking findings.
func (r *Report) Errors() int { return r.count(Error) }

// Warnings counts warnings.
func (r *Report) Warnings() int { return r.count(Warning) }

func (r *Report) count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// First returns the first blocking finding, for a one-line error.
func (r *Report) First() *Finding {
	for i := range r.Findings {
		if r.Findings[i].Severity == Error {
			return &r.Findings[i]
		}
	}
	return nil
}

func (r *Report) add(sev Severity, side config.Side, code, object, msg, fix string) {
	r.Findings = append(r.Findings, Finding{Severity: sev, Side: string(side), Code: code, Object: object, Message: msg, Fix: fix})
}

// Options tune a check.
type Options struct {
	// Native is true when the initial copy is PostgreSQL's own table sync,
	// which needs a slot and a worker per table being copied.
	Native bool
	// Probe runs the connection tests that need a replication connection and
	// a rolled-back subscription on the target.
	Probe bool
	// LastCopy is the last copy event of this migration's journal (one
	// bound to these servers), nil when there is none: it tells an
	// interrupted copy's rows from someone else's.
	LastCopy *state.Event
	// What the schema restore carries besides the objects: owners
	// (--with-owners), privileges and owners (--with-grants), and the
	// source's roles, created first (--with-roles). The roles the carried
	// objects name must exist on the target.
	WithOwners, WithACL, WithRoles bool
}

// Run checks everything that blocks or endangers the migration. src or dst
// is nil when that side could not be reached; its error is then reported.
func Run(ctx context.Context, m *config.Migration, src, dst *cluster.Conn, srcErr, dstErr error, o Options) *Report {
	r := &Report{Source: Endpoint{Display: m.Src.Display()}, Target: Endpoint{Display: m.Dst.Display()}}
	c := &checker{m: m, src: src, dst: dst, r: r, o: o}
	if src == nil && srcErr == nil {
		srcErr = fmt.Errorf("source: not connected")
	}
	if dst == nil && dstErr == nil {
		dstErr = fmt.Errorf("target: not connected")
	}
	if srcErr != nil {
		r.Source.Problem = problemOf(srcErr)
		r.add(Error, config.Source, "connect", "", strip(srcErr, config.Source), "")
	} else {
		r.Source.Reachable, r.Source.Version = true, src.Version
	}
	if dstErr != nil {
		r.Target.Problem = problemOf(dstErr)
		r.add(Error, config.Target, "connect", "", strip(dstErr, config.Target), "")
	} else {
		r.Target.Reachable, r.Target.Version = true, dst.Version
	}
	for _, step := range []func(context.Context) error{
		c.readPhase, c.versions, c.sourceSettings, c.walHeadroom, c.targetSettings, c.sourceTables, c.privileges, c.replicationConnection,
		c.replicaIdentity, c.specialObjects, c.extensions, c.leftovers, c.blockers, c.targetTables, c.drift, c.coverage, c.apply,
		c.missingRoles,
	} {
		t0 := time.Now()
		err := step(ctx)
		if slog.Default().Enabled(ctx, slog.LevelDebug) {
			name := runtime.FuncForPC(reflect.ValueOf(step).Pointer()).Name()
			name = strings.TrimSuffix(name[strings.LastIndexByte(name, '.')+1:], "-fm")
			slog.Debug("check: step done", "step", name, "took", time.Since(t0).Round(time.Millisecond))
		}
		if err != nil {
			side := config.Source
			if e, ok := err.(*cluster.Error); ok {
				side = e.Side
			}
			r.add(Error, side, "check", "", strip(err, side), "")
		}
	}
	sort.SliceStable(r.Findings, func(i, j int) bool { return r.Findings[i].Severity > r.Findings[j].Severity })
	r.Ready = r.Errors() == 0
	return r
}

// strip drops the "source: " prefix an error already carries: the report
// has a column for the side.
func strip(err error, side config.Side) string {
	return strings.TrimPrefix(err.Error(), string(side)+": ")
}

type checker struct {
	m        *config.Migration
	src, dst *cluster.Conn
	r        *Report
	o        Options
	snap     *catalog.Snapshot // source
	phase    phase
}

// WriteText prints the report for a terminal.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "source  %s  %s\n", r.Source.Display, versionOrDown(r.Source))
	fmt.Fprintf(w, "target  %s  %s\n\n", r.Target.Display, versionOrDown(r.Target))
	if len(r.Findings) == 0 {
		fmt.Fprintln(w, "no findings")
	}
	for _, f := range r.Findings {
		obj := ""
		if f.Object != "" {
			obj = f.Object + ": "
		}
		fmt.Fprintf(w, "%-7s %-6s %s%s\n", strings.ToUpper(f.Severity.String()), f.Side, obj, f.Message)
		if f.Detail != "" {
			fmt.Fprintf(w, "        %s\n", f.Detail)
		}
		for _, line := range strings.Split(f.Fix, "\n") {
			if line != "" {
				fmt.Fprintf(w, "        fix: %s\n", line)
			}
		}
	}
	fmt.Fprintln(w)
	if r.Ready {
		fmt.Fprintf(w, "ready: %d warning(s), no blocking problem\n", r.Warnings())
	} else {
		fmt.Fprintf(w, "not ready: %d blocking problem(s), %d warning(s)\n", r.Errors(), r.Warnings())
	}
}

// problemOf is why a side could not be connected to.
func problemOf(err error) string {
	if p := cluster.ConnectProblem(err); p != "" {
		return p
	}
	return cluster.ConnectFailed
}

func versionOrDown(e Endpoint) string {
	if !e.Reachable {
		return "(" + e.Problem + ")"
	}
	return "PostgreSQL " + strings.Fields(e.Version)[0]
}

// WriteJSON prints the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	return enc.Encode(r)
}
