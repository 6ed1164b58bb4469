package schema

import (
	"strings"
	"testing"
)

func TestScriptFor(t *testing.T) {
	script := `--
-- PostgreSQL database dump
--

\restrict abcDEF123

SET statement_timeout = 0;
SET lock_timeout = 0;
SET transaction_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: f(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.f() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
SET transaction_timeout = 0;
END $$;

\unrestrict abcDEF123
`
	got, err := scriptFor([]byte(script), 15)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, `\restrict`) || strings.Contains(got, `\unrestrict`) {
		t.Errorf("meta-commands left in:\n%s", got)
	}
	if n := strings.Count(got, "SET transaction_timeout = 0;"); n != 1 {
		t.Errorf("want only the function body's SET transaction_timeout kept, got %d:\n%s", n, got)
	}
	if !strings.Contains(got, "SET lock_timeout = 0;") {
		t.Errorf("settings every major knows must stay:\n%s", got)
	}
	got17, _ := scriptFor([]byte(script), 17)
	if n := strings.Count(got17, "SET transaction_timeout = 0;"); n != 2 {
		t.Errorf("a 17 target knows transaction_timeout: got %d", n)
	}
	if _, err := scriptFor([]byte("\\connect other\nSELECT 1;\n"), 15); err == nil {
		t.Error("an unknown meta-command must be refused, not run as SQL")
	}
	for _, c := range []struct {
		tool, target int
		want         bool
	}{{18, 15, true}, {17, 16, true}, {18, 17, false}, {16, 15, false}, {18, 0, false}} {
		if got := needsScript(c.tool, c.target); got != c.want {
			t.Errorf("needsScript(%d, %d) = %v", c.tool, c.target, got)
		}
	}
}
