package schema

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
)

// RolesResult says what CopyRoles did.
type RolesResult struct {
	Created    []string
	Existing   []string // left as they are on the target
	Membership int
	Warnings   []string // memberships that could not be granted
}

// CopyRoles creates on the target the source's roles that it lacks, with
// their attributes, settings and memberships, from pg_dumpall --roles-only
// (without passwords unless withPasswords). Roles the target already has
// are not altered: that would change a running cluster's own roles. It
// runs in one target transaction.
func CopyRoles(ctx context.Context, m *config.Migration, src, dst *cluster.Conn, withPasswords, dryRun bool, out func(string)) (RolesResult, error) {
	var res RolesResult
	tool, err := FindTool(ctx, "pg_dumpall", src.Major())
	if err != nil {
		return res, fmt.Errorf("source: %w", err)
	}
	child, err := cluster.Child(m.Src, "copy-schema")
	if err != nil {
		return res, err
	}
	args := []string{"--roles-only", "--dbname=" + child.Conninfo}
	if !withPasswords {
		args = append(args, "--no-role-passwords")
	}
	cmd := exec.CommandContext(ctx, tool.Path, args...)
	cmd.Env = child.Env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	dump, err := cmd.Output()
	if err != nil {
		return res, fmt.Errorf("source: dump roles with pg_dumpall: %s", firstError(stderr.String(), err))
	}
	rows, err := dst.Query(ctx, "SELECT rolname FROM pg_catalog.pg_roles")
	if err != nil {
		return res, dst.Wrap("list roles", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return res, dst.Wrap("list roles", err)
	}
	existing := map[string]bool{}
	for _, n := range names {
		existing[n] = true
	}
	var stmts []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(dump))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "--") || strings.HasPrefix(line, `\`) || strings.HasPrefix(line, "SET ") {
			continue
		}
		switch {
		case strings.HasPrefix(line, "CREATE ROLE "), strings.HasPrefix(line, "ALTER ROLE "), strings.HasPrefix(line, "COMMENT ON ROLE "):
			role := roleName(line)
			if role == "" || existing[role] {
				if role != "" && !seen[role] {
					seen[role] = true
					res.Existing = append(res.Existing, role)
				}
				continue
			}
			if strings.HasPrefix(line, "CREATE ROLE ") {
				res.Created = append(res.Created, role)
			}
		case strings.HasPrefix(line, "GRANT "):
			res.Membership++
		default:
			continue
		}
		stmts = append(stmts, line)
	}
	if dryRun {
		for _, s := range stmts {
			out(s)
		}
		return res, nil
	}
	err = pgx.BeginFunc(ctx, dst.Conn, func(tx pgx.Tx) error {
		for _, s := range stmts {
			shown := strings.SplitN(s, " PASSWORD ", 2)[0]
			if !strings.HasPrefix(s, "GRANT ") {
				if _, err := tx.Exec(ctx, s); err != nil {
					return fmt.Errorf("%s: %w", shown, err)
				}
				continue
			}
			// A membership may name a grantor the target lacks: warn, go on.
			if _, err := tx.Exec(ctx, "SAVEPOINT pgmove_grant"); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, s); err != nil {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s: %v", shown, err))
				if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT pgmove_grant"); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return res, dst.Wrap("create roles", err)
	}
	return res, nil
}

// roleName reads the role a CREATE/ALTER/COMMENT ON ROLE statement names.
func roleName(stmt string) string {
	i := strings.Index(stmt, "ROLE ")
	if i < 0 {
		return ""
	}
	s := stmt[i+5:]
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		for j := 1; j < len(s); j++ {
			if s[j] == '"' {
				if j+1 < len(s) && s[j+1] == '"' {
					b.WriteByte('"')
					j++
					continue
				}
				return b.String()
			}
			b.WriteByte(s[j])
		}
		return ""
	}
	end := strings.IndexAny(s, " ;")
	if end < 0 {
		end = len(s)
	}
	return s[:end]
}
