package cli

import (
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/pgtest"
)

// TestCleanupAfterSwitchover: cleanup ends the reverse replication a
// switchover leaves (the source's subscription, the target's publication
// and slot) along with the migration's own objects; --dry-run shows it and
// changes nothing; rollback is refused afterwards; a rerun drops nothing.
func TestCleanupAfterSwitchover(t *testing.T) {
	p := newPair(t, 15, 16)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE orders (id bigserial PRIMARY KEY, note text);
		INSERT INTO orders (note) SELECT 'n' || g FROM generate_series(1, 100) g;
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
	p.must("migrate")
	p.must("switchover", "--fence", "none")
	src, dst := replicationState(t, p.src, "meta"), replicationState(t, p.dst, "test")
	for _, want := range []string{"subscription sub_pg_meta_meta_reverse true sub_pg_meta_meta_reverse"} {
		if !strings.Contains(src, want) {
			t.Fatalf("after the switchover the source lacks %q:\n%s", want, src)
		}
	}
	for _, want := range []string{"slot sub_pg_meta_meta_reverse logical test", "publication pub_pg_meta_meta_reverse 1"} {
		if !strings.Contains(dst, want) {
			t.Fatalf("after the switchover the target lacks %q:\n%s", want, dst)
		}
	}

	r := p.must("cleanup", "--dry-run")
	for _, want := range []string{`DROP SUBSCRIPTION IF EXISTS "sub_pg_meta_meta_reverse"`, "-- (the source drops the subscription's slot sub_pg_meta_meta_reverse on the target)",
		`DROP PUBLICATION IF EXISTS "pub_pg_meta_meta_reverse"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("cleanup --dry-run lacks %q: %s", want, r)
		}
	}
	if got := replicationState(t, p.src, "meta"); got != src {
		t.Errorf("cleanup --dry-run changed the source:\n%s\nwas:\n%s", got, src)
	}
	if got := replicationState(t, p.dst, "test"); got != dst {
		t.Errorf("cleanup --dry-run changed the target:\n%s\nwas:\n%s", got, dst)
	}

	r = p.must("cleanup")
	for _, want := range []string{`subscription "sub_pg_meta_meta_reverse" of the way back dropped on the source`, `publication "pub_pg_meta_meta_reverse" of the way back dropped on the target`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("cleanup lacks %q: %s", want, r)
		}
	}
	for _, side := range []struct {
		name, db string
		rows     [][]any
	}{
		{"source", "meta", pgtest.QueryRows(t, p.src, "meta", everything)},
		{"target", "test", pgtest.QueryRows(t, p.dst, "test", everything)},
	} {
		if len(side.rows) > 0 {
			t.Errorf("cleanup left on the %s: %v", side.name, side.rows)
		}
	}
	if r := p.run("rollback"); r.code != ExitError || !strings.Contains(r.stderr, `subscription "sub_pg_meta_meta_reverse" does not exist`) {
		t.Errorf("rollback after cleanup should be refused: %s", r)
	}
	if r := p.must("cleanup"); strings.Contains(r.stdout, "dropped") {
		t.Errorf("a second cleanup dropped something: %s", r)
	}
}

// everything lists the replication objects of a server.
const everything = `SELECT 'slot ' || slot_name FROM pg_catalog.pg_replication_slots
	UNION ALL SELECT 'publication ' || pubname FROM pg_catalog.pg_publication
	UNION ALL SELECT 'subscription ' || subname FROM pg_catalog.pg_subscription
	UNION ALL SELECT 'origin ' || roname FROM pg_catalog.pg_replication_origin`
