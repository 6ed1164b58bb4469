package cluster

import (
	"os"
	"strings"

	"github.com/pgmove/pgmove/internal/config"
)

// ChildConn is how a child program (pg_dump, pg_restore, psql) reaches a
// side: a password-free connection string for its argv, and an environment
// that carries the password libpq resolved for pgmove, so the child
// authenticates the same way without the secret ever showing in `ps`.
type ChildConn struct {
	Conninfo string   // for -d; holds no password
	Env      []string // os.Environ() plus PGPASSWORD/PGAPPNAME as needed
}

// Child prepares a child program's connection to one side.
func Child(ep config.Endpoint, app string) (ChildConn, error) {
	cfg, err := Config(ep, app)
	if err != nil {
		return ChildConn{}, err
	}
	ci := ep.Conninfo.Clone()
	delete(ci, "password")
	env := make([]string, 0, len(os.Environ())+2)
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PGPASSWORD=") || strings.HasPrefix(kv, "PGAPPNAME=") {
			continue
		}
		env = append(env, kv)
	}
	if cfg.Password != "" {
		env = append(env, "PGPASSWORD="+cfg.Password)
	}
	env = append(env, "PGAPPNAME=pgmove/"+app)
	return ChildConn{Conninfo: ci.String(), Env: env}, nil
}
