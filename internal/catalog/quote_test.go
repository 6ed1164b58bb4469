package catalog

import (
	"strings"
	"testing"
)

// FuzzQuoteName: a quoted name reads back as the name, the way the server
// reads an identifier, and is bare only when bare means the same.
func FuzzQuoteName(f *testing.F) {
	for _, s := range []string{"orders", "Orders", "user", `we"ird`, "a b", "", "_x$1", "1abc", "日本", "select"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := QuoteName(s)
		if strings.HasPrefix(q, `"`) {
			if len(q) < 2 || !strings.HasSuffix(q, `"`) {
				t.Fatalf("QuoteName(%q) = %s: unbalanced", s, q)
			}
			inner := q[1 : len(q)-1]
			if strings.Contains(strings.ReplaceAll(inner, `""`, ""), `"`) {
				t.Fatalf("QuoteName(%q) = %s: a lone quote inside", s, q)
			}
			if got := strings.ReplaceAll(inner, `""`, `"`); got != s {
				t.Fatalf("QuoteName(%q) = %s reads back as %q", s, q, got)
			}
			return
		}
		if q != s || reserved[s] || s == "" {
			t.Fatalf("QuoteName(%q) = %s bare", s, q)
		}
		for i, r := range s {
			if !(r >= 'a' && r <= 'z' || r == '_' || i > 0 && (r >= '0' && r <= '9' || r == '$')) {
				t.Fatalf("QuoteName(%q) left %q bare, which the server would fold or refuse", s, r)
			}
		}
	})
}
