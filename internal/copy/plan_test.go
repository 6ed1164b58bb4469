package copy

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
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

// TestStatementRefused: a refused statement (class 42) stops the retries;
// data errors, lost sessions and other failures do not.
func TestStatementRefused(t *testing.T) {
	for code, want := range map[string]bool{
		"42601": true, // syntax error: COPY t () before the fix
		"42703": true, // undefined column
		"42501": true, // insufficient privilege
		"22P02": false,
		"57P01": false,
		"08006": false,
		"":      false,
	} {
		var err error = errors.New("not from the server")
		if code != "" {
			err = cluster.Wrap(config.Target, "copy t in", &pgconn.PgError{Code: code, Message: "x"})
		}
		if got := statementRefused(err); got != want {
			t.Errorf("SQLSTATE %q: statementRefused %t, want %t", code, got, want)
		}
	}
}
