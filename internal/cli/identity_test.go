package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/check"
	"github.com/pgmove/pgmove/internal/pgtest"
)

// TestCheckFullWithoutEquality: with REPLICA IDENTITY FULL and no primary
// key, the target finds a changed row by comparing every column, which
// fails for a type without an equality operator (json, point, a domain over
// json, an array of json): check names those columns and the fix, and
// leaves comparable types (jsonb, int[]) and generated columns (the apply
// does not compare them) out. A table that has no identity
// at all is told that FULL would not do either.
func TestCheckFullWithoutEquality(t *testing.T) {
	p := newPair(t, 15, 17)
	pgtest.Exec(t, p.src, "meta", `
		CREATE DOMAIN jdoc AS json;
		CREATE TABLE ev (id int, doc json, pt point, tags int[], d jsonb, dj jdoc, docs json[],
			g json GENERATED ALWAYS AS (('{"id":' || id::text || '}')::json) STORED);
		ALTER TABLE ev REPLICA IDENTITY FULL;
		CREATE TABLE ev_keyed (id int NOT NULL, doc json);
		CREATE UNIQUE INDEX ev_keyed_id ON ev_keyed (id);
		ALTER TABLE ev_keyed REPLICA IDENTITY FULL;
		CREATE TABLE ev_fine (id int, d jsonb, tags text[]);
		ALTER TABLE ev_fine REPLICA IDENTITY FULL;
		CREATE TABLE ev_bare (at timestamptz, doc json);
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
	r := p.run("check", "--json")
	var rep struct{ Findings []check.Finding }
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("check --json: %v: %s", err, r)
	}
	found := map[string]check.Finding{}
	for _, f := range rep.Findings {
		if strings.HasPrefix(f.Code, "replica_identity") {
			found[f.Object] = f
		}
	}
	ev := found[`public.ev`]
	if ev.Severity != check.Warning || ev.Code != "replica_identity_full" {
		t.Fatalf("ev: %+v", ev)
	}
	for _, want := range []string{`doc (json)`, `pt (point)`, `dj (jdoc)`, `docs (json[])`, "stops the subscription", "primary key"} {
		if !strings.Contains(ev.Message+ev.Fix, want) {
			t.Errorf("ev: %q missing from %+v", want, ev)
		}
	}
	for _, comparable := range []string{"tags", `d (jsonb)`, "id (integer)", "g (json)"} {
		if strings.Contains(ev.Message, comparable) {
			t.Errorf("ev: %q named: %s", comparable, ev.Message)
		}
	}
	if k := found[`public.ev_keyed`]; k.Severity != check.Warning || k.Fix != `ALTER TABLE "public"."ev_keyed" REPLICA IDENTITY USING INDEX "ev_keyed_id";` {
		t.Errorf("ev_keyed: %+v", k)
	}
	if f := found[`public.ev_fine`]; f.Severity != check.Info {
		t.Errorf("ev_fine, comparable columns only: %+v", f)
	}
	if b := found[`public.ev_bare`]; b.Severity != check.Error || !strings.Contains(b.Detail, "FULL works for inserts only") || !strings.Contains(b.Detail, "doc (json)") {
		t.Errorf("ev_bare: %+v", b)
	}
	if r.code != ExitProblems {
		t.Errorf("check: exit %d, want %d (ev_bare has no identity)", r.code, ExitProblems)
	}
}
