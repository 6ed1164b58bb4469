package switchover

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
)

// Bouncer is one pgbouncer admin console.
type Bouncer struct {
	URL  string // as given, for messages (redacted)
	conn *pgx.Conn
}

// ConnectBouncer opens an admin console (database "pgbouncer"). The console
// speaks only the simple query protocol and refuses startup parameters it
// does not know, so none is sent.
func ConnectBouncer(ctx context.Context, url string) (*Bouncer, error) {
	shown := config.Redact(url)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("pgbouncer %s: connection settings: %s", shown, cluster.OneLine(err.Error()))
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cfg.StatementCacheCapacity, cfg.DescriptionCacheCapacity = 0, 0
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgbouncer %s: connect to the admin console: %s; check the URL (database pgbouncer, a user in admin_users)", shown, cluster.OneLine(err.Error()))
	}
	return &Bouncer{URL: shown, conn: c}, nil
}

// Command runs an admin command such as PAUSE meta, RESUME meta or RELOAD.
func (b *Bouncer) Command(ctx context.Context, cmd string) error {
	if _, err := b.conn.Exec(ctx, cmd); err != nil {
		return fmt.Errorf("pgbouncer %s: %s: %s", b.URL, cmd, cluster.OneLine(err.Error()))
	}
	return nil
}

// Close closes the console connection.
func (b *Bouncer) Close() {
	if b != nil && b.conn != nil {
		_ = b.conn.Close(context.Background())
	}
}

// bouncerIdent quotes a database name for an admin command.
func bouncerIdent(name string) string { return pgx.Identifier{name}.Sanitize() }

// Route is where a pgbouncer database entry sends its clients.
type Route struct{ Host, Port, DB string }

func (r Route) String() string { return fmt.Sprintf("host=%s port=%s dbname=%s", r.Host, r.Port, r.DB) }

// ReadRoute returns the route of the entry named db in the [databases]
// section of a pgbouncer.ini.
func ReadRoute(path, db string) (Route, error) {
	lines, i, err := findEntry(path, db)
	if err != nil {
		return Route{}, err
	}
	_, value, _ := strings.Cut(lines[i], "=")
	kv := parseEntry(value)
	return Route{Host: kv.m["host"], Port: kv.m["port"], DB: kv.m["dbname"]}, nil
}

// WriteRoute points the entry named db at r, keeping its other settings
// (pool size, user, ...), and replaces the file atomically.
func WriteRoute(path, db string, r Route) error {
	lines, i, err := findEntry(path, db)
	if err != nil {
		return err
	}
	name, value, _ := strings.Cut(lines[i], "=")
	kv := parseEntry(value)
	var rest []string
	for _, k := range kv.order {
		if k != "host" && k != "port" && k != "dbname" {
			rest = append(rest, k+"="+quoteEntry(kv.m[k]))
		}
	}
	parts := append([]string{"host=" + quoteEntry(r.Host), "port=" + quoteEntry(r.Port), "dbname=" + quoteEntry(r.DB)}, rest...)
	lines[i] = strings.TrimRight(name, " \t") + " = " + strings.Join(parts, " ")
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("pgbouncer.ini: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".pgmove-pgbouncer-*.ini")
	if err != nil {
		return fmt.Errorf("pgbouncer.ini: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("pgbouncer.ini: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("pgbouncer.ini: %w", err)
	}
	tmp.Close()
	if err := os.Chmod(tmp.Name(), fi.Mode().Perm()); err != nil {
		return fmt.Errorf("pgbouncer.ini: %w", err)
	}
	// pgbouncer, which runs as its own user, must still read it.
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
		if err := os.Chown(tmp.Name(), int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("pgbouncer.ini: %w", err)
		}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("pgbouncer.ini: %w", err)
	}
	return nil
}

// findEntry reads the file and finds the line of the entry named db in its
// [databases] section.
func findEntry(path, db string) ([]string, int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("pgbouncer.ini: %w", err)
	}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	section := ""
	for i, l := range lines {
		t := strings.TrimSpace(l)
		switch {
		case t == "" || strings.HasPrefix(t, ";") || strings.HasPrefix(t, "#"):
		case strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]"):
			section = strings.ToLower(strings.TrimSpace(t[1 : len(t)-1]))
		case section == "databases":
			name, _, ok := strings.Cut(t, "=")
			if !ok {
				continue
			}
			name = strings.TrimSpace(name)
			if strings.HasPrefix(name, `"`) && strings.HasSuffix(name, `"`) && len(name) >= 2 {
				name = name[1 : len(name)-1]
			}
			if name == db {
				return lines, i, nil
			}
		}
	}
	return nil, 0, fmt.Errorf("pgbouncer.ini %s has no entry %q in its [databases] section; add one, or name the entry with --pgbouncer-db", path, db)
}

// entry is a pgbouncer connection string's settings, in their order.
type entry struct {
	m     map[string]string
	order []string
}

// parseEntry reads "key=value key='quoted value'" pairs.
func parseEntry(s string) entry {
	e := entry{m: map[string]string{}}
	s = strings.TrimSpace(s)
	for len(s) > 0 {
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		k = strings.TrimSpace(k)
		rest = strings.TrimLeft(rest, " \t")
		var v string
		if strings.HasPrefix(rest, "'") {
			var b strings.Builder
			j := 1
			for ; j < len(rest); j++ {
				if rest[j] == '\'' {
					if j+1 < len(rest) && rest[j+1] == '\'' {
						b.WriteByte('\'')
						j++
						continue
					}
					break
				}
				b.WriteByte(rest[j])
			}
			v, rest = b.String(), rest[min(j+1, len(rest)):]
		} else {
			end := strings.IndexAny(rest, " \t")
			if end < 0 {
				end = len(rest)
			}
			v, rest = rest[:end], rest[end:]
		}
		if _, seen := e.m[k]; !seen {
			e.order = append(e.order, k)
		}
		e.m[k] = v
		s = strings.TrimSpace(rest)
	}
	return e
}

// quoteEntry quotes a value that needs it in a pgbouncer connection string.
func quoteEntry(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t'\"=") {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}
