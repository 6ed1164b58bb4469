package catalog

import "testing"

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		`public.t`:           `public.t`,
		"public.\"odd\nnm\"": `public."odd\nnm"`,
		"a\tb\x1b[2Jc":       `a\tb\x1b[2Jc`,
		"é\u0085":            `é\u0085`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %s, want %s", in, got, want)
		}
	}
}
