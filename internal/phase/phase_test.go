package phase

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
	"time"
)

func TestDoneJSON(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, nil)))
	defer slog.SetDefault(old)

	Done(Copy, time.Now().Add(-1500*time.Millisecond), "tables", 3)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON object: %q: %v", buf.String(), err)
	}
	if rec["msg"] != Msg || rec[Key] != Copy || rec["tables"] != 3.0 {
		t.Fatalf("record = %v", rec)
	}
	if s, _ := rec[SecondsKey].(float64); s < 1.5 || s > 60 {
		t.Fatalf("seconds = %v, want about 1.5", rec[SecondsKey])
	}
}
