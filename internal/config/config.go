package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// File is migration.yml as the user wrote it. The keys are the seed's
// (pgsql-migration.yml) names, plus pgmove's own.
type File struct {
	SrcCls  string   `yaml:"src_cls"`
	SrcDB   string   `yaml:"src_db"`
	SrcIP   string   `yaml:"src_ip"`
	SrcPort int      `yaml:"src_port"`
	SrcList []string `yaml:"src_list"`
	SrcURL  string   `yaml:"src_url"`

	DstCls  string   `yaml:"dst_cls"`
	DstDB   string   `yaml:"dst_db"`
	DstIP   string   `yaml:"dst_ip"`
	DstPort int      `yaml:"dst_port"`
	DstList []string `yaml:"dst_list"`
	DstDNS  string   `yaml:"dst_dns"`
	DstVIP  string   `yaml:"dst_vip"`
	DstURL  string   `yaml:"dst_url"`

	PgAdminUsername       string `yaml:"pg_admin_username"`
	PgReplicationUsername string `yaml:"pg_replication_username"`
	// PgReplicatoinUsername is the seed's misspelling, accepted as written.
	PgReplicatoinUsername string `yaml:"pg_replicatoin_username"`
	MigrationContextDir   string `yaml:"migration_context_dir"`

	SubConn     string   `yaml:"sub_conn"`
	PubName     string   `yaml:"pub_name"`
	SubName     string   `yaml:"sub_name"`
	Include     []string `yaml:"include"`
	Exclude     []string `yaml:"exclude"`
	MaxLag      string   `yaml:"max_lag"`
	Copy        string   `yaml:"copy"`
	Jobs        int      `yaml:"jobs"`
	SplitLarger string   `yaml:"split_larger_than"`

	// The switchover's: pgbouncer admin console URLs, the pgbouncer.ini
	// whose entry is repointed and that entry's name, the fence (pgbouncer,
	// database, none), the application roles --fence database fences, the
	// pause's budget and a command run to switch traffic (DNS, VIP).
	PgBouncer    []string `yaml:"pgbouncer"`
	PgBouncerINI string   `yaml:"pgbouncer_ini"`
	PgBouncerDB  string   `yaml:"pgbouncer_db"`
	Fence        string   `yaml:"fence"`
	AppRoles     []string `yaml:"app_roles"`
	MaxPause     string   `yaml:"max_pause"`
	SwitchHook   string   `yaml:"switch_hook"`
}

// knownKeys maps each YAML key to its field index in File.
var knownKeys = func() map[string]int {
	m := map[string]int{}
	t := reflect.TypeOf(File{})
	for i := 0; i < t.NumField(); i++ {
		m[strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]] = i
	}
	return m
}()

// Load reads and parses a migration.yml. Errors name the file and line.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(filepath.Base(path), data)
}

// Parse parses migration.yml content; name is used in error messages.
func Parse(name string, data []byte) (*File, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %s", name, cleanYAMLError(err))
	}
	f := &File{}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return f, nil // empty file: everything from flags
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: expected a mapping of keys such as src_ip: and dst_ip:, found %s", name, root.Line, kindName(root))
	}
	seen := map[string]int{}
	v := reflect.ValueOf(f).Elem()
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, val := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%s:%d: keys must be plain names", name, k.Line)
		}
		idx, ok := knownKeys[k.Value]
		if !ok {
			msg := fmt.Sprintf("%s:%d: unknown key %q", name, k.Line, k.Value)
			if s := suggest(k.Value); s != "" {
				msg += fmt.Sprintf("; did you mean %s?", s)
			}
			return nil, errors.New(msg)
		}
		if prev, dup := seen[k.Value]; dup {
			return nil, fmt.Errorf("%s:%d: key %q repeated (first at line %d)", name, k.Line, k.Value, prev)
		}
		seen[k.Value] = k.Line
		if val.Kind == yaml.ScalarNode && val.Tag == "!!null" {
			continue
		}
		field := v.Field(idx)
		if err := val.Decode(field.Addr().Interface()); err != nil {
			return nil, fmt.Errorf("%s:%d: %s: expected %s, found %s", name, val.Line, k.Value, typeName(field.Type()), describe(val))
		}
	}
	return f, nil
}

func cleanYAMLError(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	// yaml.v3 says "line N: msg"; make it "N: msg" after the file name.
	if strings.HasPrefix(s, "line ") {
		if i := strings.Index(s, ":"); i > 0 {
			if _, e := strconv.Atoi(s[5:i]); e == nil {
				return "line " + s[5:i] + ":" + s[i+1:] + " (malformed YAML)"
			}
		}
	}
	return s + " (malformed YAML)"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "something else"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	return fmt.Sprintf("%q", n.Value)
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int:
		return "a number"
	case reflect.Slice:
		return "a list such as [ a, b ]"
	}
	return "a string"
}

func suggest(key string) string {
	best, bestD := "", 4
	for k := range knownKeys {
		if d := levenshtein(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
