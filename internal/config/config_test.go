package config

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseSeedConfig(t *testing.T) {
	// The seed's own example, misspelling included.
	yml := `
src_cls: pg-meta                       # src cluster name
src_db: meta                           # src database name
src_ip: 10.10.10.10                    # ip address of src cluster primary
src_list: [ ]                          # ip address list of src cluster members (non-primary)
dst_cls: pg-test                       # dst cluster name
dst_db: test                           # dst database name
dst_ip: 10.10.10.11                    # dst cluster leader ip addressh
dst_list: [ 10.10.10.12, 10.10.10.13 ] # dst cluster members (non-primary)
dst_dns: pg-test                       # dst cluster dns records
dst_vip: 10.10.10.3                    # dst cluster vip records
pg_admin_username: dbuser_dba          # superuser @ both side
pg_replicatoin_username: replicator    # repl user @ src to be used
migration_context_dir: /var/tmp/migration
`
	f, err := Parse("migration.yml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Resolve(f, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ got, want string }{
		{m.Src.ConnString(), "host=10.10.10.10 dbname=meta user=dbuser_dba"},
		{m.Dst.ConnString(), "host=10.10.10.11 dbname=test user=dbuser_dba"},
		{m.SubConn.String(), "host=10.10.10.10 dbname=meta user=replicator"},
		{m.PubName, "pub_pg_meta_meta"},
		{m.SubName, "sub_pg_meta_meta"},
		{m.SlotName, "sub_pg_meta_meta"},
		{m.ContextDir, "/var/tmp/migration/pg-meta.meta"},
		{m.ReplUser, "replicator"},
		{strings.Join(m.DstList, ","), "10.10.10.12,10.10.10.13"},
		{m.DstVIP, "10.10.10.3"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestURLsOverrideParts(t *testing.T) {
	f, err := Parse("m.yml", []byte("src_ip: 10.0.0.1\nsrc_db: meta\ndst_url: postgres://dba@h2:6432/test?sslmode=require\nsub_conn: host=pub.internal dbname=meta user=repl\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Resolve(f, Overrides{Src: "postgres://dba@h1:5433/meta2"})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Src.ConnString(); got != "host=h1 port=5433 dbname=meta2 user=dba" {
		t.Errorf("src: %q", got)
	}
	if got := m.Dst.ConnString(); got != "host=h2 port=6432 dbname=test user=dba sslmode=require" {
		t.Errorf("dst: %q", got)
	}
	if m.ReplUser != "repl" || m.SubConn["host"] != "pub.internal" {
		t.Errorf("sub_conn: %v %v", m.ReplUser, m.SubConn)
	}
	if m.Src.Cluster != "h1-5433" || m.PubName != "pub_h1_5433_meta2" {
		t.Errorf("derived names: %q %q", m.Src.Cluster, m.PubName)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name, yml string
		o         Overrides
		want      string
	}{
		{"malformed", "src_ip: [1\n", Overrides{}, "m.yml: line 1: did not find expected"},
		{"unknown key", "src_ip: 1.2.3.4\nsrc_hots: x\n", Overrides{}, `m.yml:2: unknown key "src_hots"; did you mean`},
		{"repeated", "src_ip: a\nsrc_ip: b\n", Overrides{}, `m.yml:2: key "src_ip" repeated (first at line 1)`},
		{"wrong type", "src_port: five\n", Overrides{}, `m.yml:1: src_port: expected a number, found "five"`},
		{"not a mapping", "- a\n- b\n", Overrides{}, "m.yml:1: expected a mapping"},
		{"no source", "dst_ip: h\ndst_db: d\n", Overrides{}, "source: no connection given; pass --src"},
		{"no target db", "src_ip: h\nsrc_db: d\ndst_ip: h2\n", Overrides{}, "target: no database named; set dst_db"},
		{"no db in --dst", "src_ip: h\nsrc_db: d\n", Overrides{Dst: "postgres://u@h2:5432"}, "target: no database named in --dst; add /dbname to it"},
		{"password in flag", "", Overrides{Src: "postgres://u:secret@h/db", Dst: "postgres://u@h/d"}, "source: --src holds a password"},
		{"password in yaml url", "src_url: 'host=h dbname=d password=secret'\ndst_url: postgres://h/d\n", Overrides{}, "source: src_url holds a password"},
		{"password in sub_conn", "src_ip: h\nsrc_db: d\ndst_ip: h\ndst_db: d\nsub_conn: host=h password=x\n", Overrides{}, "sub_conn holds a password"},
		{"bad pattern", "src_ip: h\nsrc_db: d\ndst_ip: h\ndst_db: d\ninclude: ['a b']\n", Overrides{}, `include "a b": unquoted space`},
		{"password in pgbouncer", "src_ip: h\nsrc_db: d\ndst_ip: h\ndst_db: d\npgbouncer: [ 'postgres://admin:secret@pgb:6432/pgbouncer' ]\n", Overrides{}, "config: pgbouncer: the URL of console pgb:6432 holds a password; remove it"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse("m.yml", []byte(c.yml))
			if err == nil {
				_, err = Resolve(f, c.o)
			}
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q lacks %q", err, c.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error shows the password: %q", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestConninfoRoundTrip(t *testing.T) {
	cases := map[string]string{
		"host=h port=5 dbname=d user=u":                              "host=h port=5 dbname=d user=u",
		"dbname='my db' user=u options='-c a=b'":                     "dbname='my db' user=u options='-c a=b'",
		`password='it\'s' host=h`:                                    "host=h password=********",
		"postgres://u:p%40ss@h1:5432,h2:5433/db?sslmode=verify-full": "host=h1,h2 port=5432,5433 dbname=db user=u password=******** sslmode=verify-full",
		"postgresql://[::1]:5432/db":                                 "host=::1 port=5432 dbname=db",
	}
	for in, want := range cases {
		ci, err := ParseConninfo(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got := ci.Redacted(); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
		again, err := ParseConninfo(ci.String())
		if err != nil || again.String() != ci.String() {
			t.Errorf("%q does not round-trip: %q %v", in, ci.String(), err)
		}
	}
	if got := Redact("postgres://u:secret@h/db"); strings.Contains(got, "secret") {
		t.Errorf("Redact left the password: %q", got)
	}
	if _, err := ParseConninfo("host='unterminated"); err == nil {
		t.Error("unterminated quote accepted")
	}
}

func TestPatterns(t *testing.T) {
	cases := []struct {
		pattern, schema, table string
		match                  bool
	}{
		{"public", "public", "t", true},
		{"public.t*", "public", "tab", true},
		{"public.t*", "public", "x", false},
		{"*.audit_?", "s", "audit_1", true},
		{"Sales.Orders", "sales", "orders", true}, // unquoted folds to lower case
		{"Sales.Orders", "Sales", "Orders", false},
		{`"Sales"."Orders"`, "Sales", "Orders", true},
		{`"My ""Schema"""."a.b"`, `My "Schema"`, "a.b", true},
		{`"x*"`, "x*", "t", true},
		{`"x*"`, "xy", "t", false},
		{"ü*", "über", "t", true},
		{"*a*a*a*a*a*a*b", "s", "t", false},
	}
	for _, c := range cases {
		p, err := ParsePattern(c.pattern)
		if err != nil {
			t.Fatalf("%q: %v", c.pattern, err)
		}
		if got := p.Match(c.schema, c.table); got != c.match {
			t.Errorf("%q on %q.%q: got %v", c.pattern, c.schema, c.table, got)
		}
	}
	for _, bad := range []string{"", "a.b.c", `"open`, ".t", "s.", "a b"} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseConninfo(f *testing.F) {
	for _, s := range []string{"host=h dbname=d", "postgres://u:p@h:1/d?x=y", "a='b\\'c'", "postgresql://[::1]/", "="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ci, err := ParseConninfo(s)
		if err != nil {
			return
		}
		if pw := ci["password"]; pw != "" && len(pw) > 3 && strings.Contains(ci.Redacted(), pw) && !strings.Contains("********", pw) {
			t.Fatalf("Redacted shows the password of %q", s)
		}
		again, err := ParseConninfo(ci.String())
		if err != nil {
			t.Fatalf("String() of %q does not parse: %q: %v", s, ci.String(), err)
		}
		for k, v := range ci {
			if again[k] != v {
				t.Fatalf("%q: key %q: %q became %q", s, k, v, again[k])
			}
		}
	})
}

func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"public", "a.b", `"x""y".*`, "*.*", "?"} {
		f.Add(s, "schema", "table")
	}
	f.Fuzz(func(t *testing.T, pattern, schema, table string) {
		p, err := ParsePattern(pattern)
		if err != nil {
			return
		}
		p.Match(schema, table) // must not panic or hang
	})
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("src_ip: a\nsrc_db: b\n"))
	f.Add([]byte("include: [a, b]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := Parse("m.yml", data); err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("multi-line error: %q", err)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512MB", "1GB", "64kB", "0", "1.5G", " 3 TB ", "NaN", "Inf", "1e30GB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d, a negative size", s, n)
		}
		if again, err := ParseSize(strconv.FormatInt(n, 10)); err != nil || again != n {
			t.Fatalf("ParseSize(%q) = %d, which reads back as %d (%v)", s, n, again, err)
		}
	})
}

// FuzzResolve: any --src/--dst a user types, and any seed-style file,
// resolve or fail with one line that never shows the password given.
func FuzzResolve(f *testing.F) {
	f.Add("postgres://u:secret1@h:5432/meta", "postgres://u@h2/test", []byte("src_cls: a\n"))
	f.Add("host=h dbname=d password=hunter22", "", []byte("src_ip: 10.0.0.1\nsrc_db: meta\ndst_ip: 10.0.0.2\ndst_db: test\n"))
	f.Add("", "", []byte("src_ip: a\nsrc_port: -1\n"))
	f.Fuzz(func(t *testing.T, src, dst string, yml []byte) {
		file, err := Parse("m.yml", yml)
		if err != nil {
			file = nil
		}
		_, err = Resolve(file, Overrides{Src: src, Dst: dst})
		if err == nil {
			return
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") {
			t.Fatalf("multi-line error: %q", msg)
		}
		for _, s := range []string{src, dst} {
			if ci, perr := ParseConninfo(s); perr == nil && len(ci["password"]) >= 6 && strings.Contains(msg, ci["password"]) {
				t.Fatalf("the error shows the password of %q: %s", s, msg)
			}
		}
	})
}

// pgbouncer_ini is read relative to the config file, as
// migration_context_dir is, not to wherever pgmove runs.
func TestPgBouncerINIRelativeToConfig(t *testing.T) {
	for _, c := range []struct{ ini, config, want string }{
		{"pgbouncer.ini", "/etc/pgmove/migration.yml", "/etc/pgmove/pgbouncer.ini"},
		{"../pgb/pgbouncer.ini", "/etc/pgmove/migration.yml", "/etc/pgb/pgbouncer.ini"},
		{"/etc/pgbouncer/pgbouncer.ini", "/srv/m.yml", "/etc/pgbouncer/pgbouncer.ini"},
	} {
		f, err := Parse("m.yml", []byte("src_ip: h\nsrc_db: d\ndst_ip: h\ndst_db: d\npgbouncer_ini: "+c.ini+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := Resolve(f, Overrides{ConfigFile: c.config})
		if err != nil {
			t.Fatal(err)
		}
		if m.PgBouncerINI != c.want {
			t.Errorf("pgbouncer_ini %s in %s: %s, want %s", c.ini, c.config, m.PgBouncerINI, c.want)
		}
	}
}
