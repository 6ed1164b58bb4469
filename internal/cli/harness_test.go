package cli

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/pgtest"
)

// pair is a source and a target server for an end-to-end test, with a
// migration.yml pointing at them (source database meta, target database
// test, as in the seed) and PGPASSFILE set for pgmove.
type pair struct {
	t        *testing.T
	src, dst *pgserver.Server
	dir      string // holds migration.yml and the migration context
	config   string
}

// newPair starts two servers and writes migration.yml. The replication user
// "replicator" exists on the source with REPLICATION and the test password.
func newPair(t *testing.T, srcMajor, dstMajor int, extraYAML ...string) *pair {
	t.Helper()
	return newPairWith(t, srcMajor, dstMajor, nil, extraYAML...)
}

// newPairWith is newPair with options for the source server.
func newPairWith(t *testing.T, srcMajor, dstMajor int, srcOpts []func(*pgserver.Options), extraYAML ...string) *pair {
	t.Helper()
	p := &pair{t: t}
	p.src = pgtest.Start(t, srcMajor, srcOpts...)
	p.dst = pgtest.Start(t, dstMajor)
	pgtest.CreateDB(t, p.src, "meta")
	pgtest.CreateDB(t, p.dst, "test")
	pgtest.Exec(t, p.src, "meta", fmt.Sprintf("CREATE ROLE replicator LOGIN REPLICATION BYPASSRLS PASSWORD '%s'", pgtest.Password()))
	pgtest.Exec(t, p.src, "meta", "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO replicator")
	t.Setenv("PGPASSFILE", pgtest.PassFile(t))
	if srcMajor > 15 {
		// The machine's Debian client is 15; pg_dump must be at least the source's.
		pgtest.UseClient18(t)
	}
	p.dir = t.TempDir()
	p.config = filepath.Join(p.dir, "migration.yml")
	p.writeConfig(extraYAML...)
	return p
}

func (p *pair) writeConfig(extraYAML ...string) {
	p.t.Helper()
	yml := fmt.Sprintf(`src_cls: pg-meta
src_db: meta
src_ip: 127.0.0.1
src_port: %d
dst_cls: pg-test
dst_db: test
dst_ip: 127.0.0.1
dst_port: %d
dst_dns: pg-test
dst_vip: 127.0.0.1
pg_admin_username: postgres
pg_replication_username: replicator
migration_context_dir: %s
`, p.src.Port, p.dst.Port, filepath.Join(p.dir, "migration"))
	yml += strings.Join(extraYAML, "\n")
	if err := os.WriteFile(p.config, []byte(yml), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// result is what one pgmove run printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// pgmove runs pgmove in-process with args.
func pgmove(t testing.TB, args ...string) result {
	t.Helper()
	return pgmoveCtx(t, context.Background(), args...)
}

func pgmoveCtx(t testing.TB, ctx context.Context, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := Run(ctx, args, strings.NewReader(""), &out, &errOut)
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

// run runs pgmove with the pair's config.
func (p *pair) run(args ...string) result {
	p.t.Helper()
	return pgmove(p.t, append([]string{"-c", p.config}, args...)...)
}

// must runs pgmove and fails the test unless it exits 0.
func (p *pair) must(args ...string) result {
	p.t.Helper()
	r := p.run(args...)
	if r.code != 0 {
		p.t.Fatalf("pgmove %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// objectsLeft lists pgmove's objects on both servers: publications, slots,
// subscriptions, origins. Tests assert it is empty after a failed run.
func (p *pair) objectsLeft() []string {
	p.t.Helper()
	var left []string
	// Both ways: a switchover makes a subscription on the source and a
	// publication and slot on the target.
	q := `SELECT 'publication ' || pubname FROM pg_publication UNION ALL SELECT 'slot ' || slot_name FROM pg_replication_slots
		UNION ALL SELECT 'subscription ' || subname FROM pg_subscription UNION ALL SELECT 'origin ' || roname FROM pg_replication_origin`
	for _, row := range pgtest.QueryRows(p.t, p.src, "meta", q) {
		left = append(left, "source "+row[0].(string))
	}
	for _, row := range pgtest.QueryRows(p.t, p.dst, "test", q) {
		left = append(left, "target "+row[0].(string))
	}
	return left
}

// userTables counts the target's user tables.
func (p *pair) targetTables() int64 {
	return pgtest.QueryValue[int64](p.t, p.dst, "test", `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema')`)
}

// assertPrivate checks the migration's context directory is the running
// user's alone (directories 0700, files at most 0700) and that no file in
// it holds the servers' password.
func (p *pair) assertPrivate() {
	p.t.Helper()
	root := filepath.Join(p.dir, "migration")
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if path == root {
			return nil // the parent of the context directories: the user's choice
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			p.t.Errorf("%s has mode %o: others can read it", path, perm)
		}
		if d.IsDir() {
			return nil
		}
		n++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(pgtest.Password())) {
			p.t.Errorf("%s holds the password", path)
		}
		return nil
	})
	if err != nil {
		p.t.Fatal(err)
	}
	if n == 0 {
		p.t.Fatalf("no file in %s", root)
	}
}
