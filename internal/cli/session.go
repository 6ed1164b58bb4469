package cli

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"sync"

	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/state"
)

// session is one pgmove command's view of the migration: the resolved
// configuration, connections to both sides, the journal and the lock.
type session struct {
	g       *globals
	command string
	m       *config.Migration
	src     *cluster.Conn
	dst     *cluster.Conn
	journal *state.Journal
	lock    *state.Lock
	locked  bool // the target's advisory lock is held on dst
}

// newSession loads the configuration. It does not connect.
func newSession(g *globals, command string) (*session, error) {
	var f *config.File
	if g.configFile == "" && g.src == "" && g.dst == "" {
		// The plan's scripts set it in activate.
		g.configFile = os.Getenv("PGMOVE_CONFIG")
	}
	if g.configFile != "" {
		var err error
		if f, err = config.Load(g.configFile); err != nil {
			return nil, &usageError{err}
		}
	}
	if f == nil && g.src == "" && g.dst == "" {
		if _, err := os.Stat("migration.yml"); err == nil {
			// The seed's workflow runs scripts inside the context directory,
			// where migration.yml lives.
			if f, err = config.Load("migration.yml"); err != nil {
				return nil, &usageError{err}
			}
			g.configFile = "migration.yml"
		}
	}
	m, err := config.Resolve(f, config.Overrides{Src: g.src, Dst: g.dst, ConfigFile: g.configFile, Include: g.include, Exclude: g.exclude})
	if err != nil {
		return nil, &usageError{err}
	}
	return &session{g: g, command: command, m: m}, nil
}

// connect opens whichever sides are asked for, in parallel.
func (s *session) connect(ctx context.Context, src, dst bool) (srcErr, dstErr error) {
	var wg sync.WaitGroup
	if src && s.src == nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.src, srcErr = cluster.Connect(ctx, s.m.Src, s.command) }()
	}
	if dst && s.dst == nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.dst, dstErr = cluster.Connect(ctx, s.m.Dst, s.command) }()
	}
	wg.Wait()
	return srcErr, dstErr
}

// dropClosed closes and forgets the connections that broke, saying which
// side is lost, so the next connect opens them again.
func (s *session) dropClosed() (srcErr, dstErr error) {
	if s.src != nil && s.src.PgConn().IsClosed() {
		s.src.Close()
		s.src, srcErr = nil, fmt.Errorf("source: connection lost")
	}
	if s.dst != nil && s.dst.PgConn().IsClosed() {
		s.dst.Close()
		s.dst, dstErr = nil, fmt.Errorf("target: connection lost")
	}
	return srcErr, dstErr
}

// connectBoth opens both sides and fails on the first error.
func (s *session) connectBoth(ctx context.Context) error {
	srcErr, dstErr := s.connect(ctx, true, true)
	return errors.Join(srcErr, dstErr)
}

// begin opens the journal and takes the migration's locks: a file lock in
// the context directory, and an advisory lock on the target so a pgmove on
// another host is refused too. Commands that change something call it.
func (s *session) begin(ctx context.Context) error {
	j, err := state.Open(s.m.ContextDir)
	if err != nil {
		return err
	}
	s.journal = j
	if s.lock, err = j.Acquire(s.command); err != nil {
		return err
	}
	if s.dst != nil {
		h := fnv.New32a()
		h.Write([]byte(s.m.SubName))
		var ok bool
		if err := s.dst.QueryRow(ctx, "SELECT pg_catalog.pg_try_advisory_lock($1::int4, $2::int4)", lockClass, int32(h.Sum32())).Scan(&ok); err != nil {
			return s.dst.Wrap("take the migration lock", err)
		}
		if !ok {
			return fmt.Errorf("target: another pgmove holds the lock of migration %q (see pg_locks, locktype advisory, on the target); wait for it to finish", s.m.SubName)
		}
		s.locked = true
	}
	return nil
}

// lockClass is the first key of pgmove's advisory locks ("pgmv").
const lockClass = 0x70676d76

// record notes a step in the journal, when one is open.
func (s *session) record(step, status, msg string, data map[string]string) {
	if s.journal == nil {
		return
	}
	if err := s.journal.Record(step, status, msg, data); err != nil {
		slog.Warn("journal: " + err.Error())
	}
}

// step runs fn as a journaled step.
func (s *session) step(name string, fn func() (string, map[string]string, error)) error {
	s.record(name, state.Started, "", nil)
	msg, data, err := fn()
	if err != nil {
		if data == nil {
			data = map[string]string{}
		}
		if side := errorSide(err); side != "" {
			data["side"] = side
		}
		s.record(name, state.Failed, err.Error(), data)
		return err
	}
	s.record(name, state.Done, msg, data)
	return nil
}

func (s *session) close() {
	if s.lock != nil {
		s.lock.Release()
	}
	s.src.Close()
	s.dst.Close()
}

func (s *session) runner(dryRun bool) cluster.Runner {
	return cluster.Runner{DryRun: dryRun, Out: s.g.stdout}
}
