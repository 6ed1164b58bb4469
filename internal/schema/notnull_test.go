package schema

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/pgtest"
)

// TestDiffNotNull: an 18 side's NOT NULL constraints (named, NOT VALID, NO
// INHERIT) against a 17 side's column flags are equal after a restore, and
// a constraint left NOT VALID on the target is a difference whose fix
// validates it; between two 18 sides, a NO INHERIT or a name that differs
// is found too.
func TestDiffNotNull(t *testing.T) {
	pgtest.UseClient18(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s17, s18 := pgtest.Start(t, 17), pgtest.Start(t, 18)
	for _, db := range []string{"test", "meta18", "test18"} {
		pgtest.CreateDB(t, s18, db)
	}
	pgtest.CreateDB(t, s17, "meta")
	const ddl = `CREATE TABLE parent (id integer PRIMARY KEY, a text NOT NULL, b text);
		CREATE TABLE child (c integer NOT NULL) INHERITS (parent);`
	pgtest.Exec(t, s17, "meta", ddl)
	pgtest.Exec(t, s18, "meta18", `CREATE TABLE parent (id integer PRIMARY KEY, a text NOT NULL, b text,
			d text DEFAULT 'x' CONSTRAINT parent_d_never_null NOT NULL NO INHERIT);
		CREATE TABLE child (c integer NOT NULL) INHERITS (parent);
		ALTER TABLE parent ADD CONSTRAINT parent_b_not_null NOT NULL b NOT VALID;`)

	t.Run("17-to-18", func(t *testing.T) {
		restoreSchema(t, ctx, s17, "meta", s18, "test")
		src, dst := connect(t, s17, "meta", config.Source), connect(t, s18, "test", config.Target)
		if ds, err := Diff(ctx, src, dst); err != nil {
			t.Fatal(err)
		} else if b := Blocking(ds); len(b) > 0 {
			t.Fatalf("differences right after the restore:\n%s", report(b))
		}
		// The target's NOT NULL on a is now NOT VALID: it no longer
		// guarantees what the source's flag does.
		pgtest.Exec(t, s18, "test", `ALTER TABLE parent ALTER COLUMN a DROP NOT NULL;
			ALTER TABLE parent ADD CONSTRAINT parent_a_nn NOT NULL a NOT VALID`)
		ds, err := Diff(ctx, src, dst)
		if err != nil {
			t.Fatal(err)
		}
		b := Blocking(ds)
		if len(b) != 1 || b[0].Object != "public.parent.a" || !strings.Contains(b[0].Target, "NOT NULL NOT VALID") ||
			b[0].Fix != `ALTER TABLE "public"."parent" VALIDATE CONSTRAINT "parent_a_nn";` {
			t.Fatalf("want one difference on parent.a, NOT VALID on the target, fixed by VALIDATE:\n%s", report(b))
		}
		applyFixes(t, ctx, dst, b)
		if ds, err := Diff(ctx, src, dst); err != nil {
			t.Fatal(err)
		} else if b := Blocking(ds); len(b) > 0 {
			t.Errorf("differences left after the fix:\n%s", report(b))
		}
	})

	t.Run("18-to-18", func(t *testing.T) {
		restoreSchema(t, ctx, s18, "meta18", s18, "test18")
		src, dst := connect(t, s18, "meta18", config.Source), connect(t, s18, "test18", config.Target)
		if ds, err := Diff(ctx, src, dst); err != nil {
			t.Fatal(err)
		} else if b := Blocking(ds); len(b) > 0 {
			t.Fatalf("differences right after the restore:\n%s", report(b))
		}
		pgtest.Exec(t, s18, "test18", `ALTER TABLE parent RENAME CONSTRAINT parent_b_not_null TO other_name;
			ALTER TABLE parent DROP CONSTRAINT parent_d_never_null;
			ALTER TABLE parent ADD CONSTRAINT parent_d_never_null NOT NULL d`)
		ds, err := Diff(ctx, src, dst)
		if err != nil {
			t.Fatal(err)
		}
		b := Blocking(ds)
		got := map[string]Difference{}
		for _, d := range b {
			got[d.Object] = d
		}
		if d := got["public.parent.b"]; d.Fix != `ALTER TABLE "public"."parent" RENAME CONSTRAINT "other_name" TO "parent_b_not_null";` {
			t.Errorf("renamed NOT NULL constraint of parent.b: fix %q\n%s", d.Fix, report(b))
		}
		if d := got["public.parent.d"]; !strings.Contains(d.Source, "NO INHERIT") || strings.Contains(d.Target, "NO INHERIT") {
			t.Errorf("NO INHERIT lost on parent.d not found:\n%s", report(b))
		}
	})
}
