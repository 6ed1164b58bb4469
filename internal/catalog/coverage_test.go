package catalog

import (
	"strings"
	"testing"
)

func TestGaps(t *testing.T) {
	sel := []*Table{{Schema: "public", Name: "a"}, {Schema: "public", Name: "b"}, {Schema: "public", Name: "c"}, {Schema: "public", Name: "d"}, {Schema: "public", Name: "e"}}
	q := func(n string) QualifiedName { return QualifiedName{Schema: "public", Name: n} }
	pub := []QualifiedName{q("a"), q("c"), q("d")}
	sub := []QualifiedName{q("a")}
	onTarget := map[QualifiedName]bool{q("b"): true, q("c"): true}
	want := map[string][]string{
		"b": {"not in the publication", "create-pub", "create-sub"},          // on the target, not published
		"c": {"not in the subscription", "create-sub"},                       // published, on the target
		"d": {"missing on the target", "the apply stops", "copy-schema"},     // published, not on the target
		"e": {"neither in the publication nor on the target", "copy-schema"}, // nowhere
	}
	gaps := Gaps(sel, pub, sub, onTarget)
	if len(gaps) != len(want) {
		t.Fatalf("gaps: %+v", gaps)
	}
	for _, g := range gaps {
		p := g.Problem()
		for _, w := range want[g.Table.Name] {
			if !strings.Contains(p, w) {
				t.Errorf("%s: %q lacks %q", g.Table, p, w)
			}
		}
		if strings.Contains(p, "replication stops") {
			t.Errorf("%s: %q", g.Table, p)
		}
		if g.Table.Name == "c" && strings.Contains(g.Fix(), "create-pub") {
			t.Errorf("a published table's fix: %q", g.Fix())
		}
	}
}
