package pgserver_test

import (
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/pgtest"
)

// TestServer runs against 15 and 17, or the majors in PGMOVE_TEST_MAJORS.
func TestServer(t *testing.T) {
	for _, major := range pgtest.Majors(t, 15, 17) {
		t.Run(strconv.Itoa(major), func(t *testing.T) {
			t.Parallel()
			testServer(t, major)
		})
	}
}

func testServer(t *testing.T, major int) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	password := rand.Text()
	s, err := pgserver.Start(ctx, pgserver.Options{Major: major, Name: "test-" + strconv.Itoa(major), Password: password})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", s.LogTail(40))
		}
		if !stopped {
			_ = s.Stop()
		}
	})
	if !strings.HasPrefix(s.Version, strconv.Itoa(major)+".") {
		t.Errorf("Version = %q, want major %d", s.Version, major)
	}

	conn := connect(t, ctx, s, password)
	if got := show(t, ctx, conn, "wal_level"); got != "logical" {
		t.Errorf("wal_level = %q, want logical", got)
	}
	num, err := strconv.Atoi(show(t, ctx, conn, "server_version_num"))
	if err != nil || num/10000 != major {
		t.Errorf("server_version_num = %d (%v), want major %d", num, err, major)
	}
	conn.Close(ctx)

	_, err = pgx.ConnectConfig(ctx, connConfig(t, s, "not-"+password))
	if pgErr := (*pgconn.PgError)(nil); !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Errorf("connect with a wrong password: err = %v, want SQLSTATE 28P01", err)
	}

	// The password is in no file Start left behind (pg_authid holds a SCRAM verifier).
	dir := filepath.Dir(s.DataDir)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		if strings.HasPrefix(d.Name(), ".pwfile") {
			t.Errorf("password file %s left behind", path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), password) {
			t.Errorf("%s contains the password", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	a, err := pgserver.Attach(s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if a.Port != s.Port || a.Version != s.Version || a.Major != major || a.LogFile != s.LogFile || !a.Running() {
		t.Errorf("Attach = %+v, want the server %+v", a, s)
	}

	if err := s.Restart(ctx, map[string]string{"work_mem": "7MB"}); err != nil {
		t.Fatal(err)
	}
	conn = connect(t, ctx, s, password)
	if got := show(t, ctx, conn, "work_mem"); got != "7MB" {
		t.Errorf("work_mem after Restart = %q, want 7MB", got)
	}
	if got := show(t, ctx, conn, "wal_level"); got != "logical" {
		t.Errorf("wal_level after Restart = %q, want logical", got)
	}
	conn.Close(ctx)

	stopped = true
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if s.Running() {
		t.Error("Running after Stop")
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("server dir %s after Stop: %v, want it gone", dir, err)
	}
}

func TestStartKeep(t *testing.T) {
	ctx := context.Background()
	s, err := pgserver.Start(ctx, pgserver.Options{Major: 15, Name: "test-keep", Password: rand.Text(), Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Remove()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.DataDir, "PG_VERSION")); err != nil {
		t.Fatalf("data dir after Stop with Keep: %v", err)
	}
	a, err := pgserver.Attach(s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(s.DataDir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("server dir after Remove: %v, want it gone", err)
	}
}

// TestStartFailureCleansUp checks that a server that cannot start leaves nothing behind.
func TestStartFailureCleansUp(t *testing.T) {
	ctx := context.Background()
	root := testRoot(t)

	busy, err := pgserver.Start(ctx, pgserver.Options{Major: 15, Root: root, Name: "busy", Password: rand.Text()})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Stop()

	for name, o := range map[string]pgserver.Options{
		"bad-setting": {Settings: map[string]string{"no_such_setting": "1"}},
		"port-taken":  {Port: busy.Port},
	} {
		o.Major, o.Root, o.Name, o.Password = 15, root, name, rand.Text()
		if s, err := pgserver.Start(ctx, o); err == nil {
			s.Stop()
			t.Errorf("%s: Start succeeded, want an error", name)
			continue
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("run dir holds %d entries after failed starts, want only the busy server's", len(entries))
	}
}

// TestReap checks that a server whose starting process died is stopped and
// removed, and one whose starter lives is left alone.
func TestReap(t *testing.T) {
	ctx := context.Background()
	root := testRoot(t)
	orphan, err := pgserver.Start(ctx, pgserver.Options{Major: 15, Root: root, Name: "orphan", Password: rand.Text()})
	if err != nil {
		t.Fatal(err)
	}
	defer orphan.Stop()
	live, err := pgserver.Start(ctx, pgserver.Options{Major: 15, Root: root, Name: "live", Password: rand.Text()})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Stop()

	// Pretend a process that has exited started the orphan.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	statePath := filepath.Join(filepath.Dir(orphan.DataDir), "server.json")
	b, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(string(b), `"owner_pid": `+strconv.Itoa(os.Getpid()), `"owner_pid": `+strconv.Itoa(dead.Process.Pid), 1))
	if err := os.WriteFile(statePath, b, 0o644); err != nil {
		t.Fatal(err)
	}

	reaped, err := pgserver.Reap(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(reaped) != 1 || reaped[0] != orphan.DataDir {
		t.Errorf("Reap = %v, want [%s]", reaped, orphan.DataDir)
	}
	if _, err := os.Stat(filepath.Dir(orphan.DataDir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("orphan's dir after Reap: %v, want it gone", err)
	}
	if !live.Running() {
		t.Error("Reap stopped a server whose starter is alive")
	}
}

// testRoot makes a run dir of the test's own under RunDir, short enough for
// the socket path and reachable by the postgres OS user.
func testRoot(t *testing.T) string {
	t.Helper()
	if err := os.MkdirAll(pgserver.RunDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := os.MkdirTemp(pgserver.RunDir(), "t-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestBinDirMissing(t *testing.T) {
	t.Setenv("PGMOVE_PG_CACHE", t.TempDir())
	_, err := pgserver.BinDir(12)
	if err == nil || !strings.Contains(err.Error(), "scripts/install-deps 12") {
		t.Errorf("BinDir(12) error = %v, want one naming scripts/install-deps 12", err)
	}
}

func connConfig(t *testing.T, s *pgserver.Server, password string) *pgx.ConnConfig {
	t.Helper()
	cfg, err := s.ConnConfig("postgres")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = password
	return cfg
}

func connect(t *testing.T, ctx context.Context, s *pgserver.Server, password string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.ConnectConfig(ctx, connConfig(t, s, password))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func show(t *testing.T, ctx context.Context, conn *pgx.Conn, name string) string {
	t.Helper()
	var v string
	if err := conn.QueryRow(ctx, "SHOW "+pgx.Identifier{name}.Sanitize()).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}
