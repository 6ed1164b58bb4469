package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// ForServer writes the TLS settings pgmove takes from its environment into
// a server's connection string, keeps what the string says itself, and
// makes certificate paths absolute.
func TestForServer(t *testing.T) {
	t.Setenv("PGSSLMODE", "verify-full")
	t.Setenv("PGSSLROOTCERT", "certs/ca.crt")
	t.Setenv("PGSSLCERT", "")
	ci := Conninfo{"host": "h", "sslcert": "client.crt", "sslkey": "/abs/client.key"}
	got := ci.ForServer()
	wd, _ := os.Getwd()
	want := Conninfo{"host": "h", "sslmode": "verify-full", "sslrootcert": filepath.Join(wd, "certs/ca.crt"),
		"sslcert": filepath.Join(wd, "client.crt"), "sslkey": "/abs/client.key"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ForServer: %v, want %v", got, want)
	}
	if _, ok := ci["sslmode"]; ok {
		t.Error("ForServer changed its receiver")
	}
	if got := (Conninfo{"sslmode": "disable"}).ForServer()["sslmode"]; got != "disable" {
		t.Errorf("the string's own sslmode was replaced by the environment's: %s", got)
	}
	if r := (Conninfo{"sslpassword": "key-secret", "password": "y"}).Redacted(); strings.Contains(r, "key-secret") || !strings.Contains(r, "sslpassword=********") {
		t.Errorf("Redacted shows the key's passphrase: %s", r)
	}
}
