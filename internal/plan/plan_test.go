package plan

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgmove/pgmove/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// fixtureYAML is the seed's example migration.yml.
const fixtureYAML = `src_cls: pg-meta
src_db: meta
src_ip: 10.10.10.10
src_list: [ ]
dst_cls: pg-test
dst_db: test
dst_ip: 10.10.10.11
dst_list: [ 10.10.10.12, 10.10.10.13 ]
dst_dns: pg-test
dst_vip: 10.10.10.3
pg_admin_username: dbuser_dba
pg_replicatoin_username: replicator
migration_context_dir: /home/dba/migration
pgbouncer: [ postgres://dbuser_dba@10.10.10.10:6432/pgbouncer ]
pgbouncer_ini: /etc/pgbouncer/pgbouncer.ini
`

func fixtureMigration(t *testing.T, yml string) *config.Migration {
	t.Helper()
	f, err := config.Parse("migration.yml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	m, err := config.Resolve(f, config.Overrides{ConfigFile: "migration.yml"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fixtureFacts is a source with tables lacking primary keys (one fixable by
// an index, one only by FULL), a partitioned table, special objects and
// findings, as plan would have gathered them for the default snapshot copy.
func fixtureFacts() *Facts {
	const mb = 1 << 20
	return &Facts{
		Format: FactsFormat, Written: time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC), Pgmove: "v0.1.0",
		Source: Endpoint{Display: "dbuser_dba@10.10.10.10:5432/meta", Version: "15.10 (Debian 15.10-1.pgdg120+1)", Reachable: true},
		Target: Endpoint{Display: "dbuser_dba@10.10.10.11:5432/test", Version: "17.2", Reachable: true},
		Tables: []Table{
			{Name: "public.events", Keys: "unique index events_uid_key", Bytes: 2 * mb, Identity: "default",
				Fix: `ALTER TABLE "public"."events" REPLICA IDENTITY USING INDEX "events_uid_key";`},
			{Name: "public.pgbench_accounts", Keys: "primary key", Bytes: 13 * mb, Identity: "default", OK: true},
			{Name: "public.pgbench_history", Keys: "none", Bytes: 5 * mb, Identity: "default",
				Fix: `ALTER TABLE "public"."pgbench_history" REPLICA IDENTITY FULL;  -- 5120 kB; or better, add a primary key`},
			{Name: `sales."Orders"`, Keys: "primary key", Bytes: 3 * mb, Identity: "default", OK: true},
			{Name: `sales."Orders_2024"`, Keys: "primary key", Bytes: 3 * mb, Identity: "default", OK: true},
		},
		Sequences: 3,
		Special: []Object{
			{Severity: "warning", Code: "large_objects", Message: "12 large object(s): not replicated; copy-seq copies them at the switch"},
			{Severity: "warning", Code: "materialized_view", Object: "public.daily_totals", Message: "materialized view: not replicated; copy-seq refreshes it on the target at the switch",
				Fix: `REFRESH MATERIALIZED VIEW "public"."daily_totals";  -- on the target, after the switch`},
			{Severity: "info", Code: "partitioned_table", Object: `sales."Orders"`, Message: "partitioned table with 1 partition(s): published through its root, so the target may partition it differently"},
			{Severity: "warning", Code: "unlogged_table", Object: "public.sessions", Message: "unlogged table: logical replication skips it; copy-seq copies its rows at the switch",
				Fix: `ALTER TABLE "public"."sessions" SET LOGGED;  -- to have it replicated instead (rewrites the table)`},
		},
		Findings: []Finding{
			{Severity: "error", Side: "source", Code: "replication_role", Object: "replicator", Message: `role "replicator" does not exist on the source`,
				Fix: "CREATE ROLE \"replicator\" LOGIN REPLICATION BYPASSRLS PASSWORD '<password>';\nGRANT SELECT ON ALL TABLES IN SCHEMA \"public\" TO \"replicator\";"},
			{Severity: "warning", Side: "source", Code: "long_transaction", Object: "4242", Message: "transaction of app open for 5400 s: creating the replication slot waits until it ends",
				Fix: "SELECT pg_terminate_backend(4242);  -- if it can be ended"},
		},
		SourceBytes: 23 * mb, LargestBytes: 13 * mb, SyncWorkers: 2,
		Copy: Snapshot, SplitLarger: 1 << 30, LargestWholeBytes: 13 * mb,
	}
}

func fixtureInput(t *testing.T) Input {
	return Input{M: fixtureMigration(t, fixtureYAML), Facts: fixtureFacts(), Pgmove: "/usr/local/bin/pgmove", HTML: true}
}

// nativeInput is the fixture with copy: native in migration.yml, and the
// capacity warning only PostgreSQL's table sync gives.
func nativeInput(t *testing.T) Input {
	in := fixtureInput(t)
	in.M = fixtureMigration(t, fixtureYAML+"copy: native\n")
	in.Facts.Copy = Native
	in.Facts.Findings[1] = Finding{Severity: "warning", Side: "source", Code: "max_replication_slots", Message: "max_replication_slots = 4 leaves 2 free (2 in use); the initial copy wants 3 to run 2 tables at once",
		Fix: "ALTER SYSTEM SET max_replication_slots = 7;  -- then restart the source"}
	return in
}

// TestPlanGolden checks every file of the fixture's plan against
// testdata/golden, and those of its copy: native variant that differ from
// it against testdata/golden/native.
func TestPlanGolden(t *testing.T) {
	base, err := Render(fixtureInput(t))
	if err != nil {
		t.Fatal(err)
	}
	native, err := Render(nativeInput(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("testdata", "golden")
	checkGolden(t, dir, base)
	same := map[string][]byte{}
	for _, f := range base {
		same[f.Name] = f.Data
	}
	var differ []File
	for _, f := range native {
		if !bytes.Equal(f.Data, same[f.Name]) {
			differ = append(differ, f)
		}
	}
	checkGolden(t, filepath.Join(dir, "native"), differ)
}

// checkGolden compares files with dir's golden files, or with -update
// rewrites them, and reports golden files no file matches.
func checkGolden(t *testing.T, dir string, files []File) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	names := map[string]bool{}
	for _, f := range files {
		names[f.Name+".golden"] = true
		path := filepath.Join(dir, f.Name+".golden")
		if *update {
			if err := os.WriteFile(path, f.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./internal/plan -update)", err)
		}
		if !bytes.Equal(f.Data, want) {
			t.Errorf("%s differs from %s (go test ./internal/plan -update rewrites it):\n%s", f.Name, path, firstDiff(string(want), string(f.Data)))
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() || names[e.Name()] {
			continue
		}
		if *update {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("stale golden file %s", filepath.Join(dir, e.Name()))
	}
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return "line " + strconv.Itoa(i+1) + "\n want: " + a + "\n  got: " + b
		}
	}
	return ""
}

// plan.json reads back as it was written.
func TestPlanFactsRoundTrip(t *testing.T) {
	in := fixtureInput(t)
	in.M = fixtureMigration(t, strings.Replace(fixtureYAML, "/home/dba/migration", t.TempDir(), 1))
	files, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(in.M.ContextDir, files); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFacts(in.M.ContextDir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in.Facts) {
		t.Errorf("plan.json reads back as\n%+v\nwant\n%+v", got, in.Facts)
	}
	if d := Diff(in.Facts, got); len(d) != 0 {
		t.Errorf("Diff of a plan with itself: %v", d)
	}
}

// The runbook states the facts a DBA needs, for this fixture.
func TestPlanRunbookContent(t *testing.T) {
	md, err := Runbook(fixtureInput(t))
	if err != nil {
		t.Fatal(err)
	}
	s := string(md)
	for _, want := range []string{
		"## Announcement", "### Operation notice", "### Notice to the business side", "## Preparations", "## Stock migration", "## Switch moment", "## Aftercare", "## Rollback",
		"host  meta  replicator  10.10.10.11/32  scram-sha-256",
		"host  meta  replicator  10.10.10.12/32  scram-sha-256",
		"host  meta  replicator  10.10.10.13/32  scram-sha-256",
		`CREATE ROLE "replicator" LOGIN REPLICATION BYPASSRLS PASSWORD '<password>';`,
		`GRANT SELECT ON ALL TABLES IN SCHEMA "sales" TO "replicator";`,
		`ALTER TABLE "public"."pgbench_history" REPLICA IDENTITY FULL;`,
		`ALTER TABLE "public"."events" REPLICA IDENTITY USING INDEX "events_uid_key";`,
		"public.sessions", "23 MB",
		"`./copy-schema`", "`./create-pub`", "`./create-sub`", "`./copy-seq`", "`./compare --checksum`", "`./remove-sub`", "`./cleanup`",
		"`pg-test`", "`10.10.10.3:5432`", "host=pg-test port=5432 dbname=test",
		"- [ ] ", "reverse replication", "host  meta  all", "reject",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("runbook lacks %q", want)
		}
	}
	// copy-seq carries large objects, unlogged tables' rows and
	// materialized views (internal/carry): the runbook says so, in the
	// special-object table and at the switch, and sends no one to
	// lo_export or to a hand-made copy.
	for _, want := range []string{
		"| `(database)` | large objects | 12 large object(s): not replicated; at the switch copy-seq makes the target's large objects the source's, by OID and content",
		"| `public.sessions` | unlogged table | unlogged table: not replicated; at the switch copy-seq empties it on the target and copies its rows from the source again | `ALTER TABLE \"public\".\"sessions\" SET LOGGED;",
		"| `public.daily_totals` | materialized view | materialized view: not replicated; at the switch copy-seq refreshes it on the target (when the source's is populated) | none |",
		"runs `pgmove copy-seq`): every sequence's value (3), set on the target in one transaction, never moving one back; large objects made the source's, by OID and content; unlogged tables emptied and their rows copied again; materialized views refreshed.",
		"Logical replication does not carry these; copy-seq just did. Check each on the target:",
		"- [ ] `public.sessions` (unlogged table): unlogged table: not replicated; at the switch copy-seq empties it",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("runbook lacks %q", want)
		}
	}
	for _, not := range []string{"lo_export", "pgmove does not copy", "carry them to the target"} {
		if strings.Contains(s, not) {
			t.Errorf("runbook says %q, but copy-seq carries them", not)
		}
	}
}

