package compare

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/catalog"
)

func TestRowHash(t *testing.T) {
	src := []Column{{Name: "id", TypeOID: oidInt4}, {Name: "v", TypeOID: 1700}, {Name: "moved", TypeOID: oidInt4}, {Name: `we"ird`, TypeOID: oidText}}
	dst := []Column{{Name: "id", TypeOID: oidInt4}, {Name: "v", TypeOID: 1700}, {Name: "moved", TypeOID: oidInt8}, {Name: `we"ird`, TypeOID: oidText}}
	got := rowHash(src, dst)
	for _, want := range []string{
		`COALESCE(pg_catalog.hashint4extended(t."id", 1), pg_catalog.hashtextextended('pgmove:null', 1))`,
		`pg_catalog.hashtextextended(t."v"::text COLLATE "C", 2)`,     // numeric: text
		`pg_catalog.hashtextextended(t."moved"::text COLLATE "C", 3)`, // types differ: text on both sides
		`pg_catalog.hashtextextended(t."we""ird" COLLATE "C", 4)`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rowHash: no %s in\n%s", want, got)
		}
	}
	if n := strings.Count(got, " # "); n != 3 {
		t.Errorf("rowHash folds %d XORs, want 3: %s", n, got)
	}
}

func TestWhere(t *testing.T) {
	j := &job{key: &Key{Columns: []string{"a", "b"}}}
	w, args := j.where(span{lo: []string{"1", "x"}, hi: []string{"2", "y'"}}, []string{"integer", "text"}, 0)
	want := ` WHERE (t."a", t."b") >= (CAST($1::text AS integer), CAST($2::text AS text)) AND (t."a", t."b") < (CAST($3::text AS integer), CAST($4::text AS text))`
	if w != want || len(args) != 4 || args[3] != "y'" {
		t.Errorf("where:\n got %s %v\nwant %s", w, args, want)
	}
	j = &job{key: &Key{Columns: []string{"id"}}}
	if w, _ := j.where(span{hi: []string{"5"}}, []string{"bigint"}, 0); w != ` WHERE t."id" < CAST($1::text AS bigint)` {
		t.Errorf("where, one column, open below: %s", w)
	}
	if w, _ := j.where(span{}, []string{"bigint"}, 0); w != "" {
		t.Errorf("where of the whole table: %q", w)
	}
}

func TestRepairStatements(t *testing.T) {
	j := &job{
		s:     &catalog.Table{Schema: "public", Name: "t"},
		d:     &catalog.Table{Schema: "public", Name: "t"},
		key:   &Key{Columns: []string{"id"}},
		scols: []Column{{Name: "id", Type: "integer"}, {Name: "v", Type: "text"}, {Name: "g", Type: "integer", Generated: true}, {Name: "n", Type: "numeric"}},
		dcols: []Column{{Name: "id", Type: "integer"}, {Name: "v", Type: "text"}, {Name: "g", Type: "integer", Generated: true}, {Name: "n", Type: "numeric"}},
	}
	j.dtypes = []string{"integer"}
	str := func(s string) *string { return &s }
	vals := []*string{str("7"), str(`it's \ "q"`), str("14"), nil}
	cases := []struct {
		row  Row
		want string
	}{
		{Row{Kind: Missing, keyText: []string{"7"}, values: vals, j: j},
			`INSERT INTO "public"."t" ("id", "v", "n") VALUES ('7'::integer, 'it''s \ "q"'::text, NULL) ON CONFLICT ("id") DO UPDATE SET "v" = EXCLUDED."v", "n" = EXCLUDED."n"`},
		{Row{Kind: Changed, keyText: []string{"7"}, values: vals, Columns: []string{"v"}, j: j},
			`UPDATE "public"."t" SET "v" = 'it''s \ "q"'::text WHERE "id" = '7'::integer`},
		{Row{Kind: Extra, keyText: []string{"7"}, j: j}, `DELETE FROM "public"."t" WHERE "id" = '7'::integer`},
	}
	for _, c := range cases {
		if got := c.row.repair(); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.row.Kind, got, c.want)
		}
	}
}

func TestKeyJSON(t *testing.T) {
	k := KeyValue{Names: []string{"a", "B c"}, Values: []json.RawMessage{json.RawMessage("42"), json.RawMessage(`"x"`)}}
	b, err := json.Marshal(Row{Table: "public.t", Key: k, Kind: Changed, Columns: []string{"v"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"table":"public.t","key":{"a":42,"B c":"x"},"kind":"changed","columns":["v"]}`; string(b) != want {
		t.Errorf("row JSON:\n got %s\nwant %s", b, want)
	}
	if got := k.String(); got != `(a, "B c")=(42, "x")` {
		t.Errorf("key text: %s", got)
	}
}
