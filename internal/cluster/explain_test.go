package cluster

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgmove/pgmove/internal/config"
)

// TestExplainConnect: a connection error names what the user gave (the
// --dst URL, or the seed's keys) and says whether a server answered.
func TestExplainConnect(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	nodb := &pgconn.PgError{Severity: "FATAL", Code: "3D000", Message: `database "x" does not exist`}
	badpw := &pgconn.PgError{Severity: "FATAL", Code: "28P01", Message: "password authentication failed"}
	url := config.Endpoint{Side: config.Target, Conninfo: config.Conninfo{"host": "h2", "dbname": "x"}, DB: "x", From: "--dst"}
	seed := url
	seed.From = ""
	for _, c := range []struct {
		ep          config.Endpoint
		err         error
		problem     string
		want, never string
	}{
		{url, refused, Unreachable, "check the host and port in --dst and", "dst_ip"},
		{seed, refused, Unreachable, "check dst_ip/dst_port and", "--dst"},
		{url, nodb, NoDatabase, "set the database name in --dst to an existing database", "dst_db"},
		{seed, nodb, NoDatabase, "set dst_db to an existing database", "--dst"},
		{url, badpw, LoginFailed, "put the right password in ~/.pgpass", "pg_hba"},
	} {
		err := ExplainConnect(c.ep, "dba", c.err)
		if msg := err.Error(); !strings.HasPrefix(msg, "target: ") || !strings.Contains(msg, c.want) || strings.Contains(msg, c.never) {
			t.Errorf("%v from %q: %s; want %q, never %q", c.err, c.ep.From, msg, c.want, c.never)
		}
		if p := ConnectProblem(err); p != c.problem {
			t.Errorf("%v: problem %q, want %q", c.err, p, c.problem)
		}
	}
}

// TestAbbreviateSQL: a FOR TABLE list of 2,000 tables logs as a few names
// and a count; short lists, literals and the rest of the statement stay.
func TestAbbreviateSQL(t *testing.T) {
	var names []string
	for i := range 2000 {
		names = append(names, fmt.Sprintf(`"public"."t%d"`, i))
	}
	long := `CREATE PUBLICATION "p" FOR TABLE ` + strings.Join(names, ", ") + ` WITH (publish = 'insert')`
	got := AbbreviateSQL(long)
	want := `CREATE PUBLICATION "p" FOR TABLE "public"."t0", "public"."t1", "public"."t2" and 1997 more WITH (publish = 'insert')`
	if got != want {
		t.Errorf("got %s", got)
	}
	for _, same := range []string{
		`TRUNCATE "public"."a", "public"."b", "public"."c", "public"."d"`,
		`ALTER PUBLICATION "p" ADD TABLE "s"."a, b", "x""y"`,
		`SELECT 1`,
	} {
		if got := AbbreviateSQL(same); got != same {
			t.Errorf("AbbreviateSQL(%s) = %s", same, got)
		}
	}
	if got := AbbreviateSQL(`TRUNCATE "a", "b,c", "d", "e", "f""g", "h"`); got != `TRUNCATE "a", "b,c", "d" and 3 more` {
		t.Errorf("quoted commas: %s", got)
	}
}
