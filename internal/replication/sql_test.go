package replication

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestStatements checks the exact SQL pgmove sends, for odd names too.
func TestStatements(t *testing.T) {
	spec := SubscriptionSpec{Name: `sub "x"`, Publication: "pub_pg_meta_meta", Slot: "sub_pg_meta_meta",
		Conninfo: "host=h dbname=meta user=replicator password='it''s'", CopyData: true, CreateSlot: true, Enabled: true}
	spec13, spec16, spec16bin := spec, spec, spec
	spec13.SrcVersion, spec16.SrcVersion, spec16bin.SrcVersion, spec16bin.Binary = 130000, 160000, 160000, true
	stmts := []string{
		CreatePublicationSQL("pub_pg_meta_meta", []string{`"public"."t"`, `"Odd ""S"""."a b"`}, pubOptions(150000)),
		CreatePublicationSQL("pub", nil, pubOptions(120000)),
		AlterPublicationTablesSQL("pub", "ADD", []string{`"public"."t"`}),
		AlterPublicationSetSQL("pub", pubOptions(160000)),
		DropPublicationSQL(`pub"; DROP TABLE x; --`),
		CreateSubscriptionSQL(spec.Name, spec.Conninfo, []string{spec.Publication}, spec13.Options(170000)),
		CreateSubscriptionSQL(spec.Name, `host=h password=back\slash`, []string{spec.Publication}, spec16.Options(170000)),
		// Every choice stated: streaming off from a 13 source (18 would
		// default to parallel), binary and run_as_owner on a 16+ target.
		CreateSubscriptionSQL(spec.Name, "host=h", []string{spec.Publication}, spec13.Options(180000)),
		CreateSubscriptionSQL(spec.Name, "host=h", []string{spec.Publication}, spec16bin.Options(180000)),
		CreateSubscriptionSQL(spec.Name, "host=h", []string{spec.Publication}, spec13.Options(130000)),
		AlterSubscriptionSQL("sub", "REFRESH PUBLICATION WITH (copy_data = true)"),
		DetachSlotSQL("sub"),
		DropSubscriptionSQL("sub"),
		DropSlotSQL("sub_pg_meta_meta"),
	}
	got := strings.Join(stmts, ";\n") + ";\n"
	golden := filepath.Join("testdata", "statements.sql")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("statements differ from %s (go test -update rewrites it):\n%s", golden, got)
	}
}

func TestSubConninfoRedacts(t *testing.T) {
	m := &config.Migration{SubConn: config.Conninfo{"host": "127.0.0.1", "dbname": "meta", "user": "replicator"}}
	t.Setenv("PGPASSWORD", "pa ss'word")
	secret, shown := SubConninfo(m)
	if !strings.Contains(secret, `password='pa ss\'word'`) {
		t.Errorf("the target server would not get the password: %q", secret)
	}
	if strings.Contains(shown, "pa ss") || !strings.Contains(shown, "password=********") {
		t.Errorf("shown conninfo leaks or lacks the mask: %q", shown)
	}
	if !strings.Contains(secret, "statement_timeout=0") {
		t.Errorf("publisher timeouts not disabled: %q", secret)
	}
}

// TestPublicationSQLChunks: a publication of many tables is made by one
// string of statements of at most pubTablesPerStatement tables each, every
// table named exactly once.
func TestPublicationSQLChunks(t *testing.T) {
	var tables []string
	for i := range 2*pubTablesPerStatement + 1 {
		tables = append(tables, `"public".`+`"t`+strings.Repeat("x", i%3)+string(rune('a'+i%26))+`"`)
	}
	for _, tc := range []struct {
		sql   string
		first string
	}{
		{CreatePublicationSQL("pub", tables, pubOptions(150000)), "CREATE PUBLICATION"},
		{AlterPublicationTablesSQL("pub", "ADD", tables), "ALTER PUBLICATION"},
	} {
		stmts := strings.Split(tc.sql, ";\n")
		if len(stmts) != 3 || !strings.HasPrefix(stmts[0], tc.first) {
			t.Fatalf("want 3 statements, the first %s; got %d:\n%.300s", tc.first, len(stmts), tc.sql)
		}
		n := 0
		for i, s := range stmts {
			if i > 0 && !strings.HasPrefix(s, `ALTER PUBLICATION "pub" ADD TABLE `) {
				t.Errorf("statement %d: %.80s", i, s)
			}
			n += strings.Count(s, `"public".`)
		}
		if n != len(tables) {
			t.Errorf("%d tables named, want %d", n, len(tables))
		}
	}
	if !strings.Contains(CreatePublicationSQL("pub", tables, pubOptions(150000)), "WITH (") {
		t.Error("the options are lost")
	}
}
