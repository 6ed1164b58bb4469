package cli

import (
	"fmt"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgmove/pgmove/internal/copy"
)

// copyFlags are the initial copy's settings, shared by migrate and create-sub.
// migration.yml's copy, jobs and split_larger_than apply unless the flag is given.
type copyFlags struct {
	method      string
	jobs        int
	splitLarger string
	memory      string
	slotTimeout time.Duration
	freeze      bool
	cmd         *cobra.Command
}

func (f *copyFlags) register(cmd *cobra.Command) {
	f.cmd = cmd
	fl := cmd.Flags()
	fl.StringVar(&f.method, "copy", "snapshot", "initial copy: snapshot (pgmove's parallel COPY handed off to the subscription) or native (PostgreSQL's table sync, as in the seed)")
	fl.IntVarP(&f.jobs, "jobs", "j", runtime.NumCPU(), "parallel COPY streams and index builds (default: this machine's cores)")
	fl.StringVar(&f.splitLarger, "split-larger-than", fmt.Sprintf("%dGB", copy.DefaultSplitLarger>>30),
		"load tables larger than this with --jobs sessions at once (0: never); smaller ones load in one stream (with COPY FREEZE from 64MB, see --freeze)")
	fl.StringVar(&f.memory, "maintenance-work-mem", "512MB", "maintenance_work_mem of each index build on the target")
	fl.BoolVar(&f.freeze, "freeze", true, "load each table of 64MB or more copied whole with TRUNCATE + COPY FREEZE: rows land frozen, so neither the index builds nor a later vacuum rewrite every page (--freeze=false: plain COPY)")
	fl.DurationVar(&f.slotTimeout, "slot-timeout", 5*time.Minute, "give up creating the replication slot after this long (it waits for open transactions)")
}

func (f *copyFlags) changed(name string) bool { return f.cmd != nil && f.cmd.Flags().Changed(name) }

// resolve applies migration.yml's settings where no flag overrides them.
func (f *copyFlags) resolve(s *session) (copy.Options, error) {
	if s.m.Copy != "" && !f.changed("copy") {
		f.method = s.m.Copy
	}
	if err := validCopy(f.method); err != nil {
		return copy.Options{}, err
	}
	if err := atLeastOne("--jobs", f.jobs); err != nil {
		return copy.Options{}, err
	}
	if s.m.Jobs < 0 && !f.changed("jobs") {
		return copy.Options{}, &usageError{fmt.Errorf("jobs: %d in the configuration: the number of parallel sessions must be at least 1", s.m.Jobs)}
	}
	if f.slotTimeout <= 0 {
		return copy.Options{}, &usageError{fmt.Errorf("--slot-timeout %s: must be more than 0", f.slotTimeout)}
	}
	o := copy.Options{Jobs: f.jobs, Freeze: f.freeze}
	if s.m.Jobs > 0 && !f.changed("jobs") {
		o.Jobs = s.m.Jobs
	}
	n, err := parseSizeFlag("--split-larger-than", f.splitLarger)
	if err != nil {
		return o, err
	}
	o.SplitLarger = n
	if s.m.SplitLarger > 0 && !f.changed("split-larger-than") {
		o.SplitLarger = s.m.SplitLarger
	}
	return o, nil
}

// atLeastOne is the usage error for a count flag (sessions, clients...)
// below 1: --jobs 0 or -3 would otherwise run with one job, or none.
func atLeastOne(flag string, v int) error {
	if v < 1 {
		return &usageError{fmt.Errorf("%s %d: must be at least 1", flag, v)}
	}
	return nil
}
