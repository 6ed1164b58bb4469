package schema

import (
	"context"
	"fmt"
	"io"
)

// WriteSQL writes the statements a restore of the entries keep accepts
// would run, as pg_restore prints them without a database (the script
// restoreScript runs), for a dry run: the target is not touched.
func (a *Archive) WriteSQL(ctx context.Context, w io.Writer, o RestoreOptions, keep func(Entry) bool) error {
	n := 0
	for _, e := range a.Entries {
		if keep(e) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out, err := a.script(ctx, o, keep)
	if err != nil {
		return fmt.Errorf("target: print the schema's statements: %w", err)
	}
	_, err = w.Write(out)
	return err
}
