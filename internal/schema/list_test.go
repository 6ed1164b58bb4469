package schema

import "testing"

func TestParseListSections(t *testing.T) {
	list := `;
; Archive created at 2026-11-24 18:51:26 UTC
;
7; 2615 16535 SCHEMA - My Schema postgres
221; 1259 16537 TABLE My Schema Odd "Tab" é postgres
3494; 0 0 SEQUENCE OWNED BY My Schema Odd "Tab" é_id_seq postgres
227; 1259 16577 TABLE public ct postgres
3477; 0 0 ACL public TABLE ct postgres
3325; 0 0 TABLE ATTACH public parted_1 postgres
3325; 2606 16582 CONSTRAINT public ct ct_pkey postgres
3323; 2606 16583 CHECK CONSTRAINT public ct v_small postgres
3478; 0 0 COMMENT public CONSTRAINT v_small ON ct postgres
3326; 1259 16584 INDEX public ct_v postgres
3479; 0 0 COMMENT public INDEX ct_v postgres
3342; 0 0 INDEX ATTACH public parted_1_k_idx postgres
3327; 2620 16586 TRIGGER public ct ct_trg postgres
3480; 0 0 COMMENT public TRIGGER ct_trg ON ct postgres
3490; 3466 16600 EVENT TRIGGER - audit_ddl postgres
`
	want := []struct{ desc, section string }{
		{"SCHEMA", "pre-data"}, {"TABLE", "pre-data"}, {"SEQUENCE OWNED BY", "pre-data"}, {"TABLE", "pre-data"},
		{"ACL", "pre-data"}, {"TABLE ATTACH", "pre-data"}, {"CONSTRAINT", "post-data"}, {"CHECK CONSTRAINT", "post-data"},
		{"COMMENT", "post-data"}, {"INDEX", "post-data"}, {"COMMENT", "post-data"}, {"INDEX ATTACH", "post-data"},
		{"TRIGGER", "post-data"}, {"COMMENT", "post-data"}, {"EVENT TRIGGER", "post-data"},
	}
	got := ParseList([]byte(list))
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Desc != w.desc || got[i].Section() != w.section {
			t.Errorf("entry %d (%s): desc %q section %q, want %q %q", i, got[i].Line, got[i].Desc, got[i].Section(), w.desc, w.section)
		}
	}
	if got[1].Rest != `My Schema Odd "Tab" é postgres` || got[7].Rest != "public ct v_small postgres" {
		t.Errorf("rest: %q / %q", got[1].Rest, got[7].Rest)
	}
}
