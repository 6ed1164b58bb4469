package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/pgtest"
	"github.com/pgmove/pgmove/internal/phase"
)

// TestZeroColumnTables migrates tables with no column to copy: none at all,
// or only a generated one. pgmove used to send "COPY t () FROM STDIN" (a
// syntax error), retry and exit 1. Each path is taken: one stream, a big
// table in CTID ranges (14+ source) or dealt out to several sessions (13),
// binary (14+ target) and text (13 target), the unlogged re-copy of
// copy-seq, compare --checksum, and PostgreSQL's own table sync.
func TestZeroColumnTables(t *testing.T) {
	for _, pv := range [][2]int{{15, 17}, {13, 18}, {13, 13}} {
		t.Run(fmt.Sprintf("%d-to-%d", pv[0], pv[1]), func(t *testing.T) {
			p := newPair(t, pv[0], pv[1])
			pgtest.CreateDB(t, p.dst, "native")
			pgtest.Exec(t, p.src, "meta", `
				CREATE TABLE zerocol (); INSERT INTO zerocol DEFAULT VALUES;
				CREATE TABLE genonly (g int GENERATED ALWAYS AS (41+1) STORED); INSERT INTO genonly DEFAULT VALUES;
				CREATE TABLE zerobig (); INSERT INTO zerobig SELECT FROM generate_series(1, 100000);
				CREATE UNLOGGED TABLE zerolog (); INSERT INTO zerolog SELECT FROM generate_series(1, 7);
				ALTER TABLE zerocol REPLICA IDENTITY FULL; ALTER TABLE genonly REPLICA IDENTITY FULL; ALTER TABLE zerobig REPLICA IDENTITY FULL;
				GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
			tables := []string{"zerocol", "genonly", "zerobig", "zerolog"}

			p.must("check")
			r := p.must("migrate", "--split-larger-than", "256kB", "--jobs", "2")
			if !strings.Contains(r.stdout, "caught up") {
				t.Fatalf("migrate: %s", r)
			}
			// The big table went through the parallel path of its source.
			var st struct {
				Tables []struct {
					Name    string `json:"table"`
					Rows    int64  `json:"rows"`
					Chunks  int    `json:"chunks"`
					Streams int    `json:"streams"`
					Format  string `json:"format"`
				} `json:"tables"`
			}
			b, err := os.ReadFile(filepath.Join(p.dir, "migration", "pg-meta.meta", "copy.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatal(err)
			}
			wantFormat := "binary"
			if pv[1] < 14 {
				wantFormat = "text"
			}
			for _, ts := range st.Tables {
				if ts.Format != wantFormat {
					t.Errorf("%s copied in %s format, want %s", ts.Name, ts.Format, wantFormat)
				}
				if ts.Name != "public.zerobig" {
					continue
				}
				if ts.Rows != 100000 || ts.Streams < 2 || pv[0] >= 14 && ts.Chunks < 2 {
					t.Errorf("zerobig: %+v; want 100000 rows over several sessions (CTID ranges from 14)", ts)
				}
			}
			if len(st.Tables) != 3 {
				t.Errorf("copy status: %d tables, want 3: %s", len(st.Tables), b)
			}

			// Changes replicate, and the unlogged table is copied at the switch.
			pgtest.Exec(t, p.src, "meta", `INSERT INTO zerocol DEFAULT VALUES; INSERT INTO genonly DEFAULT VALUES;
				INSERT INTO zerobig SELECT FROM generate_series(1, 10); INSERT INTO zerolog DEFAULT VALUES`)
			p.waitLagZero()
			r = p.must("copy-seq")
			if !strings.Contains(r.stdout, "unlogged tables: 1 copied again (8 rows)") {
				t.Errorf("copy-seq: %s", r)
			}
			assertSameRows(t, p.src, p.dst, tables...)
			if g := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT sum(g) FROM genonly"); g != 84 {
				t.Errorf("genonly on the target: sum(g) = %d, want 84", g)
			}
			r = p.must("compare", "--checksum")
			if !strings.Contains(r.stdout, "equal: 3 table(s)") {
				t.Errorf("compare: %s", r)
			}
			p.must("cleanup")

			// PostgreSQL's table sync, into a database of its own.
			native := strings.NewReplacer("dst_db: test", "dst_db: native", "migration_context_dir: ", "migration_context_dir: "+p.dir+"/native-").Replace(readFile(t, p.config)) +
				"pub_name: pub_native\nsub_name: sub_native\n"
			cfg := filepath.Join(p.dir, "native.yml")
			if err := os.WriteFile(cfg, []byte(native), 0o644); err != nil {
				t.Fatal(err)
			}
			r = pgmove(t, "-c", cfg, "--log-format", "json", "migrate", "--copy", "native")
			if r.code != 0 {
				t.Fatalf("migrate --copy native: %s", r)
			}
			assertPhases(t, r.stderr, phase.Check, phase.Dump, phase.Schema, phase.Publication, phase.Subscription, phase.CatchUp)
			for _, tbl := range tables[:3] {
				q := "SELECT count(*) FROM " + tbl
				if s, d := pgtest.QueryValue[int64](t, p.src, "meta", q), pgtest.QueryValue[int64](t, p.dst, "native", q); s != d {
					t.Errorf("native copy of %s: source %d rows, target %d", tbl, s, d)
				}
			}
			if r := pgmove(t, "-c", cfg, "cleanup"); r.code != 0 {
				t.Fatalf("cleanup: %s", r)
			}
		})
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestVirtualGeneratedTarget: a target of PostgreSQL 18 whose generated
// column is VIRTUAL (computed when read, not stored) gets no value for it
// either: a table whose only column it is copies as a table of no column.
func TestVirtualGeneratedTarget(t *testing.T) {
	p := newPair(t, 15, 18)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE genonly (g int GENERATED ALWAYS AS (41+1) STORED);
		INSERT INTO genonly SELECT FROM generate_series(1, 3);
		ALTER TABLE genonly REPLICA IDENTITY FULL;
		CREATE TABLE mixed (id int PRIMARY KEY, g int GENERATED ALWAYS AS (id * 2) STORED);
		INSERT INTO mixed SELECT generate_series(1, 10);
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
	p.must("copy-schema", "--section", "pre-data")
	pgtest.Exec(t, p.dst, "test", `ALTER TABLE genonly DROP COLUMN g, ADD COLUMN g int GENERATED ALWAYS AS (41+1) VIRTUAL;
		ALTER TABLE mixed DROP COLUMN g, ADD COLUMN g int GENERATED ALWAYS AS (id * 2) VIRTUAL`)
	p.must("create-pub")
	p.must("create-sub")
	pgtest.Exec(t, p.src, "meta", "INSERT INTO genonly DEFAULT VALUES; INSERT INTO mixed VALUES (11)")
	p.waitLagZero()
	assertSameRows(t, p.src, p.dst, "genonly", "mixed")
	if r := p.must("compare", "--checksum"); !strings.Contains(r.stdout, "equal: 2 table(s)") {
		t.Errorf("compare: %s", r)
	}
	p.must("cleanup")
}
