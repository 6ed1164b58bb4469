package cli

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/pgtest"
)

// TestOtherSubscriptionRefused: a target database where another
// subscription already writes one of this migration's tables is refused by
// check and migrate, naming it and the table, with nothing made; one that
// replicates other tables is only reported.
func TestOtherSubscriptionRefused(t *testing.T) {
	p := newPair(t, 15, 16)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE shared (id int PRIMARY KEY); CREATE TABLE mine (id int PRIMARY KEY);
		CREATE TABLE elsewhere (id int PRIMARY KEY); CREATE PUBLICATION other_pub FOR TABLE shared; CREATE PUBLICATION third_pub FOR TABLE elsewhere`)
	pgtest.Exec(t, p.dst, "test", "CREATE TABLE shared (id int PRIMARY KEY); CREATE TABLE elsewhere (id int PRIMARY KEY)")
	conn := fmt.Sprintf("host=127.0.0.1 port=%d dbname=meta user=postgres password=%s", p.src.Port, pgtest.Password())
	pgtest.Exec(t, p.dst, "test", fmt.Sprintf("CREATE SUBSCRIPTION other_sub CONNECTION '%s' PUBLICATION other_pub WITH (copy_data = false)", conn))
	// Only elsewhere is not selected: the third subscription is not this migration's business.
	p.writeConfig("exclude: [ public.elsewhere ]\n")
	pgtest.Exec(t, p.dst, "test", fmt.Sprintf("CREATE SUBSCRIPTION third_sub CONNECTION '%s' PUBLICATION third_pub WITH (copy_data = false)", conn))

	r := p.run("check")
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "other_sub") || !strings.Contains(r.stdout+r.stderr, "shared") {
		t.Fatalf("check with another subscription writing a selected table: %s", r)
	}
	if !strings.Contains(r.stdout, "replicates none of this migration's tables") {
		t.Errorf("a subscription of other tables is not reported as harmless: %s", r)
	}
	r = p.run("migrate")
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "other_sub") {
		t.Fatalf("migrate with another subscription writing a selected table: %s", r)
	}
	if n := pgtest.QueryValue[int64](t, p.src, "meta", "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'sub_pg_meta_meta'"); n != 0 {
		t.Errorf("the refused migrate made its slot")
	}
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM pg_subscription WHERE subname = 'sub_pg_meta_meta'"); n != 0 {
		t.Errorf("the refused migrate made its subscription")
	}
	pgtest.Exec(t, p.dst, "test", "DROP SUBSCRIPTION other_sub")
	pgtest.Exec(t, p.dst, "test", "DROP SUBSCRIPTION third_sub")
}
