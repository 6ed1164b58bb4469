package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// MigrationStep is the journal step that binds a journal to the servers it
// describes: its data holds each side's system identifier and database OID.
const MigrationStep = "migration"

// Identity names the two databases of a migration: each side's system
// identifier (pg_control_system(), new at every initdb) and database OID
// (new at every CREATE DATABASE). Zero is unknown: that side was not
// reachable when the journal learnt it.
type Identity struct {
	SrcSystemID int64
	SrcDBOID    uint32
	DstSystemID int64
	DstDBOID    uint32
}

func (id Identity) data() map[string]string {
	d := map[string]string{}
	put := func(k string, v int64) {
		if v != 0 {
			d[k] = strconv.FormatInt(v, 10)
		}
	}
	put("src_system_id", id.SrcSystemID)
	put("src_db_oid", int64(id.SrcDBOID))
	put("dst_system_id", id.DstSystemID)
	put("dst_db_oid", int64(id.DstDBOID))
	return d
}

// merge fills id's unknown fields from an event's data.
func (id *Identity) merge(d map[string]string) {
	get := func(k string) int64 { n, _ := strconv.ParseInt(d[k], 10, 64); return n }
	if id.SrcSystemID == 0 {
		id.SrcSystemID = get("src_system_id")
	}
	if id.SrcDBOID == 0 {
		id.SrcDBOID = uint32(get("src_db_oid"))
	}
	if id.DstSystemID == 0 {
		id.DstSystemID = get("dst_system_id")
	}
	if id.DstDBOID == 0 {
		id.DstDBOID = uint32(get("dst_db_oid"))
	}
}

// covers reports whether id knows every field other knows.
func (id Identity) covers(other Identity) bool {
	return (other.SrcSystemID == 0 || id.SrcSystemID != 0) && (other.SrcDBOID == 0 || id.SrcDBOID != 0) &&
		(other.DstSystemID == 0 || id.DstSystemID != 0) && (other.DstDBOID == 0 || id.DstDBOID != 0)
}

// Conflict says how recorded (the journal's) and live (the connected
// servers') name different databases, or "" when every field both know
// agrees.
func Conflict(recorded, live Identity) string {
	differ := func(a, b int64) bool { return a != 0 && b != 0 && a != b }
	switch {
	case differ(recorded.SrcSystemID, live.SrcSystemID):
		return fmt.Sprintf("the source server's system identifier is %d, the journal's %d (another server at that address)", live.SrcSystemID, recorded.SrcSystemID)
	case differ(int64(recorded.SrcDBOID), int64(live.SrcDBOID)):
		return fmt.Sprintf("the source database's OID is %d, the journal's %d (another database of that name)", live.SrcDBOID, recorded.SrcDBOID)
	case differ(recorded.DstSystemID, live.DstSystemID):
		return fmt.Sprintf("the target server's system identifier is %d, the journal's %d (another server at that address)", live.DstSystemID, recorded.DstSystemID)
	case differ(int64(recorded.DstDBOID), int64(live.DstDBOID)):
		return fmt.Sprintf("the target database's OID is %d, the journal's %d (another database of that name)", live.DstDBOID, recorded.DstDBOID)
	}
	return ""
}

// Binding is what a journal says about whose it is.
type Binding struct {
	// Identity merges the journal's migration events; Bound is false for a
	// journal without any (written before pgmove bound journals, or empty).
	Identity Identity
	Bound    bool
	// Finished is true once a cleanup (or an abort) of this migration
	// succeeded.
	Finished bool
	// Empty is true when the journal has no event at all.
	Empty bool
}

// Binding reads whose the journal is.
func (j *Journal) Binding() (Binding, error) {
	evs, err := j.Events()
	if err != nil {
		return Binding{}, err
	}
	b := Binding{Empty: len(evs) == 0}
	for _, e := range evs {
		switch {
		case e.Step == MigrationStep:
			b.Bound = true
			b.Identity.merge(e.Data)
		case (e.Step == "cleanup" || e.Step == "abort") && e.Status == Done:
			b.Finished = true
		}
	}
	return b, nil
}

// Bind records the live identity when the journal does not know all of it
// yet: the first changing command of a migration starts the journal with it.
func (j *Journal) Bind(live Identity) error {
	b, err := j.Binding()
	if err != nil {
		return err
	}
	if b.Bound && b.Identity.covers(live) {
		return nil
	}
	return j.Record(MigrationStep, Started, "source and target of this migration", live.data())
}

// ArchiveDir is where Archive moves the state of other migrations.
const ArchiveDir = "archive"

// stateFiles are the files that describe one migration.
var stateFiles = []string{"journal.jsonl", "copy.json"}

// Archive moves the journal and the copy's status into
// archive/<time>/ in the context directory and returns that directory, or
// "" when there was nothing to move.
func (j *Journal) Archive(now time.Time) (string, error) {
	var present []string
	for _, f := range stateFiles {
		if _, err := os.Stat(filepath.Join(j.Dir, f)); err == nil {
			present = append(present, f)
		}
	}
	if len(present) == 0 {
		return "", nil
	}
	base := filepath.Join(j.Dir, ArchiveDir, now.UTC().Format("20060102T150405Z"))
	dir := base
	for i := 2; ; i++ {
		err := os.MkdirAll(filepath.Dir(dir), 0o700)
		if err == nil {
			err = os.Mkdir(dir, 0o700)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("archive the journal: %w", err)
		}
		dir = fmt.Sprintf("%s-%d", base, i)
	}
	for _, f := range present {
		if err := os.Rename(filepath.Join(j.Dir, f), filepath.Join(dir, f)); err != nil {
			return "", fmt.Errorf("archive the journal: %w", err)
		}
	}
	return dir, nil
}
