package cluster

import (
	"context"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/pgtest"
)

// TestDeadLinkSettings: pgmove's connections give up on a silent link after
// DeadLink, the user's libpq keys win, and none of those keys is sent to
// the server as a setting (it would refuse the connection: "unrecognized
// configuration parameter").
func TestDeadLinkSettings(t *testing.T) {
	for _, c := range []struct {
		ci      config.Conninfo
		want    map[string]string // server settings sent
		err     string
		noAlive bool
	}{
		{ci: config.Conninfo{"host": "h"}, want: map[string]string{"tcp_user_timeout": "60000", "tcp_keepalives_idle": "10", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "6"}},
		{ci: config.Conninfo{"host": "h", "keepalives_idle": "30", "keepalives_count": "3", "tcp_user_timeout": "5000"}, want: map[string]string{"tcp_user_timeout": "5000", "tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "3"}},
		{ci: config.Conninfo{"host": "h", "keepalives": "0", "tcp_user_timeout": "0"}, want: map[string]string{"tcp_user_timeout": "0"}, noAlive: true},
		{ci: config.Conninfo{"host": "h", "keepalives_idle": "soon"}, err: `source: connection settings: keepalives_idle="soon" is not a non-negative whole number`},
	} {
		cfg, err := Config(config.Endpoint{Side: config.Source, Conninfo: c.ci}, "check")
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%v: error %v, want %q", c.ci, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", c.ci, err)
		}
		for _, k := range linkKeys {
			if _, ok := cfg.RuntimeParams[k]; ok && k != "tcp_user_timeout" { // a server setting too
				t.Errorf("%v: libpq's %s is sent to the server", c.ci, k)
			}
		}
		for k, v := range c.want {
			if cfg.RuntimeParams[k] != v {
				t.Errorf("%v: server setting %s = %q, want %q", c.ci, k, cfg.RuntimeParams[k], v)
			}
		}
		if _, ok := cfg.RuntimeParams["tcp_keepalives_idle"]; ok == c.noAlive {
			t.Errorf("%v: server keepalives sent %v, want %v", c.ci, ok, !c.noAlive)
		}
	}

	child, err := Child(config.Endpoint{Side: config.Target, Conninfo: config.Conninfo{"host": "h", "keepalives_idle": "30"}}, "copy-schema")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"keepalives=1", "keepalives_idle=30", "keepalives_interval=10", "keepalives_count=6", "tcp_user_timeout=60000"} {
		if !strings.Contains(child.Conninfo, want) {
			t.Errorf("the child's connection string %q lacks %s", child.Conninfo, want)
		}
	}
	found := false
	for _, kv := range child.Env {
		if strings.HasPrefix(kv, "PGOPTIONS=") {
			found = kv == "PGOPTIONS=-c tcp_user_timeout=60000 -c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=6"
			if !found {
				t.Errorf("child: %s", kv)
			}
		}
	}
	if !found {
		t.Error("the child's server gets no dead-link bounds (PGOPTIONS)")
	}
}

// TestDeadLinkOnServer: a real server takes the settings on a session and
// on a replication connection, and pgmove's socket carries TCP_USER_TIMEOUT
// and keepalives.
func TestDeadLinkOnServer(t *testing.T) {
	s := pgtest.Start(t, 13)
	t.Setenv("PGPASSFILE", pgtest.PassFile(t))
	ep := config.Endpoint{Side: config.Source, DB: "postgres", Conninfo: config.Conninfo{"host": "127.0.0.1", "port": strconv.Itoa(s.Port), "user": "postgres", "dbname": "postgres", "sslmode": "disable"}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Connect(ctx, ep, "check")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for k, want := range map[string]string{"tcp_user_timeout": "60000", "tcp_keepalives_idle": "10", "tcp_keepalives_count": "6"} {
		if v, err := c.Setting(ctx, k); err != nil || v != want {
			t.Errorf("server's %s = %q (%v), want %q", k, v, err, want)
		}
	}
	raw, err := c.PgConn().Conn().(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ut, alive, idle int
	_ = raw.Control(func(fd uintptr) {
		ut, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout)
		alive, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		idle, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
	})
	if ut != 60000 || alive != 1 || idle != 10 {
		t.Errorf("pgmove's socket: TCP_USER_TIMEOUT %d, SO_KEEPALIVE %d, TCP_KEEPIDLE %d; want 60000, 1, 10", ut, alive, idle)
	}

	// A walsender takes them at start-up too.
	cfg, err := Config(ep, "check")
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["replication"] = "database"
	for _, k := range []string{"statement_timeout", "idle_in_transaction_session_timeout", "lock_timeout"} {
		delete(cfg.RuntimeParams, k)
	}
	rc, err := pgconn.ConnectConfig(ctx, &cfg.Config)
	if err != nil {
		t.Fatalf("replication connection with the dead-link settings: %v", err)
	}
	defer rc.Close(context.Background())
	res, err := rc.Exec(ctx, "SHOW tcp_user_timeout").ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 || string(res[0].Rows[0][0]) != "60000" {
		t.Errorf("walsender's tcp_user_timeout: %v %v", res, err)
	}
}
