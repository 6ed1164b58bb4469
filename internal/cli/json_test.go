package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/pgtest"
)

// jsonOutcome is the part of a command's --json a user reads.
type jsonOutcome struct {
	Command string `json:"command"`
	DryRun  bool   `json:"dry_run"`
	OK      bool   `json:"ok"`
	Steps   []struct {
		Step    string         `json:"step"`
		Status  string         `json:"status"`
		Summary string         `json:"summary"`
		Details map[string]any `json:"details"`
	} `json:"steps"`
	Statements []struct {
		Side, What, SQL string
	} `json:"statements"`
}

// parseOutcome fails unless stdout is exactly one JSON object.
func parseOutcome(t *testing.T, r result) jsonOutcome {
	t.Helper()
	var o jsonOutcome
	var raw map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, r)
	}
	if err := json.Unmarshal([]byte(r.stdout), &o); err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	return o
}

// step returns the named step's details, failing if it is not there done.
func (o jsonOutcome) step(t *testing.T, name string) map[string]any {
	t.Helper()
	for _, s := range o.Steps {
		if s.Step == name {
			if s.Status != "done" {
				t.Fatalf("%s: step %s %s: %s", o.Command, name, s.Status, s.Summary)
			}
			return s.Details
		}
	}
	t.Fatalf("%s: no step %s in %+v", o.Command, name, o.Steps)
	return nil
}

