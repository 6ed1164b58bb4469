package schema

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
)

// WriteSQL writes the statements a restore of the entries keep accepts
// would run, as pg_restore prints them without a database (--file=-), for
// a dry run: the target is not touched.
func (a *Archive) WriteSQL(ctx context.Context, w io.Writer, o RestoreOptions, keep func(Entry) bool) error {
	list, n, err := a.writeList(keep)
	if err != nil {
		return err
	}
	defer os.Remove(list)
	if n == 0 {
		return nil
	}
	args := []string{"--use-list=" + list, "--file=-"}
	if !o.WithOwners {
		args = append(args, "--no-owner")
	}
	if !o.WithACL {
		args = append(args, "--no-acl")
	}
	args = append(args, a.Path)
	cmd := exec.CommandContext(ctx, a.RestoreTool.Path, args...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("target: print the schema's statements: %s", firstError(stderr.String(), err))
	}
	return nil
}
