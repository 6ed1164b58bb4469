package schema

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Tool is a PostgreSQL client program with its major version.
type Tool struct {
	Path  string
	Major int
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

// FindTool finds the newest `name` (pg_dump, pg_restore, pg_dumpall) whose
// major version is at least minMajor: $PGMOVE_PG_BINDIR first, then PATH,
// then the usual package locations. pg_dump refuses to dump a server newer
// than itself, so the version matters.
func FindTool(ctx context.Context, name string, minMajor int) (*Tool, error) {
	var dirs []string
	if d := os.Getenv("PGMOVE_PG_BINDIR"); d != "" {
		dirs = append(dirs, d)
	}
	dirs = append(dirs, filepath.SplitList(os.Getenv("PATH"))...)
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/opt/homebrew/opt/postgresql@*/bin", "/usr/local/opt/postgresql@*/bin"} {
		m, _ := filepath.Glob(pattern)
		dirs = append(dirs, m...)
	}
	seen := map[string]bool{}
	var found []*Tool
	for _, d := range dirs {
		p := filepath.Join(d, name)
		real, err := filepath.EvalSymlinks(p)
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		out, err := exec.CommandContext(ctx, p, "--version").Output()
		if err != nil {
			continue
		}
		m := versionRE.FindStringSubmatch(string(out))
		if m == nil {
			continue
		}
		major, _ := strconv.Atoi(m[1])
		found = append(found, &Tool{Path: p, Major: major})
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i].Major > found[j].Major })
	if len(found) == 0 {
		return nil, fmt.Errorf("%s not found; install the PostgreSQL client (e.g. apt-get install postgresql-client-%d) or set PGMOVE_PG_BINDIR", name, max(minMajor, 15))
	}
	if found[0].Major < minMajor {
		return nil, fmt.Errorf("%s %d cannot handle a PostgreSQL %d server; install postgresql-client-%d or newer, or set PGMOVE_PG_BINDIR to its bin directory", name, found[0].Major, minMajor, minMajor)
	}
	// Prefer the newest; pg_dump and pg_restore must be the same major, which
	// the caller asks for by passing the dump tool's major as minMajor.
	return found[0], nil
}

// Tools finds pg_dump and a pg_restore of the same major, able to dump a
// server of the given major.
func Tools(ctx context.Context, srcMajor int) (dump, restore *Tool, err error) {
	dump, err = FindTool(ctx, "pg_dump", srcMajor)
	if err != nil {
		return nil, nil, err
	}
	dir := filepath.Dir(dump.Path)
	if r, e := versionOf(ctx, filepath.Join(dir, "pg_restore")); e == nil && r == dump.Major {
		return dump, &Tool{Path: filepath.Join(dir, "pg_restore"), Major: r}, nil
	}
	restore, err = FindTool(ctx, "pg_restore", dump.Major)
	if err != nil {
		return nil, nil, err
	}
	return dump, restore, nil
}

func versionOf(ctx context.Context, path string) (int, error) {
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return 0, err
	}
	m := versionRE.FindStringSubmatch(string(out))
	if m == nil {
		return 0, fmt.Errorf("unrecognised version output %q", strings.TrimSpace(string(out)))
	}
	return strconv.Atoi(m[1])
}