// TestJSONAndDryRun: migrate --dry-run prints every step's statements and
// creates nothing; every command that changes something reports what it
// did as one JSON object with --json; a long table list is abbreviated in
// the log, never in --dry-run.
func TestJSONAndDryRun(t *testing.T) {
	p := newPair(t, 15, 17)
	var names []string
	for i := range 12 {
		names = append(names, fmt.Sprintf(`"public"."t%02d"`, i))
		pgtest.Exec(t, p.src, "meta", fmt.Sprintf("CREATE TABLE t%02d (id serial PRIMARY KEY, v text); INSERT INTO t%02d (v) SELECT 'x' FROM generate_series(1, 50)", i, i))
	}
	pgtest.Exec(t, p.src, "meta", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator")

	nothingMade := func(when string) {
		t.Helper()
		if left := p.objectsLeft(); len(left) > 0 {
			t.Errorf("%s left %v", when, left)
		}
		if n := p.targetTables(); n != 0 {
			t.Errorf("%s created %d table(s) on the target", when, n)
		}
	}

	r := p.must("migrate", "--dry-run")
	order := []string{"check: ready", "--   TABLE public t00", "CREATE TABLE public.t00 (", `CREATE PUBLICATION "pub_pg_meta_meta" FOR TABLE ` + strings.Join(names, ", "),
		"CREATE_REPLICATION_SLOT sub_pg_meta_meta LOGICAL pgoutput EXPORT_SNAPSHOT", `CREATE SUBSCRIPTION "sub_pg_meta_meta"`, "ENABLE", "would wait until every table replicates"}
	at := 0
	for _, want := range order {
		i := strings.Index(r.stdout[at:], want)
		if i < 0 {
			t.Fatalf("migrate --dry-run: %q missing, or out of order: %s", want, r)
		}
		at += i
	}
	nothingMade("migrate --dry-run")

	r = p.must("migrate", "--dry-run", "--json")
	o := parseOutcome(t, r)
	if !o.DryRun || !o.OK || o.Command != "migrate" || len(o.Steps) != 5 {
		t.Fatalf("migrate --dry-run --json: %+v", o)
	}
	if d := o.step(t, "create-pub"); d["tables"] != float64(12) {
		t.Errorf("migrate --dry-run --json create-pub: %v", d)
	}
	if len(o.Statements) == 0 || !strings.HasPrefix(o.Statements[0].SQL, "CREATE PUBLICATION") || !strings.Contains(o.Statements[0].SQL, names[11]) {
		t.Errorf("migrate --dry-run --json statements: %+v", o.Statements)
	}
	nothingMade("migrate --dry-run --json")

	// Step by step, each with --json.
	o = parseOutcome(t, p.must("copy-schema", "--section", "pre-data", "--json"))
	if d := o.step(t, "copy-schema"); d["restored"].(float64) < 12 {
		t.Errorf("copy-schema --json: %v", d)
	}
	r = p.must("create-pub", "--json")
	o = parseOutcome(t, r)
	if d := o.step(t, "create-pub"); d["created"] != true || d["tables"] != float64(12) || d["publication"] != "pub_pg_meta_meta" {
		t.Errorf("create-pub --json: %v", d)
	}
	// The log names a few tables; the statement run had them all.
	if !strings.Contains(r.stderr, `FOR TABLE "public"."t00", "public"."t01", "public"."t02" and 9 more WITH`) || strings.Contains(r.stderr, names[11]) {
		t.Errorf("create-pub's log line: %s", r.stderr)
	}
	if len(o.Statements) != 1 || !strings.Contains(o.Statements[0].SQL, names[11]) {
		t.Errorf("create-pub --json statements: %+v", o.Statements)
	}
	o = parseOutcome(t, p.must("create-sub", "--json"))
	if d := o.step(t, "create-sub"); d["created"] != true || d["tables"] != float64(12) || d["rows"] != float64(600) {
		t.Errorf("create-sub --json: %v", d)
	}
	o = parseOutcome(t, p.must("create-sub", "--json"))
	if d := o.step(t, "create-sub"); d["created"] != false || d["enabled"] != false || d["refreshed"] != false {
		t.Errorf("create-sub --json, rerun: %v", d)
	}
	p.waitLagZero()
	o = parseOutcome(t, p.must("copy-seq", "--json"))
	if d := o.step(t, "copy-seq"); d["sequences"] != float64(12) {
		t.Errorf("copy-seq --json: %v", d)
	}
	o = parseOutcome(t, p.must("next-seq", "--json", "100"))
	if d := o.step(t, "next-seq"); d["sequences"] != float64(12) || d["advanced_by"] != float64(100) {
		t.Errorf("next-seq --json: %v", d)
	}
	o = parseOutcome(t, p.must("check-replica-identity-solution", "--json"))
	if d := o.step(t, "check-replica-identity-solution"); len(d["tables"].([]any)) != 0 || !o.DryRun {
		t.Errorf("check-replica-identity-solution --json: %+v", o)
	}
	// (cleanup --dry-run fails while the slot is active: issue 12 point 8,
	// another change.)
	o = parseOutcome(t, p.must("remove-sub", "--dry-run", "--json"))
	if !o.DryRun || len(o.Statements) != 2 || o.Statements[1].SQL != `DROP SUBSCRIPTION IF EXISTS "sub_pg_meta_meta"` {
		t.Errorf("remove-sub --dry-run --json: %+v", o)
	}
	o = parseOutcome(t, p.must("cleanup", "--json"))
	if d := o.step(t, "cleanup"); d["subscription_dropped"] != true || d["publication_dropped"] != true {
		t.Errorf("cleanup --json: %v", d)
	}
	if left := p.objectsLeft(); len(left) > 0 {
		t.Errorf("cleanup left %v", left)
	}

	// migrate --json, for real, into a second database.
	pgtest.CreateDB(t, p.dst, "two")
	two := strings.NewReplacer("dst_db: test", "dst_db: two", "migration_context_dir: ", "migration_context_dir: "+p.dir+"/two-").Replace(readFile(t, p.config))
	cfg := filepath.Join(p.dir, "two.yml")
	if err := os.WriteFile(cfg, []byte(two), 0o644); err != nil {
		t.Fatal(err)
	}
	r = pgmove(t, "-c", cfg, "migrate", "--json")
	o = parseOutcome(t, r)
	if r.code != 0 || !o.OK || o.DryRun {
		t.Fatalf("migrate --json: %s", r)
	}
	for _, st := range []string{"check", "copy-schema", "create-pub", "create-sub", "catch-up"} {
		o.step(t, st)
	}
	if d := o.step(t, "create-sub"); d["rows"] != float64(600) {
		t.Errorf("migrate --json create-sub: %v", d)
	}
	if r := pgmove(t, "-c", cfg, "cleanup"); r.code != 0 {
		t.Fatalf("cleanup: %s", r)
	}
}
