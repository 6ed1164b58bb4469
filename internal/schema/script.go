package schema

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
)

// A pg_restore newer than the target writes session settings the target does
// not know: from 17 on, every restore session starts with
// `SET transaction_timeout = 0`, an unknown parameter (an error) before 17.
// For such a target pgmove has pg_restore write its script instead of
// running it, leaves those settings out, and runs the script itself in one
// transaction.

// needsScript reports whether a restore with a pg_restore of toolMajor into a
// server of targetMajor must go through the script.
func needsScript(toolMajor, targetMajor int) bool {
	return targetMajor > 0 && toolMajor >= 17 && targetMajor < 17
}

// restrictRE matches the psql meta-commands pg_restore 17.6+ and 18 put
// around a script (\restrict KEY, \unrestrict KEY): psql's, not SQL.
var restrictRE = regexp.MustCompile(`^\\(un)?restrict [A-Za-z0-9]+$`)

// scriptFor turns pg_restore's script into SQL a server of targetMajor runs:
// the psql meta-commands are left out, and so are the session settings of
// the script's header (before its first entry) that the target lacks.
func scriptFor(script []byte, targetMajor int) (string, error) {
	var b strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(script))
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	header := true
	for sc.Scan() {
		line := sc.Text()
		switch {
		case header && strings.HasPrefix(line, "-- Name: "), header && strings.HasPrefix(line, "-- TOC entry "):
			header = false
		case restrictRE.MatchString(line):
			continue
		case strings.HasPrefix(line, `\`):
			// A meta-command this code does not know cannot be run as SQL.
			return "", fmt.Errorf("pg_restore's script holds the psql command %q, which pgmove cannot run", truncate(line, 60))
		case header && targetMajor < 17 && line == "SET transaction_timeout = 0;":
			continue // PostgreSQL 17+
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String(), sc.Err()
}

// runScript has pg_restore write the script for args and runs it on the
// target in one transaction.
func (a *Archive) runScript(ctx context.Context, dst config.Endpoint, targetMajor int, args, env []string) error {
	cmd := exec.CommandContext(ctx, a.RestoreTool.Path, append([]string{"--file=-"}, args...)...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("target: restore schema: %s", firstError(stderr.String(), err))
	}
	sql, err := scriptFor(out, targetMajor)
	if err != nil {
		return fmt.Errorf("target: restore schema: %w", err)
	}
	// A connection of its own: the script sets search_path and other
	// session settings that must not outlive it.
	c, err := cluster.Connect(ctx, dst, "copy-schema")
	if err != nil {
		return err
	}
	defer c.Close()
	// One simple-protocol message of many statements runs as one implicit
	// transaction: all of it lands or none does.
	if _, err := c.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("target: restore schema: %s", scriptError(sql, err))
	}
	return nil
}

// scriptError words a failed statement of the script as pg_restore would:
// the error, and the statement it came from.
func scriptError(sql string, err error) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return squeeze(err.Error())
	}
	msg := "ERROR: " + pe.Message
	if pe.Detail != "" {
		msg += " (" + pe.Detail + ")"
	}
	if stmt := statementAt(sql, int(pe.Position)); stmt != "" {
		msg += " (Command was: " + truncate(squeeze(stmt), 200) + ")"
	}
	return msg
}

// statementAt returns the line of sql holding the 1-based character position
// pos, which the server reports for errors it can place.
func statementAt(sql string, pos int) string {
	if pos <= 0 {
		return ""
	}
	r := []rune(sql)
	if pos > len(r) {
		return ""
	}
	start, end := pos-1, pos-1
	for start > 0 && r[start-1] != '\n' {
		start--
	}
	for end < len(r) && r[end] != '\n' {
		end++
	}
	return string(r[start:end])
}
