package cli

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/copy"
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
	locked  bool           // the target's advisory lock is held on dst
	out     *outcome       // with --json: what the command did
	notes   map[string]any // figures of the step under way, for out
	// orphans says which slots a subscription's removal left on an
	// unreachable source, with the statements to drop them; slotsGone
	// are the slots dropping the subscription dropped on the source.
	orphans   string
	slotsGone []string
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
	if g.bar != nil && (command == "migrate" || command == "create-sub") {
		g.bar.follow((&copyLine{dir: m.ContextDir}).render, 250*time.Millisecond)
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
	if err := s.refuseSameDatabase(); err != nil {
		// Nothing may be done with a target that is the source itself.
		s.dst.Close()
		s.dst = nil
		return err, err
	}
	return srcErr, dstErr
}

func isUsage(err error) bool {
	var ue *usageError
	return errors.As(err, &ue)
}

// refuseSameDatabase is the usage error for a target that is the source
// itself (same system identifier and database OID: the same URL twice, or
// two addresses of one server), or a physical standby of it. Either would
// have pgmove copy the source into itself: a publication, then a hang, or
// worse.
func (s *session) refuseSameDatabase() error {
	src, dst := s.src, s.dst
	if src == nil || dst == nil || src.SystemID != dst.SystemID {
		return nil
	}
	key := "dst_ip/dst_port/dst_db"
	if s.g.dst != "" {
		key = "--dst"
	}
	where := func(c *cluster.Conn) string {
		h := c.Endpoint.Host()
		if h == "" {
			h = "localhost"
		}
		return fmt.Sprintf("%s/%s", net.JoinHostPort(h, c.Endpoint.Port()), c.Endpoint.DB)
	}
	switch {
	case cluster.SameDatabase(src, dst):
		return &usageError{fmt.Errorf("target: %s is the source database itself (%s; both have system identifier %d and database OID %d): source and target are the same database; %s must name the target",
			where(dst), where(src), dst.SystemID, dst.DBOID, key)}
	case dst.InRecovery:
		return &usageError{fmt.Errorf("target: %s is a physical standby of the source %s (same system identifier %d, in recovery): it already follows the source and cannot be written; %s must name the target, a cluster of its own",
			where(dst), where(src), dst.SystemID, key)}
	}
	return nil
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
	if isUsage(srcErr) {
		return srcErr // the same database twice: one line
	}
	return errors.Join(srcErr, dstErr)
}

// begin opens the journal and takes the migration's locks: a file lock in
// the context directory, and an advisory lock on the target so a pgmove on
// another host is refused too. Commands that change something call it.
func (s *session) begin(ctx context.Context) error {
	return s.beginIn(ctx, true)
}

// beginIn is begin; create false leaves a context directory that does not
// exist uncreated (and the journal closed): cleanup and remove-sub, which
// have no migration state to keep when there is none yet.
func (s *session) beginIn(ctx context.Context, create bool) error {
	j, err := state.Open(s.m.ContextDir)
	if err != nil {
		return err
	}
	if create || j.Exists() {
		s.journal = j
		if s.lock, err = j.Acquire(s.command); err != nil {
			return err
		}
		// Under the lock: the state of another migration is set aside
		// before this command reads or writes any of it. Cleaning up a
		// finished migration again is still that migration.
		if err := s.setAside(j, create); err != nil {
			return err
		}
		if err := j.Bind(s.identity()); err != nil {
			return err
		}
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

// identity is the connected servers' identity; a side not connected is unknown.
func (s *session) identity() state.Identity {
	var id state.Identity
	if s.src != nil {
		id.SrcSystemID, id.SrcDBOID = s.src.SystemID, s.src.DBOID
	}
	if s.dst != nil {
		id.DstSystemID, id.DstDBOID = s.dst.SystemID, s.dst.DBOID
	}
	return id
}

// openJournal opens the journal for a command that only reads it (status),
// setting aside the state of other servers. It creates nothing when the
// context directory does not exist.
func (s *session) openJournal() (*state.Journal, error) {
	j, err := state.Open(s.m.ContextDir)
	if err != nil {
		return nil, err
	}
	if j.Exists() {
		if err := s.setAside(j, false); err != nil {
			return nil, err
		}
	}
	return j, nil
}

// setAside archives the journal and the copy status when they are not this
// migration's: written for other servers (another system identifier or
// database OID on either side, such as new servers at the same address or a
// re-created target database), written before journals named their servers,
// or, when starting is true (a command that changes something), of a
// migration that was cleaned up. pgmove never acts on such state; it says so
// on stderr in one line.
func (s *session) setAside(j *state.Journal, starting bool) error {
	b, err := j.Binding()
	if err != nil {
		return err
	}
	var why string
	switch {
	case b.Empty:
		why = s.foreignCopy()
		if why == "" {
			return nil
		}
	case !b.Bound:
		why = "it does not name the servers it was written for"
	case state.Conflict(b.Identity, s.identity()) != "":
		why = "it belongs to other servers: " + state.Conflict(b.Identity, s.identity())
	case b.Finished && starting:
		why = "its migration was cleaned up"
	case s.foreignCopy() != "":
		why = s.foreignCopy()
	default:
		return nil
	}
	dir, err := j.Archive(time.Now())
	if err != nil || dir == "" {
		return err
	}
	slog.Warn(fmt.Sprintf("journal: the state in %s is not this migration's: %s; archived to %s, not acted on", j.Dir, why, dir))
	return nil
}

// foreignCopy says how copy.json names other databases than the connected
// ones, or "" (no file, or no conflict with what is known).
func (s *session) foreignCopy() string {
	st, err := copy.ReadStatus(s.m.ContextDir)
	if err != nil || st == nil {
		return ""
	}
	for _, side := range []struct {
		name, recorded string
		c              *cluster.Conn
	}{{"source", st.SourceID, s.src}, {"target", st.TargetID, s.dst}} {
		if side.recorded != "" && side.c != nil && side.recorded != side.c.Identity() {
			return fmt.Sprintf("copy.json is of %s database %s, connected to %s (system identifier/database OID)", side.name, side.recorded, side.c.Identity())
		}
	}
	return ""
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
		s.addStep(name, "failed", cluster.OneLine(err.Error()), data)
		return err
	}
	s.record(name, state.Done, msg, data)
	s.addStep(name, "done", msg, data)
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
	r := cluster.Runner{DryRun: dryRun, Out: s.g.stdout}
	if s.out != nil {
		r.Record = func(st cluster.Statement) {
			s.out.mu.Lock()
			defer s.out.mu.Unlock()
			s.out.Statements = append(s.out.Statements, st)
		}
	}
	return r
}
