package progress

import (
	stdbytes "bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestTextAndJSONAgree renders reports both ways and checks every figure
// the text shows is the JSON's: rows per table, tables ready, lag and ETA,
// and that what JSON has as null the text calls unknown (never 0).
func TestTextAndJSONAgree(t *testing.T) {
	at := time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)
	reports := map[string]*Report{
		"copy running": {
			Source: Side{Reachable: true}, Target: Side{Reachable: true}, Exists: ptr(false),
			Copy: &CopyProgress{Phase: "copy", Tables: 2, TablesCopied: 1, Bytes: 100 << 20, TotalBytes: 200 << 20, Updated: at},
			Tables: []Table{{Name: "public.pgbench_accounts", State: "copying", Rows: ptr(int64(1428711)), RowsKind: "copied", Bytes: 90 << 20, TotalBytes: ptr(int64(190 << 20))},
				{Name: "public.pgbench_history", State: "copied", Rows: ptr(int64(144000)), RowsKind: "copied", Bytes: 10 << 20, TotalBytes: ptr(int64(10 << 20))}},
			CopyRate: 50 << 20, ETA: ptr(0.5),
		},
		"copy starting, ETA unknown": {
			Source: Side{Reachable: true}, Target: Side{Reachable: true}, Exists: ptr(false),
			Copy:   &CopyProgress{Phase: "copy", Tables: 1, TotalBytes: 1 << 20, Updated: at},
			Tables: []Table{{Name: "public.t", State: "waiting", Rows: ptr(int64(0)), RowsKind: "copied", TotalBytes: ptr(int64(1 << 20))}},
		},
		"replicating": {
			Source: Side{Reachable: true}, Target: Side{Reachable: true}, Exists: ptr(true), Enabled: ptr(true),
			Tables: []Table{{Name: "public.a", State: "ready", Rows: ptr(int64(100)), RowsKind: "estimate"},
				{Name: "public.b", State: "ready"},
				{Name: "public.c", State: "not published"}},
			Ready: ptr(2), Total: 3, LagBytes: ptr(int64(4096)), LagSeconds: ptr(1.5), ETA: nil,
			Problems: []string{"table public.c is in the migration's selection but not in the publication"},
		},
		"source down": {
			Source: Side{Error: "connection refused"}, Target: Side{Reachable: true}, Exists: ptr(true), Enabled: ptr(true),
			Tables: []Table{{Name: "public.a", State: "ready", Rows: ptr(int64(5)), RowsKind: "copied"}},
			Ready:  ptr(1), Total: 1,
			Problems: []string{"source unreachable: connection refused; lag, ETA and readiness unknown"},
		},
		"target down": {
			Source: Side{Reachable: true}, Target: Side{Error: "connection refused"},
			Copy:     &CopyProgress{Phase: "done", Tables: 1, Updated: at},
			Tables:   []Table{{Name: "public.a", State: "copied", Rows: ptr(int64(7)), RowsKind: "copied"}},
			Problems: []string{"target unreachable: connection refused; tables ready, lag, ETA and readiness unknown"},
		},
	}
	for name, r := range reports {
		t.Run(name, func(t *testing.T) {
			r.Time, r.Subscription = at, "sub_x"
			var j, txt stdbytes.Buffer
			if err := r.WriteJSON(&j); err != nil {
				t.Fatal(err)
			}
			r.WriteText(&txt)
			var got struct {
				Tables []struct {
					Table      string
					Rows       *int64
					RowsKind   string `json:"rows_kind"`
					TotalBytes *int64 `json:"total_bytes"`
				}
				Ready    *int     `json:"tables_ready"`
				Total    int      `json:"tables_total"`
				Lag      *int64   `json:"lag_bytes"`
				ETA      *float64 `json:"eta_seconds"`
				CaughtUp *bool    `json:"caught_up"`
			}
			if err := json.Unmarshal(j.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			text := txt.String()
			for _, tb := range got.Tables {
				want := "unknown"
				switch {
				case tb.Rows != nil && tb.RowsKind == "estimate":
					want = fmt.Sprintf("~%d", *tb.Rows)
				case tb.Rows != nil:
					want = fmt.Sprint(*tb.Rows)
				}
				row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(tb.Table) + `\s+.*?\s+(\S+)\s+\S+ \S+\s+(\S+ \S+|unknown)$`).FindStringSubmatch(text)
				if row == nil || row[1] != want || (row[2] == "unknown") != (tb.TotalBytes == nil) {
					t.Errorf("table %s: JSON rows %v (%s), text %q\n%s\n%s", tb.Table, tb.Rows, tb.RowsKind, row, text, j.String())
				}
			}
			summary := strings.TrimSpace(text[strings.LastIndex(strings.TrimSpace(text), "\n")+1:])
			if got.Ready != nil && !strings.Contains(summary, fmt.Sprintf("%d/%d tables ready", *got.Ready, got.Total)) &&
				!strings.Contains(summary, fmt.Sprintf("%d of the subscription's %d tables ready", *got.Ready, got.Total)) {
				t.Errorf("JSON says %d/%d ready, the summary: %s", *got.Ready, got.Total, summary)
			}
			if r.Subscribed() && r.Target.Reachable {
				if got.Lag == nil != strings.Contains(summary, "lag unknown") {
					t.Errorf("JSON lag %v, summary: %s", got.Lag, summary)
				}
				if got.ETA == nil != strings.Contains(summary, "ETA unknown") {
					t.Errorf("JSON ETA %v, summary: %s", got.ETA, summary)
				}
			}
			if r.Copy != nil && r.Copy.Phase == "copy" {
				if got.ETA == nil != strings.Contains(summary, "ETA unknown") {
					t.Errorf("JSON ETA %v, summary: %s", got.ETA, summary)
				}
				if got.ETA != nil && !strings.Contains(summary, "ETA "+seconds(*got.ETA)) {
					t.Errorf("JSON ETA %v, summary: %s", *got.ETA, summary)
				}
			}
			if !r.Source.Reachable || !r.Target.Reachable {
				if got.Lag != nil || got.ETA != nil || got.CaughtUp != nil {
					t.Errorf("a side is down, yet JSON lag %v, ETA %v, caught_up %v", got.Lag, got.ETA, got.CaughtUp)
				}
				if strings.Contains(summary, "lag 0") || strings.Contains(summary, "ETA 0") || !strings.Contains(text, "unreachable") {
					t.Errorf("a side is down, the text: %s", text)
				}
			}
			if r.Blocking() != (len(r.Problems) > 0 || !r.Source.Reachable || !r.Target.Reachable) {
				t.Errorf("Blocking() = %v", r.Blocking())
			}
		})
	}
}
