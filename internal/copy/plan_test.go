package copy

import (
	"testing"

	"github.com/pgmove/pgmove/internal/catalog"
)

// TestCopyStatements pins the COPY statements of both sides, with and
// without columns to copy: "COPY t ()" is a syntax error, "SELECT FROM t"
// is not.
func TestCopyStatements(t *testing.T) {
	src := &catalog.Table{Schema: "public", Name: "zerocol"}
	target := catalog.QualifiedName{Schema: "public", Name: "zerocol"}
	rng := Chunk{Where: "ctid >= '(0,0)'::tid"}
	for _, c := range []struct {
		cols                   []string
		out, outRange, in, frz string
	}{
		{nil,
			`COPY "public"."zerocol" TO STDOUT (FORMAT binary)`,
			`COPY (SELECT  FROM ONLY "public"."zerocol" WHERE ctid >= '(0,0)'::tid) TO STDOUT (FORMAT binary)`,
			`COPY "public"."zerocol" FROM STDIN (FORMAT binary)`,
			`COPY "public"."zerocol" FROM STDIN (FORMAT text, FREEZE)`},
		{[]string{`"a"`, `"b"`},
			`COPY "public"."zerocol" ("a", "b") TO STDOUT (FORMAT binary)`,
			`COPY (SELECT "a", "b" FROM ONLY "public"."zerocol" WHERE ctid >= '(0,0)'::tid) TO STDOUT (FORMAT binary)`,
			`COPY "public"."zerocol" ("a", "b") FROM STDIN (FORMAT binary)`,
			`COPY "public"."zerocol" ("a", "b") FROM STDIN (FORMAT text, FREEZE)`},
	} {
		tb := &Table{Src: src, Target: target, Columns: c.cols}
		for got, want := range map[string]string{
			tb.copyOut(Chunk{}, true): c.out,
			tb.copyOut(rng, true):     c.outRange,
			tb.copyIn(true, false):    c.in,
			tb.copyIn(false, true):    c.frz,
		} {
			if got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		}
	}
}
