package plan

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/pgmove/pgmove/internal/config"
)

// ConfigYAML renders the resolved migration as a migration.yml with the
// seed's keys, so that the scripts run exactly the migration the plan was
// written for, whatever flags and working directory plan ran with. The
// migration has no password (config refuses one), so neither has the file.
func ConfigYAML(m *config.Migration) []byte {
	var b strings.Builder
	b.WriteString("# migration.yml of " + commentText(dirName(m)) + ", written by pgmove plan.\n")
	b.WriteString("# The scripts of this directory use it. Edit the original and rerun pgmove plan\n")
	b.WriteString("# rather than this copy. Passwords come from ~/.pgpass, PGPASSFILE or PGPASSWORD.\n")
	kv := func(k string, v any) {
		out, _ := yaml.Marshal(v)
		s := strings.TrimSuffix(string(out), "\n")
		if l, ok := v.([]string); ok {
			s = "[ " + strings.Join(quoteAll(l), ", ") + " ]"
			if len(l) == 0 {
				return
			}
		}
		fmt.Fprintf(&b, "%s: %s\n", k, s)
	}
	str := func(k, v string) {
		if v != "" {
			kv(k, v)
		}
	}
	admin := m.Src.User()
	if m.Dst.User() != admin {
		admin = ""
	}
	side := func(p string, e config.Endpoint, list []string) {
		b.WriteString("\n")
		str(p+"_cls", e.Cluster)
		str(p+"_db", e.DB)
		if simple(e.Conninfo, admin) {
			str(p+"_ip", e.Host())
			if port := e.Conninfo["port"]; port != "" {
				n, _ := strconv.Atoi(port)
				kv(p+"_port", n)
			}
		} else {
			str(p+"_url", e.Conninfo.String())
		}
		kv(p+"_list", list)
	}
	side("src", m.Src, m.SrcList)
	side("dst", m.Dst, m.DstList)
	str("dst_dns", m.DstDNS)
	str("dst_vip", m.DstVIP)
	b.WriteString("\n")
	str("pg_admin_username", admin)
	str("pg_replication_username", m.ReplUser)
	kv("migration_context_dir", filepath.Dir(m.ContextDir))
	str("pub_name", m.PubName)
	str("sub_name", m.SubName)
	if d := derivedSubConn(m); d != m.SubConn.String() {
		str("sub_conn", m.SubConn.String())
	}
	var inc, exc []string
	for _, p := range m.Include {
		inc = append(inc, p.Text)
	}
	for _, p := range m.Exclude {
		exc = append(exc, p.Text)
	}
	kv("include", inc)
	kv("exclude", exc)
	str("max_lag", size(m.MaxLag))
	str("copy", m.Copy)
	if m.Jobs != 0 {
		kv("jobs", m.Jobs)
	}
	if m.SplitLarger != 0 {
		str("split_larger_than", size(m.SplitLarger))
	}
	// Each item double-quoted: a URL's "?" or ":" is not plain in a flow list.
	list := func(k string, l []string) {
		if len(l) == 0 {
			return
		}
		q := make([]string, len(l))
		for i, s := range l {
			j, _ := json.Marshal(s)
			q[i] = string(j)
		}
		fmt.Fprintf(&b, "%s: [ %s ]\n", k, strings.Join(q, ", "))
	}
	// The switchover's settings, for the switchover and rollback scripts.
	// pgbouncer_ini is absolute: config resolved it against the original.
	if len(m.PgBouncer) > 0 || m.PgBouncerINI != "" || m.PgBouncerDB != "" || m.Fence != "" || len(m.AppRoles) > 0 || m.MaxPause != 0 || m.SwitchHook != "" {
		b.WriteString("\n")
	}
	list("pgbouncer", m.PgBouncer)
	str("pgbouncer_ini", m.PgBouncerINI)
	str("pgbouncer_db", m.PgBouncerDB)
	str("fence", m.Fence)
	list("app_roles", m.AppRoles)
	if m.MaxPause != 0 {
		str("max_pause", m.MaxPause.String())
	}
	str("switch_hook", m.SwitchHook)
	return []byte(b.String())
}

// quoteAll writes each string as an item of a flow sequence ([ a, b ]):
// plain where it reads back as itself there, double-quoted where not (a
// URL's ':' or '?', a comma, a bracket).
func quoteAll(l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		q, _ := yaml.Marshal(s)
		out[i] = strings.TrimSuffix(string(q), "\n")
		var back []string
		if err := yaml.Unmarshal([]byte("[ "+out[i]+" ]"), &back); err != nil || len(back) != 1 || back[0] != s {
			q, _ = yaml.Marshal(&yaml.Node{Kind: yaml.ScalarNode, Style: yaml.DoubleQuotedStyle, Value: s})
			out[i] = strings.TrimSuffix(string(q), "\n")
		}
	}
	return out
}

// simple reports whether an endpoint can be written with the seed's keys
// (ip, port, db and the shared admin user) rather than a connection string.
func simple(ci config.Conninfo, admin string) bool {
	for k, v := range ci {
		switch k {
		case "host":
			if v == "" || strings.ContainsAny(v, ",/") {
				return false
			}
		case "port", "dbname":
		case "user":
			if v != admin {
				return false
			}
		default:
			return false
		}
	}
	return ci["host"] != "" && (ci["user"] != "" || admin == "")
}

// derivedSubConn is the sub_conn config would derive when none is given.
func derivedSubConn(m *config.Migration) string {
	f := &config.File{DstIP: "derived", DstDB: "derived", PgReplicationUsername: m.ReplUser, MigrationContextDir: "/"}
	d, err := config.Resolve(f, config.Overrides{Src: m.Src.Conninfo.String()})
	if err != nil {
		return ""
	}
	return d.SubConn.String()
}

func size(n int64) string {
	for _, u := range []struct {
		s string
		b int64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}} {
		if n >= u.b && n%u.b == 0 {
			return fmt.Sprintf("%d%s", n/u.b, u.s)
		}
	}
	return strconv.FormatInt(n, 10)
}