// A dst_list that names the leader too, and an admin who is also the
// replication user, are listed once each.
func TestPlanRunbookDedupes(t *testing.T) {
	in := fixtureInput(t)
	yml := strings.Replace(fixtureYAML, "dst_list: [ 10.10.10.12, 10.10.10.13 ]", "dst_list: [ 10.10.10.11, 10.10.10.11, 10.10.10.12 ]", 1)
	yml = strings.Replace(yml, "pg_replicatoin_username: replicator", "pg_replicatoin_username: dbuser_dba", 1)
	in.M = fixtureMigration(t, yml)
	md, err := Runbook(in)
	if err != nil {
		t.Fatal(err)
	}
	s := string(md)
	for _, want := range []string{
		"- Target hosts: the leader `10.10.10.11` and the replica(s) `10.10.10.12`, reachable",
		"AND usename NOT IN ('dbuser_dba')",
		"replica `10.10.10.12:5432` (dst_list): read-only traffic may go here",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("runbook lacks %q", want)
		}
	}
	for _, not := range []string{"`10.10.10.11:5432` (dst_list)", "10.10.10.11/32  scram-sha-256  # dst_list"} {
		if strings.Contains(s, not) {
			t.Errorf("runbook repeats the leader: %q", not)
		}
	}
	if n := strings.Count(s, "10.10.10.12/32"); n != 2 { // the subscription's line, and again at the switch
		t.Errorf("10.10.10.12 listed %d times in pg_hba lines, want 2", n)
	}
}

