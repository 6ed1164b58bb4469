package replication

import "testing"

func TestLastWorkerError(t *testing.T) {
	log := `2026-12-03 14:17:27.969 UTC [23740] 00000 LOG:  logical replication apply worker for subscription "sub" has started
2026-12-03 14:17:28.001 UTC [1] 42P01 ERROR:  relation "nope" does not exist at character 15
2026-12-03 14:17:28.002 UTC [23740] 22P02 ERROR:  invalid input value for enum st: "c"
2026-12-03 14:17:28.002 UTC [23740] 22P02 CONTEXT:  processing remote data for replication origin "pg_16393" during message type "INSERT" for replication target relation "public.items" in transaction 750, finished at 0/1929E00
2026-12-03 14:17:28.010 UTC [23608] 00000 LOG:  background worker "logical replication worker" (PID 23740) exited with exit code 1
2026-12-03 14:17:29.001 UTC [2] 42P01 ERROR:  relation "other" does not exist at character 15
`
	if got, want := lastWorkerError(log), `invalid input value for enum st: "c"`; got != want {
		t.Errorf("lastWorkerError = %q, want %q", got, want)
	}
	if got := lastWorkerError("2026-12-03 LOG:  database system is ready\n"); got != "" {
		t.Errorf("no error: %q", got)
	}
}
