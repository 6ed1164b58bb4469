package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/schema"
)

// Options say what sandbox to build.
type Options struct {
	Dir      string // where the sandbox lives; default DefaultDir()
	SrcMajor int
	DstMajor int
	Scale    int // pgbench scale of the source
	// PgBouncer puts a pgbouncer (Debian's, transaction pooling) in front
	// of pg-meta: the load goes through it, and switchover repoints it.
	PgBouncer bool
}

// DefaultDir is the sandbox's home: under /var/tmp, which the postgres OS
// user can reach when pgmove runs as root.
func DefaultDir() string {
	if d := os.Getenv("PGMOVE_SANDBOX"); d != "" {
		return d
	}
	return "/var/tmp/pgmove-sandbox"
}

// Roles the seed's example uses.
const (
	AdminUser       = "dbuser_dba"
	ReplicationUser = "replicator"
)

// State is what `sandbox up` leaves in <dir>/sandbox.json.
type State struct {
	Src       Node     `json:"src"`
	Dst       Node     `json:"dst"`
	PgBouncer *Bouncer `json:"pgbouncer,omitempty"`
}

// Bouncer is the sandbox's pgbouncer in front of pg-meta.
type Bouncer struct {
	Port int    `json:"port"`
	Dir  string `json:"dir"` // its ini, auth file, log and pid file
	INI  string `json:"ini"`
	DB   string `json:"db"` // its database entry: the source database's name
}

// App is where the application connects: pgbouncer when the sandbox has
// one, else pg-meta itself.
func (st *State) App() Node {
	if st.PgBouncer == nil {
		return st.Src
	}
	return Node{Cluster: "pgbouncer", DB: st.PgBouncer.DB, Port: st.PgBouncer.Port, Major: st.Src.Major}
}

// AdminURL is the pgbouncer admin console's URL (password from the .pgpass).
func (b *Bouncer) AdminURL() string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/pgbouncer", AdminUser, b.Port)
}

// Node is one sandbox server.
type Node struct {
	Cluster string `json:"cluster"`
	DB      string `json:"db"`
	Port    int    `json:"port"`
	Major   int    `json:"major"`
	DataDir string `json:"data_dir"`
}

// Paths of the files a sandbox holds.
func ConfigPath(dir string) string   { return filepath.Join(dir, "migration.yml") }
func PassFilePath(dir string) string { return filepath.Join(dir, "pgpass") }
func statePath(dir string) string    { return filepath.Join(dir, "sandbox.json") }

// ReadState reads a sandbox's state.
func ReadState(dir string) (*State, error) {
	b, err := os.ReadFile(statePath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no sandbox in %s; run pgmove sandbox up", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("sandbox: %s: %w", statePath(dir), err)
	}
	return &st, nil
}

// Up starts the seed's two clusters on loopback: pg-meta (database meta,
// pgbench tables) and pg-test (database test, empty), with the seed's roles,
// a .pgpass for them and a migration.yml pointing at them.
func Up(ctx context.Context, o Options, log io.Writer) (*State, error) {
	if o.Dir == "" {
		o.Dir = DefaultDir()
	}
	if st, err := ReadState(o.Dir); err == nil {
		return st, fmt.Errorf("a sandbox already exists in %s (pg-meta on port %d, pg-test on port %d); pgmove sandbox down removes it", o.Dir, st.Src.Port, st.Dst.Port)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	passwords := map[string]string{"postgres": rand.Text(), AdminUser: rand.Text(), ReplicationUser: rand.Text()}
	st := &State{}
	var started []*pgserver.Server
	fail := func(err error) (*State, error) {
		if st.PgBouncer != nil {
			_ = pgserver.StopPgBouncer(st.PgBouncer.Dir)
		}
		for _, s := range started {
			_ = s.Remove()
		}
		os.Remove(PassFilePath(o.Dir))
		os.Remove(ConfigPath(o.Dir))
		return nil, err
	}
	for _, n := range []struct {
		node    *Node
		cluster string
		db      string
		major   int
	}{{&st.Src, "pg-meta", "meta", o.SrcMajor}, {&st.Dst, "pg-test", "test", o.DstMajor}} {
		fmt.Fprintf(log, "starting %s (PostgreSQL %d)...\n", n.cluster, n.major)
		srv, err := pgserver.Start(ctx, pgserver.Options{Major: n.major, Root: o.Dir, Name: n.cluster, Password: passwords["postgres"], Keep: true})
		if err != nil {
			return fail(fmt.Errorf("sandbox: start %s: %w", n.cluster, err))
		}
		started = append(started, srv)
		*n.node = Node{Cluster: n.cluster, DB: n.db, Port: srv.Port, Major: n.major, DataDir: srv.DataDir}
		if err := setupRoles(ctx, srv, n.db, passwords); err != nil {
			return fail(err)
		}
	}
	if o.PgBouncer {
		fmt.Fprintf(log, "starting pgbouncer in front of %s...\n", st.Src.Cluster)
		b, err := pgserver.StartPgBouncer(ctx, pgserver.BouncerOptions{Name: "sandbox", Dir: filepath.Join(o.Dir, "pgbouncer"),
			Databases: map[string]string{st.Src.DB: fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s", st.Src.Port, st.Src.DB)},
			User:      AdminUser, Password: passwords[AdminUser], AuthType: "scram-sha-256", Detach: true})
		if err != nil {
			return fail(fmt.Errorf("sandbox: %w (pgmove sandbox up --pgbouncer=false goes without it)", err))
		}
		st.PgBouncer = &Bouncer{Port: b.Port, Dir: b.Dir, INI: b.INI, DB: st.Src.DB}
	}
	if err := writePassFile(o.Dir, st, passwords); err != nil {
		return fail(err)
	}
	if err := writeConfig(o.Dir, st); err != nil {
		return fail(err)
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(statePath(o.Dir), b, 0o644); err != nil {
		return fail(fmt.Errorf("sandbox: %w", err))
	}
	fmt.Fprintf(log, "loading pgbench tables into meta (scale %d)...\n", o.Scale)
	if err := initPgbench(ctx, o.Dir, st, o.Scale, passwords[AdminUser]); err != nil {
		_ = Down(o.Dir)
		return nil, err
	}
	return st, nil
}

func setupRoles(ctx context.Context, srv *pgserver.Server, db string, pw map[string]string) error {
	cfg, err := srv.ConnConfig("postgres")
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("sandbox: connect: %w", err)
	}
	defer conn.Close(context.Background())
	stmts := []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN SUPERUSER PASSWORD %s", AdminUser, literal(pw[AdminUser])),
		fmt.Sprintf("CREATE ROLE %s LOGIN REPLICATION BYPASSRLS PASSWORD %s", ReplicationUser, literal(pw[ReplicationUser])),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", db, AdminUser),
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("sandbox: %s: %w", strings.SplitN(s, " PASSWORD", 2)[0], err)
		}
	}
	return nil
}

