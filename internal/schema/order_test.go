package schema

import (
	"fmt"
	"strings"
	"testing"
)

func TestPlainOrder(t *testing.T) {
	// a_star (id, class, aa, a); b_star declared (bb) after a_star had
	// (id, class, aa), then a_star gained a.
	cols := map[uint32][]column{
		1: {{"id", 0}, {"class", 0}, {"aa", 0}, {"a", 0}},
		2: {{"id", 1}, {"class", 1}, {"aa", 1}, {"bb", 0}, {"a", 1}},
		3: {{"id", 1}, {"class", 1}, {"aa", 1}, {"a", 1}, {"c", 0}},
	}
	for _, c := range []struct {
		child   uint32
		parents []uint32
		want    string
	}{
		{2, []uint32{1}, "id,class,aa,a,bb"},
		{3, []uint32{1}, "id,class,aa,a,c"},
	} {
		got := strings.Join(plainOrder(cols[c.child], c.parents, cols), ",")
		if got != c.want {
			t.Errorf("child %d: %s, want %s", c.child, got, c.want)
		}
	}
	// d_star inherits b_star (source order) and c_star: merged names keep
	// their first place, its own column comes last.
	cols[4] = []column{{"id", 2}, {"class", 2}, {"aa", 2}, {"bb", 1}, {"a", 2}, {"c", 1}, {"d", 0}}
	if got := strings.Join(plainOrder(cols[4], []uint32{2, 3}, cols), ","); got != "id,class,aa,bb,a,c,d" {
		t.Errorf("d_star: %s", got)
	}
}

func TestWithoutBinaryUpgrade(t *testing.T) {
	in := `SELECT pg_catalog.binary_upgrade_set_next_pg_type_oid('16390'::pg_catalog.oid);
CREATE TABLE public.b_star (
    id integer,
    bb text,
    a integer DEFAULT 1 NOT NULL
);
SELECT pg_catalog.binary_upgrade_set_missing_value('public.b_star'::pg_catalog.regclass,'a','{1}');
UPDATE pg_catalog.pg_attribute
SET attislocal = false
WHERE attname = 'a'
  AND attrelid = 'public.b_star'::pg_catalog.regclass;
ALTER TABLE ONLY public.b_star INHERIT public.a_star;
UPDATE pg_catalog.pg_class
SET relfrozenxid = '726', relminmxid = '1'
WHERE oid = 'public.b_star'::pg_catalog.regclass;
UPDATE pg_catalog.pg_class
SET relfrozenxid = '726', relminmxid = '1'
WHERE oid = '16391';
ALTER TABLE public.b_star OWNER TO postgres;
`
	want := `CREATE TABLE public.b_star (
    id integer,
    bb text,
    a integer DEFAULT 1 NOT NULL
);
UPDATE pg_catalog.pg_attribute
SET attislocal = false
WHERE attname = 'a'
  AND attrelid = 'public.b_star'::pg_catalog.regclass;
ALTER TABLE ONLY public.b_star INHERIT public.a_star;
ALTER TABLE public.b_star OWNER TO postgres;
`
	if got := withoutBinaryUpgrade(in); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestSplitScript(t *testing.T) {
	script := `\restrict abc
SET statement_timeout = 0;

--
-- TOC entry 215 (class 1259 OID 16388)
-- Dependencies: 214
-- Name: b_star; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public.b_star (bb text) INHERITS (public.a_star);

--
-- TOC entry 3142 (class 2604 OID 16402)
-- Name: b_star a; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.b_star ALTER COLUMN a SET DEFAULT 1;
\unrestrict abc
`
	cs, err := splitScript([]byte(script))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 {
		t.Fatalf("%d chunks: %+v", len(cs), cs)
	}
	if cs[0].id != 0 || strings.Contains(cs[0].text, `\restrict`) || !strings.Contains(cs[0].text, "SET statement_timeout") {
		t.Errorf("header: %+v", cs[0])
	}
	if c := cs[1]; c.id != 215 || c.class != 1259 || c.oid != 16388 || c.name != "b_star; Type: TABLE; Schema: public" || !strings.Contains(c.text, "INHERITS") {
		t.Errorf("table: %+v", c)
	}
	if c := cs[2]; c.id != 3142 || c.class != 2604 || strings.Contains(c.text, `\unrestrict`) {
		t.Errorf("default: %+v", c)
	}
	if _, err := splitScript([]byte("SET a = 1;\n\\connect other\n")); err == nil || !strings.Contains(err.Error(), `\\connect other`) {
		t.Errorf("a psql command other than \\restrict: %v", err)
	}
}

func TestPlanPreData(t *testing.T) {
	// 1 schema, 2 type; a (3) is inherited by b (4); c (5) uses the type
	// and has a comment (6); d (7) owns a sequence (8); e (9) is plain.
	type ent struct {
		id   int
		desc string
		cat  uint32
		deps []int
	}
	ents := []ent{{1, "SCHEMA", 2615, nil}, {2, "TYPE", 1247, []int{1}}, {3, "TABLE", 1259, []int{1}}, {4, "TABLE", 1259, []int{3}},
		{5, "TABLE", 1259, []int{2}}, {6, "COMMENT", 0, []int{5}}, {7, "TABLE", 1259, []int{1}}, {8, "SEQUENCE OWNED BY", 0, []int{7}},
		{9, "TABLE", 1259, []int{1}}}
	var entries []Entry
	chunks := []chunk{{}}
	for _, e := range ents {
		entries = append(entries, Entry{ID: e.id, Desc: e.desc, CatalogOID: e.cat, ObjectOID: uint32(100 + e.id)})
		class := e.cat
		chunks = append(chunks, chunk{id: e.id, deps: e.deps, class: class, oid: uint32(100 + e.id)})
	}
	p := planPreData(entries, chunks, func(Entry) bool { return true }, RestoreOptions{Jobs: 2})
	ids := func(cs []chunk) string {
		var s []string
		for _, c := range cs {
			s = append(s, fmt.Sprint(c.id))
		}
		return strings.Join(s, ",")
	}
	if got := ids(p.prefix); got != "1,2" {
		t.Errorf("prefix %s", got)
	}
	if got := ids(p.sessions[0]); got != "3,4,7,8,5,6" {
		t.Errorf("session 0 %s", got)
	}
	if got := ids(p.sessions[1]); got != "9" {
		t.Errorf("session 1 %s", got)
	}
	if p.leaves != 2 {
		t.Errorf("%d leaves", p.leaves)
	}
	// A table restored from replacement SQL stays in order.
	p = planPreData(entries, chunks, func(Entry) bool { return true }, RestoreOptions{Jobs: 2, Replace: map[uint32]string{109: "..."}})
	if got := ids(p.sessions[0]); got != "3,4,7,8,9,5,6" || p.leaves != 1 {
		t.Errorf("with e replaced: session 0 %s, %d leaves", got, p.leaves)
	}
}
