package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Conninfo is a libpq connection string split into its parameters. It keeps
// both spellings libpq accepts (a postgres:// URL or keyword=value pairs) in
// one form, so pgmove can check, redact and rebuild what the user wrote.
type Conninfo map[string]string

// ParseConninfo splits a libpq connection string, URL or keyword/value.
func ParseConninfo(s string) (Conninfo, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		return parseURL(s)
	}
	return parseKeywordValue(s)
}

func parseURL(s string) (Conninfo, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url.Error repeats the whole URL, which may hold a password.
		return nil, fmt.Errorf("malformed connection URL")
	}
	ci := Conninfo{}
	if u.User != nil {
		if name := u.User.Username(); name != "" {
			ci["user"] = name
		}
		if pw, ok := u.User.Password(); ok {
			ci["password"] = pw
		}
	}
	if u.Host != "" {
		hosts, ports := []string{}, []string{}
		for _, hp := range strings.Split(u.Host, ",") {
			h, p := splitHostPort(hp)
			hosts = append(hosts, h)
			if p != "" {
				ports = append(ports, p)
			}
		}
		ci["host"] = strings.Join(hosts, ",")
		if len(ports) > 0 {
			ci["port"] = strings.Join(ports, ",")
		}
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		ci["dbname"] = db
	}
	for k, vs := range u.Query() {
		if !isKeyword(k) {
			// libpq refuses it too ("invalid URI query parameter").
			return nil, fmt.Errorf("connection URL: %q is not a connection parameter", k)
		}
		if len(vs) > 0 {
			ci[k] = vs[len(vs)-1]
		}
	}
	return ci, nil
}

// isKeyword reports whether k can be a libpq connection keyword: lower-case
// letters, digits and underscores.
func isKeyword(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func splitHostPort(hp string) (host, port string) {
	if strings.HasPrefix(hp, "[") { // IPv6 literal
		if i := strings.Index(hp, "]"); i >= 0 {
			host = hp[1:i]
			rest := hp[i+1:]
			if strings.HasPrefix(rest, ":") {
				port = rest[1:]
			}
			return host, port
		}
	}
	if i := strings.LastIndex(hp, ":"); i >= 0 {
		return hp[:i], hp[i+1:]
	}
	return hp, ""
}

func parseKeywordValue(s string) (Conninfo, error) {
	ci := Conninfo{}
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			return ci, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[start:i]
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) || s[i] != '=' || key == "" {
			return nil, fmt.Errorf("malformed connection string: expected key=value near %q", key)
		}
		i++
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		var val strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					val.WriteByte(s[i+1])
					i += 2
					continue
				}
				if c == '\'' {
					closed = true
					i++
					break
				}
				val.WriteByte(c)
				i++
			}
			if !closed {
				return nil, fmt.Errorf("malformed connection string: unterminated quoted value for %q", key)
			}
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' && i+1 < len(s) {
					val.WriteByte(s[i+1])
					i += 2
					continue
				}
				val.WriteByte(s[i])
				i++
			}
		}
		ci[key] = val.String()
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// String renders the parameters as a keyword/value string in a stable order,
// quoting values as libpq expects.
func (ci Conninfo) String() string {
	keys := make([]string, 0, len(ci))
	for k := range ci {
		keys = append(keys, k)
	}
	order := map[string]int{"host": 0, "hostaddr": 1, "port": 2, "dbname": 3, "user": 4, "password": 5}
	sort.Slice(keys, func(a, b int) bool {
		oa, okA := order[keys[a]]
		ob, okB := order[keys[b]]
		switch {
		case okA && okB:
			return oa < ob
		case okA:
			return true
		case okB:
			return false
		}
		return keys[a] < keys[b]
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+QuoteConninfoValue(ci[k]))
	}
	return strings.Join(parts, " ")
}

// Redacted renders the parameters with any password masked (the
// client key's passphrase too).
func (ci Conninfo) Redacted() string {
	c := ci.Clone()
	for _, k := range []string{"password", "sslpassword"} {
		if _, ok := c[k]; ok {
			c[k] = "********"
		}
	}
	return c.String()
}

// tlsSettings are libpq's TLS parameters, with the environment variable
// each falls back to, and whether it names a file.
var tlsSettings = []struct {
	key, env string
	file     bool
}{
	{"sslmode", "PGSSLMODE", false}, {"sslrootcert", "PGSSLROOTCERT", true},
	{"sslcert", "PGSSLCERT", true}, {"sslkey", "PGSSLKEY", true},
	{"sslcrl", "PGSSLCRL", true}, {"sslcrldir", "PGSSLCRLDIR", true},
	{"sslsni", "PGSSLSNI", false}, {"sslnegotiation", "PGSSLNEGOTIATION", false},
	{"ssl_min_protocol_version", "PGSSLMINPROTOCOLVERSION", false},
	{"ssl_max_protocol_version", "PGSSLMAXPROTOCOLVERSION", false},
}

// serverVerification are the TLS settings about the server's identity,
// the same whoever connects: a replication connection made from a
// source's endpoint keeps them (the client certificate is the admin's,
// not the replication user's: sub_conn names that one).
var serverVerification = map[string]bool{"sslmode": true, "sslrootcert": true, "sslcrl": true, "sslcrldir": true,
	"sslsni": true, "sslnegotiation": true, "ssl_min_protocol_version": true, "ssl_max_protocol_version": true}

// ForServer is ci as a server's own libpq reads it, in a subscription's
// connection string: the TLS settings pgmove's connections take from its
// environment (PGSSLMODE, PGSSLROOTCERT, ...) written in, and certificate
// paths made absolute, since the server sees neither pgmove's environment
// nor its working directory. The files must be readable by the server's
// OS user on the server's host.
func (ci Conninfo) ForServer() Conninfo {
	c := ci.Clone()
	for _, t := range tlsSettings {
		if _, ok := c[t.key]; !ok {
			if v := os.Getenv(t.env); v != "" {
				c[t.key] = v
			}
		}
		if v := c[t.key]; t.file && v != "" && !filepath.IsAbs(v) && !strings.HasPrefix(v, "~") && v != "system" {
			if abs, err := filepath.Abs(v); err == nil {
				c[t.key] = abs
			}
		}
	}
	return c
}

// Clone returns a copy.
func (ci Conninfo) Clone() Conninfo {
	c := make(Conninfo, len(ci))
	for k, v := range ci {
		c[k] = v
	}
	return c
}

// QuoteConninfoValue quotes a value for a keyword/value connection string.
func QuoteConninfoValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r\f\v'\\") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}

// Redact masks the password in a connection string of either form. A string
// that cannot be parsed is replaced whole: it may hold a secret we cannot find.
func Redact(s string) string {
	ci, err := ParseConninfo(s)
	if err != nil {
		return "<unparsable connection string>"
	}
	if _, ok := ci["password"]; !ok && !strings.Contains(s, "://") {
		return s
	}
	return ci.Redacted()
}