func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func writePassFile(dir string, st *State, pw map[string]string) error {
	var b strings.Builder
	for _, n := range []Node{st.Src, st.Dst} {
		for _, u := range []string{AdminUser, ReplicationUser} {
			fmt.Fprintf(&b, "127.0.0.1:%d:*:%s:%s\n", n.Port, u, pw[u])
		}
	}
	if st.PgBouncer != nil {
		fmt.Fprintf(&b, "127.0.0.1:%d:*:%s:%s\n", st.PgBouncer.Port, AdminUser, pw[AdminUser])
	}
	if err := os.WriteFile(PassFilePath(dir), []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	return nil
}

func writeConfig(dir string, st *State) error {
	text := fmt.Sprintf(`# pgmove sandbox: the seed's example, on loopback.
# Passwords are in %s: export PGPASSFILE=%s

# src cluster (the old cluster)
src_cls: %s
src_db: %s
src_ip: 127.0.0.1
src_port: %d
src_list: [ ]

# dst cluster (the new cluster)
dst_cls: %s
dst_db: %s
dst_ip: 127.0.0.1
dst_port: %d
dst_list: [ ]
dst_dns: pg-test
dst_vip: 127.0.0.1

# credential (passwords from .pgpass)
pg_admin_username: %s
pg_replication_username: %s
migration_context_dir: %s
`, PassFilePath(dir), PassFilePath(dir), st.Src.Cluster, st.Src.DB, st.Src.Port, st.Dst.Cluster, st.Dst.DB, st.Dst.Port,
		AdminUser, ReplicationUser, filepath.Join(dir, "migration"))
	if b := st.PgBouncer; b != nil {
		text += fmt.Sprintf(`
# pgbouncer in front of %s (transaction pooling): the application's way in,
# which pgmove switchover pauses, points at %s, and resumes
pgbouncer: [ %s ]
pgbouncer_ini: %s
pgbouncer_db: %s
`, st.Src.Cluster, st.Dst.Cluster, b.AdminURL(), b.INI, b.DB)
	}
	if err := os.WriteFile(ConfigPath(dir), []byte(text), 0o644); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	return nil
}

// initPgbench fills meta with pgbench's tables (pgbench -i) and one more
// table with a bigserial key, so the sandbox has a sequence to carry.
func initPgbench(ctx context.Context, dir string, st *State, scale int, adminPW string) error {
	tool, err := schema.FindTool(ctx, "pgbench", 0)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	cmd := exec.CommandContext(ctx, tool.Path, "-i", "-q", "-s", fmt.Sprint(scale),
		"-h", "127.0.0.1", "-p", fmt.Sprint(st.Src.Port), "-U", AdminUser, st.Src.DB)
	cmd.Env = append(os.Environ(), "PGPASSFILE="+PassFilePath(dir))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sandbox: pgbench -i: %v: %s", err, lastLine(string(out)))
	}
	conn, err := Connect(ctx, dir, st.Src)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, `CREATE TABLE pgbench_events (id bigserial PRIMARY KEY, aid int NOT NULL, delta int NOT NULL, at timestamptz NOT NULL DEFAULT now());
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO `+ReplicationUser+`;
		ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO `+ReplicationUser)
	if err != nil {
		return fmt.Errorf("sandbox: prepare meta: %w", err)
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// Connect opens a connection as the admin user to a sandbox node, with the
// sandbox's .pgpass.
func Connect(ctx context.Context, dir string, n Node) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=%s passfile=%s application_name=pgmove/sandbox",
		n.Port, n.DB, AdminUser, PassFilePath(dir)))
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("sandbox: connect to %s: %w", n.Cluster, err)
	}
	return conn, nil
}

// Down stops pgbouncer and both servers and removes the sandbox.
func Down(dir string) error {
	if dir == "" {
		dir = DefaultDir()
	}
	st, err := ReadState(dir)
	if err != nil {
		return err
	}
	var errs []error
	if st.PgBouncer != nil {
		if err := pgserver.StopPgBouncer(st.PgBouncer.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range []Node{st.Src, st.Dst} {
		srv, err := pgserver.Attach(n.DataDir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := srv.Remove(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return os.RemoveAll(dir)
}