// The scripts and the runbook follow the copy migration.yml chose.
func TestPlanCopyMethod(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        Input
		want, not []string
	}{
		{"snapshot", fixtureInput(t),
			[]string{"runs `pgmove copy-schema --section pre-data`", "35 MB/s of COPY per job", "one job per core of the machine running pgmove", "restarting from a new slot", "drops its slot itself", "`./cleanup` drops it"},
			[]string{"per table-sync worker", "plus up to 2 more during the initial copy"}},
		{"native", nativeInput(t),
			[]string{"runs `pgmove copy-schema`,", "50 MB/s per table-sync worker", "plus up to 2 more during the initial copy"},
			[]string{"--section pre-data", "per job", "restarting from a new slot"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, err := Render(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, f := range files {
				got[f.Name] = string(f.Data)
			}
			for _, w := range tc.want {
				if !strings.Contains(got[RunbookFile], w) {
					t.Errorf("runbook lacks %q", w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got[RunbookFile], n) {
					t.Errorf("runbook holds %q", n)
				}
			}
			pre := strings.Contains(got["copy-schema"], "\nrun copy-schema --section pre-data ")
			if pre != (tc.name == "snapshot") {
				t.Errorf("copy-schema restores pre-data only: %t\n%s", pre, got["copy-schema"])
			}
		})
	}
	in := fixtureInput(t)
	in.M = fixtureMigration(t, fixtureYAML+"jobs: 8\n")
	in.Facts.Jobs = 8
	md, err := Runbook(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"8 jobs at once (jobs in migration.yml)", "binary COPY, with 8 jobs (jobs in migration.yml;"} {
		if !strings.Contains(string(md), w) {
			t.Errorf("runbook with jobs: 8 lacks %q", w)
		}
	}
}

func TestPlanSnapshotEstimate(t *testing.T) {
	for _, tc := range []struct {
		total, whole  int64
		jobs          int
		data, indexes string
	}{
		{0, 0, 2, "under a minute", "under a minute"},
		{10 << 30, 1 << 30, 2, "about 2 min", "under a minute"}, // 10 GB over 2 × 35 MB/s = 146 s
		{10 << 30, 8 << 30, 8, "about 4 min", "about 1 min"},    // the 8 GB table copied whole takes 234 s
		{1 << 40, 1 << 30, 2, "about 4.2 h", "about 1.4 h"},     // 1 TB over 70 MB/s
		{1 << 40, 1 << 30, 0, "about 8.3 h", "about 2.8 h"},     // no job count: one
	} {
		data, indexes := SnapshotEstimate(tc.total, tc.whole, tc.jobs)
		if got := RoughDuration(data); got != tc.data {
			t.Errorf("SnapshotEstimate(%d, %d, %d) copies in %s, want %s", tc.total, tc.whole, tc.jobs, got, tc.data)
		}
		if got := RoughDuration(indexes); got != tc.indexes {
			t.Errorf("SnapshotEstimate(%d, %d, %d) builds indexes in %s, want %s", tc.total, tc.whole, tc.jobs, got, tc.indexes)
		}
	}
	// The runbook's figure follows the copy migration.yml chose.
	f := fixtureFacts()
	f.SourceBytes, f.LargestBytes, f.LargestWholeBytes = 100<<30, 20<<30, 1<<30
	if got := RoughDuration(f.Estimate()); got != "about 33 min" {
		t.Errorf("snapshot estimate with the default jobs: %s", got) // (100 GB / 70 MB/s) × 4/3
	}
	f.Jobs = 4
	if got := RoughDuration(f.Estimate()); got != "about 16 min" {
		t.Errorf("snapshot estimate with jobs: 4: %s", got)
	}
	f.Copy = Native
	if got := RoughDuration(f.Estimate()); got != "about 17 min" {
		t.Errorf("native estimate: %s", got) // 100 GB / 100 MB/s; the 20 GB table alone 7 min
	}
}

func TestPlanCopyEstimate(t *testing.T) {
	for _, tc := range []struct {
		total, largest int64
		workers        int
		want           string
	}{
		{0, 0, 2, "under a minute"},
		{10 << 30, 1 << 30, 2, "about 2 min"},    // 10 GB over 2 × 50 MB/s = 102 s
		{10 << 30, 9 << 30, 4, "about 3 min"},    // the 9 GB table alone takes 184 s
		{1 << 40, 1 << 30, 2, "about 2.9 h"},     // 1 TB over 100 MB/s
		{1 << 40, 1 << 40, 0, "about 5.8 h"},     // no worker count: one
		{40 << 40, 1 << 30, 1, "about 9.7 days"}, // 40 TB
	} {
		if got := RoughDuration(CopyEstimate(tc.total, tc.largest, tc.workers)); got != tc.want {
			t.Errorf("CopyEstimate(%d, %d, %d) = %s, want %s", tc.total, tc.largest, tc.workers, got, tc.want)
		}
	}
}

// The copy of migration.yml resolves to the same migration as the original,
// whether the original used the seed's keys or connection URLs.
func TestPlanConfigYAMLRoundTrip(t *testing.T) {
	for _, yml := range []string{
		fixtureYAML,
		fixtureYAML + "pub_name: pub_x\nsub_name: sub_x\ninclude: [ public, '\"Sales\".\"Orders*\"' ]\nexclude: [ public.tmp_* ]\nmax_lag: 64MB\njobs: 4\nsplit_larger_than: 1GB\ncopy: native\n",
		"src_url: postgres://dba@h1:6432/meta?sslmode=require\ndst_url: host=h2 port=5433 dbname=test user=other\npg_replication_username: repl\nmigration_context_dir: /tmp/m\n",
		"src_ip: 10.0.0.1\nsrc_db: meta\ndst_ip: 10.0.0.2\ndst_db: test\nsub_conn: host=src.internal dbname=meta user=repl\nmigration_context_dir: /tmp/m\n",
		"src_ip: \"::1\"\nsrc_port: 5433\nsrc_db: \"it's\"\ndst_ip: localhost\ndst_db: \"x y\"\nmigration_context_dir: \"/tmp/with space\"\n",
		strings.Split(fixtureYAML, "pgbouncer:")[0] + "pgbouncer: [ 'postgres://admin@pgb1:6432/pgbouncer', \"postgres://o'brien@pgb2:6432/pgbouncer?sslmode=disable\" ]\n" +
			"pgbouncer_ini: \"ini dir/pgbouncer's.ini\"\npgbouncer_db: \"app db\"\nfence: database\napp_roles: [ app_rw, \"o'brien\", 'x \"y\"' ]\nmax_pause: 1500ms\n" +
			"switch_hook: \"/usr/local/bin/repoint --to \\\"$PGMOVE_HOST\\\" 'x y'\"\n",
		strings.Split(fixtureYAML, "pgbouncer:")[0] + "pgbouncer: [ postgres://dba@pgb1:6432/pgbouncer, \"postgres://dba@pgb2:6432/pgbouncer?sslmode=require\" ]\npgbouncer_ini: \"/etc/pgbouncer/pgbouncer ini\"\npgbouncer_db: app\n" +
			"fence: database\napp_roles: [ app_rw, \"App Batch\" ]\nmax_pause: 1500ms\nswitch_hook: \"/usr/local/bin/vip-move --to \\\"$PGMOVE_HOST\\\": x\"\n",
	} {
		m := fixtureMigration(t, yml)
		copied := ConfigYAML(m)
		f, err := config.Parse("migration.yml", copied)
		if err != nil {
			t.Fatalf("copy of\n%s\ndoes not parse: %v\n%s", yml, err, copied)
		}
		m2, err := config.Resolve(f, config.Overrides{ConfigFile: "migration.yml"})
		if err != nil {
			t.Fatalf("copy does not resolve: %v\n%s", err, copied)
		}
		for _, m := range []*config.Migration{m, m2} {
			for _, l := range []*[]string{&m.SrcList, &m.DstList} {
				if len(*l) == 0 {
					*l = nil
				}
			}
			for _, l := range []*[]config.Pattern{&m.Include, &m.Exclude} {
				if len(*l) == 0 {
					*l = nil
				}
			}
		}
		if !reflect.DeepEqual(m, m2) {
			t.Errorf("copy resolves differently\noriginal:\n%s\ncopy:\n%s\n%+v\n%+v", yml, copied, m, m2)
		}
	}
}

func TestPlanDiff(t *testing.T) {
	old := fixtureFacts()
	type ch struct {
		kind, object string
		matters      bool
	}
	for _, tc := range []struct {
		name   string
		change func(f *Facts)
		want   []ch
	}{
		{"nothing", func(f *Facts) {}, nil},
		{"identity fixed", func(f *Facts) {
			f.Tables[2].OK, f.Tables[2].Identity, f.Tables[2].Fix = true, "full", ""
		}, []ch{{"identity_fixed", "public.pgbench_history", false}}},
		{"identity broken", func(f *Facts) {
			f.Tables[1].OK, f.Tables[1].Identity = false, "nothing"
		}, []ch{{"identity_broken", "public.pgbench_accounts", true}}},
		{"new table", func(f *Facts) {
			f.Tables = append(f.Tables, Table{Name: "public.zz", Keys: "none", Identity: "default", Fix: "ALTER TABLE ..."})
		}, []ch{{"new_table", "public.zz", true}}},
		{"dropped table", func(f *Facts) { f.Tables = f.Tables[1:] }, []ch{{"dropped_table", "public.events", true}}},
		{"new object", func(f *Facts) {
			f.Special = append(f.Special, Object{Code: "foreign_table", Object: "public.remote", Message: "foreign table"})
		}, []ch{{"new_object", "public.remote", true}}},
		{"object gone", func(f *Facts) { f.Special = append(f.Special[:1:1], f.Special[2:]...) }, []ch{{"object_gone", "public.daily_totals", false}}},
		{"sequences and size", func(f *Facts) { f.Sequences = 5; f.SourceBytes *= 3 }, []ch{{"sequences", "", false}, {"size", "", false}}},
		{"small growth", func(f *Facts) { f.SourceBytes += 1 << 20 }, nil},
		{"source upgraded", func(f *Facts) { f.Source.Version = "16.1" }, []ch{{"version", "source", true}}},
		{"copy method changed", func(f *Facts) { f.Copy = Native }, []ch{{"copy", "", true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur := fixtureFacts()
			tc.change(cur)
			var got []ch
			for _, c := range Diff(old, cur) {
				got = append(got, ch{c.Kind, c.Object, c.Matters})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Diff = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPlanMarkdown(t *testing.T) {
	for _, tc := range []struct{ md, want string }{
		{"# Title: x.y to z\n", `<h1 id="title-xy-to-z">Title: x.y to z</h1>` + "\n"},
		{"### Target cluster: users, database, whitelist", `<h3 id="target-cluster-users-database-whitelist">Target cluster: users, database, whitelist</h3>` + "\n"},
		{"one\ntwo\n\nthree", "<p>one\ntwo</p>\n<p>three</p>\n"},
		{"- a\n- [ ] b\n- [x] c", "<ul>\n<li>a</li>\n" + `<li class="task"><input type="checkbox" disabled> b</li>` + "\n" +
			`<li class="task"><input type="checkbox" checked disabled> c</li>` + "\n</ul>\n"},
		{"```sql\nSELECT 1 < 2;\n```", `<pre><code class="language-sql">SELECT 1 &lt; 2;</code></pre>` + "\n"},
		{"a `<b>` **c** [d](#e) `` x`y ``", "<p>a <code>&lt;b&gt;</code> <strong>c</strong> <a href=\"#e\">d</a> <code>x`y</code></p>\n"},
		{"| A | B |\n|---|---|\n| `x \\| y` | **z** |", "<table>\n<thead>\n<tr><th>A</th><th>B</th></tr>\n</thead>\n<tbody>\n<tr><td><code>x | y</code></td><td><strong>z</strong></td></tr>\n</tbody>\n</table>\n"},
		{"unclosed ` tick <script>", "<p>unclosed ` tick &lt;script&gt;</p>\n"},
		{"1. a\n2. `b`\n- c\n\n10. d", "<ol>\n<li>a</li>\n<li><code>b</code></li>\n</ol>\n<ul>\n<li>c</li>\n</ul>\n<ol>\n<li>d</li>\n</ol>\n"},
		{"2024. not a list", "<p>2024. not a list</p>\n"},
	} {
		if got := Markdown(tc.md); got != tc.want {
			t.Errorf("Markdown(%q)\n got: %q\nwant: %q", tc.md, got, tc.want)
		}
	}
}

// Every anchor the runbook links to exists in its HTML page.
func TestPlanRunbookLinks(t *testing.T) {
	md, err := Runbook(fixtureInput(t))
	if err != nil {
		t.Fatal(err)
	}
	page := HTML("t", string(md))
	for _, m := range linkRE.FindAllStringSubmatch(string(md), -1) {
		if id := strings.TrimPrefix(m[2], "#"); !strings.Contains(page, `id="`+id+`"`) {
			t.Errorf("link to #%s, which no heading makes", id)
		}
	}
	for _, bad := range []string{"<script", "http://", "https://"} {
		if strings.Contains(page, bad) {
			t.Errorf("page holds %q: it must be self-contained", bad)
		}
	}
}

// The scripts are valid shell.
func TestPlanScriptsParse(t *testing.T) {
	bash := lookBash(t)
	files, err := Render(fixtureInput(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range files {
		if f.Mode&0o100 == 0 {
			continue
		}
		path := filepath.Join(dir, f.Name)
		if err := os.WriteFile(path, f.Data, 0o700); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bash, "-n", path).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", f.Name, err, out)
		}
	}
}

func lookBash(t *testing.T) string {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash not found: the scripts need it")
	}
	return bash
}

// The runbook's switch moment says what ./switchover does with this
// migration's settings: its fence, where the traffic goes, and what is
// missing when migration.yml sets neither.
func TestPlanRunbookSwitch(t *testing.T) {
	base := strings.Split(fixtureYAML, "pgbouncer:")[0]
	for _, c := range []struct {
		name, yml, version string
		want, not          []string
	}{
		{name: "pgbouncer", yml: fixtureYAML, version: "15.10",
			want: []string{"`PAUSE \"meta\";` on the pgbouncer console `host=10.10.10.10 port=6432 dbname=pgbouncer user=dbuser_dba`",
				"entry `meta` of `/etc/pgbouncer/pgbouncer.ini` set to `host=10.10.10.11 port=5432 dbname=test`, then `RELOAD`",
				"`RESUME \"meta\";`: the waiting queries go on, to the target", "at most 2s (max_pause)",
				"publication `pub_pg_meta_meta_reverse` and slot `sub_pg_meta_meta_reverse` on the target",
				"`./cleanup` (see [Clean up](#clean-up)) drops it with the rest: the source's subscription `sub_pg_meta_meta_reverse`", "### Or by hand", "#### Stop source write traffic"},
			not: []string{"origin = none", "pgmove has no command for it"}},
		{name: "database fence and a hook, source 16", yml: base + "fence: database\napp_roles: [ app_rw, \"o'brien\" ]\nmax_pause: 750ms\nswitch_hook: /usr/local/bin/repoint-dns\npgbouncer_db: appdb\n", version: "16.4",
			want: []string{"the roles `\"app_rw\"`, `\"o'brien\"` lose `LOGIN` on the source and their sessions are terminated",
				"`/usr/local/bin/repoint-dns` run by `/bin/sh` in this directory, with `PGMOVE_DIRECTION`",
				"the fence stays on the source, which must take no writes now", "at most 750ms (max_pause)",
				"(with `origin = none`: the source is 16 or later)",
				"lift it by hand (`ALTER ROLE \"app_rw\" LOGIN;`, `ALTER ROLE \"o'brien\" LOGIN;` on the source)"},
			not: []string{"PAUSE", "RELOAD"}},
		{name: "no fence, no route", yml: base, version: "15.10",
			want: []string{"the fence: none: migration.yml names no pgbouncer console and no fence, so pgmove does not stop the writes",
				"the traffic: nothing: migration.yml names no `pgbouncer_ini` and no `switch_hook`, so the applications still reach the source"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := fixtureInput(t)
			in.M = fixtureMigration(t, c.yml)
			in.Facts.Source.Version = c.version
			md, err := Runbook(in)
			if err != nil {
				t.Fatal(err)
			}
			s := string(md)
			for _, w := range c.want {
				if !strings.Contains(s, w) {
					t.Errorf("runbook lacks %q", w)
				}
			}
			for _, n := range c.not {
				if strings.Contains(s, n) {
					t.Errorf("runbook says %q", n)
				}
			}
		})
	}
}
