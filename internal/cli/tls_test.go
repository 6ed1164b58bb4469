package cli

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/pgtest"
)

// TestTLS migrates from a source that takes its admin and replication
// roles only over TLS with a client certificate (cert authentication,
// which verifies the certificate's name is the role's): pgmove's own
// connections (sslmode=verify-full, its root certificate, the admin's
// client certificate), pg_dump's, and the target server's subscription
// (sub_conn's certificate, and the root certificate given to pgmove
// through PGSSLROOTCERT only: the subscription carries it, absolute). A
// host name the server certificate does not name is refused by
// verify-full with one line naming the side; sslpassword is refused.
func TestTLS(t *testing.T) {
	x := pgtest.NewTLS(t)
	adminCert, adminKey := x.Client("pgadmin")
	replCert, replKey := x.Client("replicator")
	hba := []string{
		"hostssl meta pgadmin 127.0.0.1/32 cert",
		"host meta pgadmin 127.0.0.1/32 reject",
		"hostssl meta replicator 127.0.0.1/32 cert",
		"host meta replicator 127.0.0.1/32 reject",
	}
	p := newPairWith(t, 15, 17, []func(*pgserver.Options){x.Server(hba...)})
	pgtest.Exec(t, p.src, "meta", `CREATE ROLE pgadmin SUPERUSER LOGIN;
		CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g`)
	srcURL := func(host string) string {
		return fmt.Sprintf("postgres://pgadmin@%s:%d/meta?sslmode=verify-full&sslrootcert=%s&sslcert=%s&sslkey=%s", host, p.src.Port, x.CA, adminCert, adminKey)
	}
	p.writeConfig(fmt.Sprintf("src_url: %q\nsub_conn: %q\n", srcURL("127.0.0.1"),
		fmt.Sprintf("host=127.0.0.1 port=%d dbname=meta user=replicator sslmode=verify-full sslcert=%s sslkey=%s", p.src.Port, replCert, replKey)))
	t.Setenv("PGSSLROOTCERT", x.CA)

	p.must("check")
	p.must("migrate")
	pgtest.Exec(t, p.src, "meta", "INSERT INTO t VALUES (1001, 'streamed over TLS')")
	p.must("progress", "--wait", "--timeout", "60s")
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM t"); n != 1001 {
		t.Fatalf("the target has %d rows, want 1001", n)
	}
	conninfo := pgtest.QueryValue[string](t, p.dst, "test", "SELECT subconninfo FROM pg_subscription")
	for _, want := range []string{"sslmode=verify-full", "sslrootcert=" + x.CA, "sslcert=" + replCert} {
		if !strings.Contains(conninfo, want) {
			t.Errorf("the subscription's connection string lacks %s: %s", want, conninfo)
		}
	}
	if n := pgtest.QueryValue[int64](t, p.src, "meta", `SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)
		WHERE r.usename = 'replicator' AND s.ssl AND s.client_dn LIKE '%replicator%'`); n != 1 {
		t.Errorf("%d walsender(s) of replicator over TLS with its certificate, want 1", n)
	}

	// verify-full checks the name: the certificate is for 127.0.0.1.
	r := p.run("--src", srcURL("localhost"), "check")
	t.Logf("verify-full against localhost: %s", strings.TrimSpace(r.stderr))
	if r.code == 0 || !strings.Contains(r.stderr, "source") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
		t.Errorf("a host name the certificate does not name: %s", r)
	}
	other := pgtest.NewTLS(t)
	r = p.run("--src", strings.Replace(srcURL("127.0.0.1"), x.CA, other.CA, 1), "check")
	if r.code == 0 || !strings.Contains(r.stderr, "source: the server certificate") || !strings.Contains(r.stderr, "sslrootcert") {
		t.Errorf("a server certificate of an authority not trusted: %s", r)
	}
	r = p.run("--src", srcURL("127.0.0.1")+"&sslpassword=Hunter2xyz", "check")
	if r.code == 0 || !strings.Contains(r.stderr, "sslpassword") || strings.Contains(r.stderr, "Hunter2xyz") {
		t.Errorf("sslpassword in --src: %s", r)
	}
}
