package cli

import (
	"github.com/spf13/cobra"
)

// maxRetainedHelp says what --max-retained is and why its default is what
// it is; progress, migrate and the README say the same.
const maxRetainedHelp = `The source's disk: the slot keeps every WAL segment the target has not
confirmed. progress and migrate report its retained WAL, its wal_status and
safe_wal_size (13+), and warn past --max-retained. The default is half of
the source's max_slot_wal_keep_size when one is set (the slot has used half
of what it may hold before it is lost), and 4 x max_wal_size when it is -1
(a healthy server keeps about max_wal_size of WAL; a slot holding several
times that is not keeping up, and nothing stops it before the disk is
full). A slot whose wal_status is lost (or unreserved: lost at the next
checkpoint) is a problem: the subscription can never catch up, and the way
out is a new copy (pgmove cleanup, then pgmove migrate).`

// maxRetainedFlag is --max-retained, "" for the default.
type maxRetainedFlag struct{ v string }

func (f *maxRetainedFlag) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.v, "max-retained", "", "warn when the slot retains more WAL on the source, e.g. 8GB (default: half of max_slot_wal_keep_size, or 4 x max_wal_size without a limit)")
}

// bytes is the threshold in bytes, 0 for the default.
func (f *maxRetainedFlag) bytes() (int64, error) {
	if f.v == "" {
		return 0, nil
	}
	return parseSizeFlag("--max-retained", f.v)
}
