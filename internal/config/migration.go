package config

import (
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Side names one end of a migration in every message pgmove prints.
type Side string

const (
	Source Side = "source"
	Target Side = "target"
)

// Endpoint is how pgmove reaches one side. It never holds a password: libpq's
// own sources (.pgpass, PGPASSFILE, PGPASSWORD, service files) supply it when
// connecting.
type Endpoint struct {
	Side     Side
	Conninfo Conninfo // as the user gave it, password-free
	Cluster  string   // src_cls / dst_cls
	DB       string
	// From is what the user gave for this side, so messages name it in
	// their words: the flag ("--src") or config key ("src_url") of a URL,
	// or empty when the seed's parts (src_ip, src_port, src_db) made it.
	From string
}

// key is the seed's prefix of this side's config keys.
func (e Endpoint) key() string {
	if e.Side == Target {
		return "dst"
	}
	return "src"
}

// AddressKey names, for a message, what sets this side's host and port:
// "the host and port in --src", or "src_ip/src_port".
func (e Endpoint) AddressKey() string {
	if e.From != "" {
		return "the host and port in " + e.From
	}
	return e.key() + "_ip/" + e.key() + "_port"
}

// HostKey names what sets this side's host: "the host in --src", or "src_ip".
func (e Endpoint) HostKey() string {
	if e.From != "" {
		return "the host in " + e.From
	}
	return e.key() + "_ip"
}

// DBKey names what sets this side's database: "the database name in --src"
// (the URL's path), or "src_db".
func (e Endpoint) DBKey() string {
	if e.From != "" {
		return "the database name in " + e.From
	}
	return e.key() + "_db"
}

// ConnString is the password-free libpq connection string.
func (e Endpoint) ConnString() string { return e.Conninfo.String() }

// Host is the host part as given (may be empty: libpq defaults apply).
func (e Endpoint) Host() string { return e.Conninfo["host"] }

// Port is the port as given, or "5432".
func (e Endpoint) Port() string {
	if p := e.Conninfo["port"]; p != "" {
		return p
	}
	return "5432"
}

// User is the user as given (may be empty: libpq defaults apply).
func (e Endpoint) User() string { return e.Conninfo["user"] }

// Display is a short password-free label such as dba@10.0.0.1:5432/meta.
func (e Endpoint) Display() string {
	host := e.Host()
	if host == "" {
		host = "localhost"
	}
	s := net.JoinHostPort(host, e.Port()) + "/" + e.DB
	if u := e.User(); u != "" {
		s = u + "@" + s
	}
	return s
}

// Migration is the resolved description of one migration: both endpoints,
// the names of the objects pgmove creates, and where its files live.
type Migration struct {
	Src, Dst    Endpoint
	ReplUser    string   // role the subscription connects as
	SubConn     Conninfo // the target server's connection to the source, password-free
	SubConnSet  bool     // SubConn is the config's sub_conn, not made from the source's endpoint
	PubName     string
	SubName     string
	SlotName    string
	ContextDir  string // <migration_context_dir>/<src_cls>.<src_db>
	Include     []Pattern
	Exclude     []Pattern
	MaxLag      int64 // bytes: migrate is done when the lag is below this
	Copy        string
	Jobs        int
	SplitLarger int64

	SrcList, DstList []string
	DstDNS, DstVIP   string
	ConfigFile       string

	// The switchover's settings, as in migration.yml (flags win).
	PgBouncer    []string
	PgBouncerINI string
	PgBouncerDB  string
	Fence        string
	AppRoles     []string
	MaxPause     time.Duration
	SwitchHook   string
}

// Overrides are command-line settings that win over migration.yml.
type Overrides struct {
	Src, Dst   string
	ConfigFile string
	Include    []string
	Exclude    []string
}

// Resolve combines the file (may be nil) and the flags into a Migration.
func Resolve(f *File, o Overrides) (*Migration, error) {
	if f == nil {
		f = &File{}
	}
	m := &Migration{ConfigFile: o.ConfigFile, SrcList: f.SrcList, DstList: f.DstList, DstDNS: f.DstDNS, DstVIP: f.DstVIP}
	var err error
	m.Src, err = endpoint(Source, o.Src, "--src", f.SrcURL, "src_url", f.SrcIP, "src_ip", f.SrcPort, f.SrcDB, "src_db", f.SrcCls, f.PgAdminUsername)
	if err != nil {
		return nil, err
	}
	m.Dst, err = endpoint(Target, o.Dst, "--dst", f.DstURL, "dst_url", f.DstIP, "dst_ip", f.DstPort, f.DstDB, "dst_db", f.DstCls, f.PgAdminUsername)
	if err != nil {
		return nil, err
	}

	m.ReplUser = f.PgReplicationUsername
	if m.ReplUser == "" {
		m.ReplUser = f.PgReplicatoinUsername
	}
	if f.SubConn != "" {
		ci, err := ParseConninfo(f.SubConn)
		if err != nil {
			return nil, fmt.Errorf("config: sub_conn: %w", err)
		}
		if _, ok := ci["password"]; ok {
			return nil, fmt.Errorf("config: sub_conn holds a password; remove it and put the password in the ~/.pgpass of the user running pgmove (pgmove passes it to the target) or of the target server's OS user")
		}
		if _, ok := ci["sslpassword"]; ok {
			return nil, fmt.Errorf("config: sub_conn holds sslpassword, a secret stored in the subscription's catalogue row; use a client key without a passphrase, readable only by the target server's OS user (chmod 0600)")
		}
		m.SubConn, m.SubConnSet = ci, true
		if m.ReplUser == "" {
			m.ReplUser = ci["user"]
		}
	} else {
		if m.ReplUser == "" {
			m.ReplUser = m.Src.User()
		}
		ci := Conninfo{"dbname": m.Src.DB}
		for k, v := range m.Src.Conninfo {
			if k == "host" || k == "hostaddr" || k == "port" || k == "service" || serverVerification[k] {
				ci[k] = v
			}
		}
		if m.ReplUser != "" {
			ci["user"] = m.ReplUser
		}
		m.SubConn = ci
	}

	base := ObjectName(m.Src.Cluster) + "_" + ObjectName(m.Src.DB)
	m.PubName = orDefault(f.PubName, "pub_"+base)
	m.SubName = orDefault(f.SubName, "sub_"+base)
	m.SlotName = ObjectName(m.SubName)
	if !slotNameRE.MatchString(m.SlotName) {
		return nil, fmt.Errorf("config: sub_name %q does not make a valid replication slot name; use lower-case letters, digits and _ (at most 63)", m.SubName)
	}
	for _, n := range []struct{ key, v string }{{"pub_name", m.PubName}, {"sub_name", m.SubName}} {
		if len(n.v) > 63 {
			return nil, fmt.Errorf("config: %s %q is longer than 63 bytes; set a shorter %s", n.key, n.v, n.key)
		}
	}

	dir := orDefault(f.MigrationContextDir, "~/migration")
	dir, err = expandHome(dir)
	if err != nil {
		return nil, err
	}
	if !filepath.IsAbs(dir) && o.ConfigFile != "" {
		// Relative to the config file, not to wherever pgmove runs.
		dir = filepath.Join(filepath.Dir(o.ConfigFile), dir)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	m.ContextDir = filepath.Join(dir, pathSafe(m.Src.Cluster)+"."+pathSafe(m.Src.DB))

	for _, p := range append(append([]string{}, f.Include...), o.Include...) {
		pat, err := ParsePattern(p)
		if err != nil {
			return nil, fmt.Errorf("config: include %q: %w", p, err)
		}
		m.Include = append(m.Include, pat)
	}
	for _, p := range append(append([]string{}, f.Exclude...), o.Exclude...) {
		pat, err := ParsePattern(p)
		if err != nil {
			return nil, fmt.Errorf("config: exclude %q: %w", p, err)
		}
		m.Exclude = append(m.Exclude, pat)
	}
	m.MaxLag = 16 << 20
	if f.MaxLag != "" {
		if m.MaxLag, err = ParseSize(f.MaxLag); err != nil {
			return nil, fmt.Errorf("config: max_lag: %w", err)
		}
	}
	m.Copy = f.Copy
	m.Jobs = f.Jobs
	m.PgBouncer, m.PgBouncerINI, m.PgBouncerDB, m.AppRoles, m.SwitchHook = f.PgBouncer, f.PgBouncerINI, f.PgBouncerDB, f.AppRoles, f.SwitchHook
	for _, u := range m.PgBouncer {
		if err := CheckBouncerConsole(u); err != nil {
			return nil, fmt.Errorf("config: pgbouncer: %w", err)
		}
	}
	if m.PgBouncerINI != "" {
		if !filepath.IsAbs(m.PgBouncerINI) && o.ConfigFile != "" {
			// Relative to the config file, as migration_context_dir is.
			m.PgBouncerINI = filepath.Join(filepath.Dir(o.ConfigFile), m.PgBouncerINI)
		}
		if abs, err := filepath.Abs(m.PgBouncerINI); err == nil {
			m.PgBouncerINI = abs
		}
	}
	switch f.Fence {
	case "", "pgbouncer", "database", "none":
		m.Fence = f.Fence
	default:
		return nil, fmt.Errorf("config: fence: %q is not a fence; use pgbouncer, database or none", f.Fence)
	}
	if f.MaxPause != "" {
		if m.MaxPause, err = ParseDuration(f.MaxPause); err != nil || m.MaxPause <= 0 {
			return nil, fmt.Errorf("config: max_pause: %q is not a duration; write it like 2s or 500ms", f.MaxPause)
		}
	}
	if f.SplitLarger != "" {
		if m.SplitLarger, err = ParseSize(f.SplitLarger); err != nil {
			return nil, fmt.Errorf("config: split_larger_than: %w", err)
		}
	}
	return m, nil
}

var slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

func endpoint(side Side, flagVal, flagName, url, urlKey, ip, ipKey string, port int, db, dbKey, cls, admin string) (Endpoint, error) {
	e := Endpoint{Side: side}
	var raw, from string
	switch {
	case flagVal != "":
		raw, from = flagVal, flagName
	case url != "":
		raw, from = url, urlKey
	}
	if raw != "" {
		ci, err := ParseConninfo(raw)
		if err != nil {
			return e, fmt.Errorf("%s: %s: %w", side, from, err)
		}
		if _, ok := ci["password"]; ok {
			return e, fmt.Errorf("%s: %s holds a password; remove it and put the password in ~/.pgpass (or PGPASSFILE, PGPASSWORD, a service file)", side, from)
		}
		if _, ok := ci["sslpassword"]; ok {
			// It would reach pg_dump's command line and the subscription's
			// catalogue row, readable by others.
			return e, fmt.Errorf("%s: %s holds sslpassword, a secret pgmove would have to pass on; use a client key without a passphrase, readable only by its owner (chmod 0600)", side, from)
		}
		e.Conninfo, e.From = ci, from
	} else {
		if ip == "" {
			return e, fmt.Errorf("%s: no connection given; pass %s postgres://user@host:port/db or set %s and %s in migration.yml", side, flagName, ipKey, dbKey)
		}
		e.Conninfo = Conninfo{"host": ip}
		if port != 0 {
			e.Conninfo["port"] = strconv.Itoa(port)
		}
	}
	if e.Conninfo["port"] == "" && port != 0 {
		e.Conninfo["port"] = strconv.Itoa(port)
	}
	if e.Conninfo["user"] == "" && admin != "" {
		e.Conninfo["user"] = admin
	}
	if e.Conninfo["dbname"] == "" && db != "" {
		e.Conninfo["dbname"] = db
	}
	e.DB = e.Conninfo["dbname"]
	if e.DB == "" {
		if e.From != "" {
			// A URL without a database: name what the user gave.
			return e, fmt.Errorf("%s: no database named in %s; add /dbname to it (postgres://user@host:port/dbname)", side, e.From)
		}
		return e, fmt.Errorf("%s: no database named; set %s in migration.yml or add /dbname to %s", side, dbKey, flagName)
	}
	e.Cluster = cls
	if e.Cluster == "" {
		e.Cluster = clusterFromHost(e.Conninfo["host"], e.Conninfo["port"])
	}
	return e, nil
}

// clusterFromHost names a cluster after its host when the config gives no
// name: the first DNS label, or the address with dots as dashes.
func clusterFromHost(host, port string) string {
	host = strings.Split(host, ",")[0]
	switch {
	case host == "" || strings.HasPrefix(host, "/"):
		host = "local"
	case net.ParseIP(host) != nil:
		host = strings.NewReplacer(".", "-", ":", "-").Replace(host)
	default:
		host = strings.Split(host, ".")[0]
	}
	if port != "" && port != "5432" {
		host += "-" + port
	}
	return host
}

// ObjectName turns a cluster or database name into the part of an object name
// the seed uses (pub_<cls>_<db>): lower case, anything but [a-z0-9_] as _.
func ObjectName(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

func pathSafe(s string) string {
	return strings.NewReplacer("/", "_", "\x00", "_").Replace(s)
}

func orDefault(v, d string) string {
	if v != "" {
		return v
	}
	return d
}

func expandHome(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("config: migration_context_dir: %w", err)
		}
		return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
	}
	return p, nil
}

// ParseSize reads sizes such as 512MB, 1GB, 64kB or a plain byte count.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			mult = u.m
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	// NaN and infinities parse as floats; 2^63 bytes and more do not fit.
	if err != nil || !(f >= 0) || f*float64(mult) >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is not a size; write it like 512MB or 2GB", s)
	}
	return int64(f * float64(mult)), nil
}

// ParseDuration accepts Go durations (30s, 5m).
func ParseDuration(s string) (time.Duration, error) { return time.ParseDuration(s) }

// CheckBouncerConsole refuses a pgbouncer console URL that does not parse or
// holds a password: a password belongs in ~/.pgpass, not in a config file or
// a command line others can read.
func CheckBouncerConsole(u string) error {
	ci, err := ParseConninfo(u)
	if err != nil {
		return err
	}
	if _, ok := ci["password"]; ok {
		return fmt.Errorf("the URL of console %s holds a password; remove it and put the password in ~/.pgpass (or PGPASSFILE, PGPASSWORD)", net.JoinHostPort(ci["host"], ci["port"]))
	}
	return nil
}
