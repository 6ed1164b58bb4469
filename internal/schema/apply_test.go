package schema

import "testing"

func TestTypeTakes(t *testing.T) {
	for _, c := range []struct {
		dst, src string
		want     bool
	}{
		{"jsonb", "json", true},
		{"text", "character varying(10)", true},
		{"character varying(20)", "character varying(10)", true},
		{"character varying(5)", "character varying(10)", false},
		{"character varying", "integer", true},
		{"bigint", "integer", true},
		{"integer", "bigint", false},
		{"integer", "text", false},
		{"numeric", "bigint", true},
		{"numeric(10,2)", "numeric(8,2)", true},
		{"numeric(10,2)", "numeric(10,3)", false},
		{"numeric(10,2)", "integer", false},
		{"integer[]", "smallint[]", true},
		{"integer[]", "integer", false},
		{"public.st", "text", false},
		{"timestamp with time zone", "timestamp without time zone", false},
	} {
		if got := TypeTakes(c.dst, c.src); got != c.want {
			t.Errorf("TypeTakes(%q, %q) = %v, want %v", c.dst, c.src, got, c.want)
		}
	}
}

func TestEnumStops(t *testing.T) {
	if s := enumStops([]string{"a", "b", "c"}, []string{"a", "b"}); s == "" {
		t.Error("a label the target lacks does not stop the apply?")
	}
	if s := enumStops([]string{"a"}, []string{"a", "b"}); s != "" {
		t.Errorf("a label only the target has: %q", s)
	}
}
